"""The finetune step (the paper's section 5): ``config`` (Hyperparams and presets: what
``gvstore.params`` imports), ``data`` (training files and their checks), ``runner`` (trl; torch
loads only there) and ``step`` (``finetune()``: up-to-date check, training, the new folder)."""
