"""``gvstore prepare-model``, and the model options ``gvstore generate`` shares."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.cli.console import emit
from gvstore.cli.options import JsonOpt
from gvstore.output import err_console

if TYPE_CHECKING:
    from gvstore.models import ModelSpec

ModelOpt = Annotated[str, typer.Option(
    "--model", help="A built-in model name (the embedded default: smollm2-135m-instruct).")]
ModelPathOpt = Annotated[Path | None, typer.Option(
    "--model-path", help="A local transformers model folder (e.g. a fine-tuned round); "
    "overrides --model.")]
ModelsDirOpt = Annotated[Path, typer.Option(
    "--models-dir", help="Where prepare-model puts converted models.")]


def _spec(model: str, model_path: Path | None) -> ModelSpec:
    from gvstore.models import builtin, spec_from_folder

    if model_path is not None:  # name, round, kind from the folder's manifest where it has them
        return spec_from_folder(model_path)
    return builtin(model)


def prepare_model_cmd(
    model: ModelOpt = "smollm2-135m-instruct",
    models_dir: ModelsDirOpt = Path("data/models"),
    force: Annotated[bool, typer.Option("--force", help="Convert again even if done.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert a packaged GGUF model once to a safetensors folder (fast loads, trainable)."""
    from gvstore.models import prepare

    spec = _spec(model, None)
    start = time.monotonic()
    with err_console.status(f"converting {spec.name} (about 20 s)"):
        out, converted = prepare(spec, models_dir, force=force)
    data = {"model": spec.name, "folder": str(out), "converted": converted,
            "seconds": round(time.monotonic() - start, 2)}
    verb = "converted" if converted else "already prepared"
    emit(data, as_json, f"{spec.name}: {verb} -> {out} ({data['seconds']} s)")
