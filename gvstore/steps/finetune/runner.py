"""The trl runner of the finetune step: train a loaded model on checked examples and save it.

torch, transformers, trl and datasets are imported here, inside the functions, so that the
rest of the step (and ``gvstore --help``) stays light.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from gvstore.errors import GvstoreError
from gvstore.models import Resolved
from gvstore.steps.finetune.config import Hyperparams
from gvstore.steps.finetune.data import TrainingData, to_trl


def train(method: str, resolved: Resolved, data: TrainingData, hp: Hyperparams, tmp: Path,
          *, verbose: bool, threads: int | None = None) -> dict[str, Any]:
    """Run trl and save the trained model and tokenizer into ``tmp``; returns what the
    manifest records of the run (steps, losses, seconds, device, precision, versions...)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            if not verbose:  # trl calls a transformers API that transformers 5 renamed
                warnings.filterwarnings("ignore", category=FutureWarning,
                                        message=".*is_gradient_checkpointing.*")
            return _run_trl(method, resolved, data, hp, tmp, verbose=verbose)
    finally:
        torch.set_num_threads(before)


def _trainer_args(hp: Hyperparams, scratch: str, *, cuda: bool, bf16: bool,
                  verbose: bool) -> dict[str, Any]:
    """The TrainingArguments shared by SFT and DPO."""
    import transformers

    args: dict[str, Any] = dict(
        output_dir=scratch, max_steps=hp.steps,
        per_device_train_batch_size=hp.micro_batch_size,
        gradient_accumulation_steps=hp.accumulation, learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.lr_scheduler, warmup_steps=hp.warmup_steps,
        weight_decay=hp.weight_decay, max_grad_norm=hp.max_grad_norm,
        optim="adamw_torch", max_length=hp.max_length, bf16=bf16, fp16=False,
        use_cpu=not cuda,
        seed=hp.seed, data_seed=hp.seed, report_to=[], save_strategy="no",
        logging_strategy="steps", logging_steps=1, disable_tqdm=not verbose,
        log_level="info" if verbose else "error", dataloader_num_workers=0,
    )
    # transformers 5 renamed gradient_checkpointing (the old name warns).
    fields = transformers.TrainingArguments.__dataclass_fields__
    ckpt = "activation_checkpointing" if "activation_checkpointing" in fields \
        else "gradient_checkpointing"
    args[ckpt] = hp.gradient_checkpointing
    return args


def _trainer(method: str, model: Any, tok: Any, rows: list[dict[str, Any]], hp: Hyperparams,
             args: dict[str, Any]) -> Any:
    """trl's SFTTrainer (sft) or DPOTrainer with an NLL term on the chosen answer (rpo)."""
    import datasets
    import trl

    dataset = datasets.Dataset.from_list(rows)
    if method == "sft":
        sft_args = trl.SFTConfig(**args, completion_only_loss=True)
        return trl.SFTTrainer(model=model, args=sft_args, train_dataset=dataset,
                              processing_class=tok)
    dpo_args = trl.DPOConfig(**args, beta=hp.beta, loss_type=["sigmoid", "sft"],
                             loss_weights=[1.0, hp.sft_weight])
    return trl.DPOTrainer(model=model, args=dpo_args, train_dataset=dataset,
                          processing_class=tok)


def _fit(trainer: Any, tok: Any, data: TrainingData, rows: int, hp: Hyperparams, tmp: Path,
         *, verbose: bool) -> tuple[int, list[float], float]:
    """Train, save the model and tokenizer into ``tmp``: (steps, losses, seconds)."""
    from transformers.trainer_callback import PrinterCallback

    if len(trainer.train_dataset) == 0:  # trl drops what cannot fit; torch would fail later
        raise GvstoreError(
            f"{data.path}: none of its {rows} examples fits in max_length="
            f"{hp.max_length} tokens once tokenized; raise max_length or shorten "
            "the prompts")
    if not verbose:
        trainer.remove_callback(PrinterCallback)  # disable_tqdm would print each log
    t0 = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - t0
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    trained = trainer.accelerator.unwrap_model(trainer.model)
    trained.config.use_cache = True  # gradient checkpointing turns it off
    trained.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    return int(trainer.state.global_step), losses, seconds


def _run_trl(method: str, resolved: Resolved, data: TrainingData, hp: Hyperparams, tmp: Path,
             *, verbose: bool) -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    import trl
    from transformers.utils import logging as hf_logging

    from gvstore.models import load_hf

    cuda = torch.cuda.is_available()
    bf16 = cuda and hp.precision != "fp32" and torch.cuda.is_bf16_supported()
    if hp.precision == "bf16" and cuda and not bf16:
        raise GvstoreError("precision bf16: this GPU has no bf16; use precision fp32")
    device = "cuda" if cuda else "cpu"
    transformers.set_seed(hp.seed)
    tok, model = load_hf(resolved, "float32", "cpu")  # the trainer moves it to its device
    chat = resolved.spec.kind == "instruct" and bool(tok.chat_template)
    rows = to_trl(method, data.examples, chat=chat)

    progress_was_on = datasets.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    if not verbose:
        datasets.disable_progress_bars()
        hf_logging.set_verbosity_error()
    try:
        with tempfile.TemporaryDirectory(prefix="gvstore-trainer-") as scratch:
            args = _trainer_args(hp, scratch, cuda=cuda, bf16=bf16, verbose=verbose)
            trainer = _trainer(method, model, tok, rows, hp, args)
            steps, losses, seconds = _fit(trainer, tok, data, len(rows), hp, tmp,
                                          verbose=verbose)
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_was_on and not verbose:
            datasets.enable_progress_bars()
    return {
        "steps": steps, "losses": [round(x, 6) for x in losses], "seconds": seconds,
        "device": device, "precision": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "format": ("conversational" if chat else "text") + (
            " prompt/completion" if method == "sft" else " prompt/chosen/rejected"),
        "versions": {"torch": str(torch.__version__),  # a str subclass (TorchVersion)
                     "transformers": transformers.__version__, "trl": trl.__version__},
    }
