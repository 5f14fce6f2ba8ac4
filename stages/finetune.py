"""DVC stage `finetune`: train one round of a model on an exported training file.

`--method sft` trains on `gvstore export sft` output (the kept answers), `--method rpo` on
`gvstore export pairs` output (DPO plus NLL on the chosen answer). The new model folder (default
`<models_dir>/<parent>-r<round>`) holds the weights, the tokenizer and a manifest with the new
digest; a folder whose manifest records the same parent, data and settings is left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import note, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True, choices=["sft", "rpo"])
    ap.add_argument("--data", required=True, type=Path, help="the training file (JSON lines)")
    ap.add_argument("--model", default="smollm2-135m-instruct",
                    help="a built-in model to start from (prepared with prepare-model)")
    ap.add_argument("--model-path", type=Path, default=None,
                    help="a model folder to start from (overrides --model)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: <models-dir>/<parent>-r<round>)")
    ap.add_argument("--name", default=None, help="the new model's name")
    ap.add_argument("--models-dir", type=Path, default=None,
                    help="where models live (default: base.models_dir of --params, else "
                    "data/models)")
    ap.add_argument("--params", type=Path, default=None,
                    help="params.yaml to take base.models_dir and base.seed from")
    ap.add_argument("--base", action="store_true", help="a base model: no chat template")
    ap.add_argument("--preset", default="auto", choices=["auto", "paper", "cpu"],
                    help="hyperparameter preset (auto: paper on CUDA, else cpu)")
    ap.add_argument("--config", type=Path, default=None,
                    help="YAML/JSON mapping of hyperparameters over the preset")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--micro-batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--beta", type=float, default=None)
    ap.add_argument("--sft-weight", type=float, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (1 is often fastest on a shared CPU)")
    ap.add_argument("--force", action="store_true", help="train even if up to date")
    ap.add_argument("--verbose", "-v", action="store_true", help="trl's progress and logs")
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.models import parent_spec
        from gvstore.steps.finetune.config import build_hparams
        from gvstore.steps.finetune.step import finetune, summary_line

        models_dir, seed = args.models_dir, args.seed
        if args.params is not None:
            from gvstore.params import load

            base = load(args.params).base
            models_dir = models_dir or Path(base.models_dir)
            seed = base.seed if seed is None else seed
        models_dir = models_dir or Path("data/models")
        hp = build_hparams(args.preset, args.config, steps=args.steps,
                           batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
                           learning_rate=args.lr, max_length=args.max_length, beta=args.beta,
                           sft_weight=args.sft_weight, seed=seed)
        parent = parent_spec(args.model, args.model_path, models_dir, args.base)
        res = finetune(args.method, args.data, parent, args.out, hparams=hp, name=args.name,
                       models_dir=models_dir, force=args.force, verbose=args.verbose,
                       threads=args.threads)
        note(summary_line(res))
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
