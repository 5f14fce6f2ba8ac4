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
    backend: Annotated[str | None, typer.Option(
        "--backend", help="Also convert for this ctranslate2 back end (ctranslate2: int8, "
        "ctranslate2-float32) into <models-dir>/<model>.ct2-<compute type>.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a packaged GGUF model once to a safetensors folder (fast loads, trainable)."""
    from gvstore.models import prepare

    spec = _spec(model, None)
    start = time.monotonic()
    with err_console.status(f"converting {spec.name} (about 20 s)"):
        out, converted = prepare(spec, models_dir, force=force)
    data: dict[str, object] = {"model": spec.name, "folder": str(out), "converted": converted}
    verb = "converted" if converted else "already prepared"
    line = f"{spec.name}: {verb} -> {out}"
    if backend is not None:
        line += "; " + _convert_for(backend, spec, models_dir, force, data)
    data["seconds"] = round(time.monotonic() - start, 2)
    emit(data, as_json, f"{line} ({data['seconds']} s)")


def _convert_for(backend: str, spec: ModelSpec, models_dir: Path, force: bool,
                 data: dict[str, object]) -> str:
    """Convert for a ctranslate2 back end; fills ``data`` and returns the line's part."""
    from gvstore.backends.base import converting, import_for
    from gvstore.errors import GvstoreError

    compute = converting().get(backend)
    if compute is None:
        choices = ", ".join(converting())
        raise GvstoreError(f"--backend: only a converting back end ({choices}) needs "
                           f"prepare-model, got {backend!r}")
    ct2 = import_for(backend, "gvstore.backends.ct2_convert")
    with err_console.status(f"converting {spec.name} for {backend} (about 15 s)"):
        conv = ct2.convert(spec, compute, models_dir, force=force)
    data.update({"backend": backend, "backend_folder": str(conv.path),
                 "backend_converted": conv.converted_now, "model_digest": conv.record_digest})
    return f"{backend} {'converted' if conv.converted_now else 'up to date'} -> {conv.path}"
