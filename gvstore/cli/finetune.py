"""``gvstore finetune``: train a model on an exported SFT set or preference pairs (trl)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gvstore.cli.console import emit
from gvstore.cli.options import JsonOpt
from gvstore.digest import short
from gvstore.errors import GvstoreError
from gvstore.models import parent_spec
from gvstore.output import err_console, table
from gvstore.steps.finetune.config import METHODS, build_hparams, help_texts

if TYPE_CHECKING:
    from gvstore.steps.finetune.step import FinetuneResult

_HELP = help_texts()


def _opt(field: str, *names: str) -> Any:
    return typer.Option(*names, help=_HELP[field], show_default=False)


def finetune_cmd(
    method: Annotated[str, typer.Option(
        help="sft: rejection-sampling fine-tuning on `gvstore export sft` output; rpo: DPO "
        "plus NLL on the chosen answer, on `gvstore export pairs` output.")],
    data: Annotated[Path, typer.Option(help="The training file (JSON lines).")],
    model: Annotated[str, typer.Option(
        help="A built-in model to start from (prepared with prepare-model).")]
    = "smollm2-135m-instruct",
    model_path: Annotated[Path | None, typer.Option(
        "--model-path", help="A model folder to start from (a prepared model or an earlier "
        "round's output); overrides --model.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: <models-dir>/<name>).")] = None,
    name: Annotated[str | None, typer.Option(
        help="The new model's name (default: the output folder's name, else "
        "<parent>-r<round>).")] = None,
    models_dir: Annotated[Path, typer.Option(
        "--models-dir", help="Where prepared and trained models live.")] = Path("data/models"),
    base: Annotated[bool, typer.Option(
        "--base", help="Treat the model as a base model: raw prompt/completion text, no chat "
        "template.")] = False,
    preset: Annotated[str, typer.Option(
        help="Hyperparameter preset: paper (appendix F), cpu (a few small steps) or auto "
        "(paper on a CUDA machine, else cpu).")] = "auto",
    config: Annotated[Path | None, typer.Option(
        help="A YAML/JSON mapping of hyperparameters applied over the preset.")] = None,
    steps: Annotated[int | None, _opt("steps", "--steps")] = None,
    batch_size: Annotated[int | None, _opt("batch_size", "--batch-size")] = None,
    micro_batch_size: Annotated[int | None, _opt("micro_batch_size", "--micro-batch-size")] = None,
    lr: Annotated[float | None, _opt("learning_rate", "--lr")] = None,
    max_length: Annotated[int | None, _opt("max_length", "--max-length")] = None,
    beta: Annotated[float | None, _opt("beta", "--beta")] = None,
    sft_weight: Annotated[float | None, _opt("sft_weight", "--sft-weight")] = None,
    seed: Annotated[int | None, _opt("seed", "--seed")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Train even if the output folder is up to date, replacing it.")]
    = False,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads for torch while training (default: torch's). On a CPU shared with "
        "other work, 1 can be much faster.")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show trl's progress bar and logs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on filtered answers (sft) or preference pairs (rpo); write the next
    round's model folder with a manifest naming its digest."""
    from gvstore.steps.finetune.step import finetune

    if method not in METHODS:
        raise GvstoreError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    hp = build_hparams(preset, config, steps=steps, batch_size=batch_size,
                     micro_batch_size=micro_batch_size, learning_rate=lr,
                     max_length=max_length, beta=beta, sft_weight=sft_weight, seed=seed)
    parent = parent_spec(model, model_path, models_dir, base)
    if not as_json:
        err_console.print(f"finetune {method}: {parent.name} on {data}, {hp.steps} steps of "
                          f"{hp.batch_size}", highlight=False)
    res = finetune(method, data, parent, out, hparams=hp, name=name, models_dir=models_dir,
                   force=force, verbose=verbose, threads=threads)
    emit(res.as_dict(), as_json, table(f"finetune {method}", ["", "value"], _rows(res)))


def _rows(res: FinetuneResult) -> list[list[Any]]:
    """The result table of ``gvstore finetune``."""
    return [
        ["model", res.spec.name], ["round", res.spec.round], ["folder", str(res.path)],
        ["digest", res.digest], ["parent", f"{res.parent} ({short(res.parent_digest)})"],
        ["examples", res.examples], ["steps", res.steps], ["loss first", res.loss_first],
        ["loss last", res.loss_last], ["seconds", round(res.seconds, 1)],
        ["steps/s", res.steps_per_s], ["trained now", res.trained],
    ]
