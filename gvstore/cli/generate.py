"""``gvstore generate``: sample answers of a model, only those missing from the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.cli.console import emit
from gvstore.cli.model import ModelOpt, ModelPathOpt, ModelsDirOpt
from gvstore.cli.options import BACKEND_HELP, JsonOpt, StoreOpt, get_store
from gvstore.cli.runner_opts import (
    RayActorsOpt,
    RayAddressOpt,
    RayGpusOpt,
    RunnerKind,
    RunnerOpt,
    runner_params,
)
from gvstore.errors import GvstoreError
from gvstore.output import table
from gvstore.progress import generate_bar

if TYPE_CHECKING:
    from gvstore.models import ModelSpec


def model_spec(model: str, model_path: Path | None) -> ModelSpec:
    """``--model``, or the model of ``--model-path`` (name, round, kind from its manifest
    where it has them)."""
    from gvstore.models import builtin, spec_from_folder

    return builtin(model) if model_path is None else spec_from_folder(model_path)


def generate_cmd(  # Long because each of its options is a line of the signature
    ctx: typer.Context,
    task: Annotated[str, typer.Option(help="Task name (gvstore tasks list).")] = "arith",
    model: ModelOpt = "smollm2-135m-instruct",
    model_path: ModelPathOpt = None,
    split: Annotated[str, typer.Option(help="Task split.")] = "test",
    prompts: Annotated[int | None, typer.Option(
        help="Use the first N items of the split (default: all).")] = None,
    offset: Annotated[int, typer.Option(help="Skip the first items of the split.")] = 0,
    kshot: Annotated[int | None, typer.Option(
        help="Exemplars in each prompt (default: the task's).")] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="Samples per prompt.")] = 8,
    temperature: Annotated[float, typer.Option(help="0 means greedy.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 0.9,
    top_k: Annotated[int, typer.Option(help="0 means no top-k cut.")] = 0,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per sample.")] = 256,
    seed: Annotated[int, typer.Option(help="Base seed of the per-request seeds.")] = 0,
    round_: Annotated[int | None, typer.Option(
        "--round", help="Self-improvement round (default: the model's, from its manifest).",
        show_default=False)] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "transformers",
    batch_size: Annotated[int, typer.Option(help="Prompts per model batch.")] = 8,
    models_dir: ModelsDirOpt = Path("data/models"),
    folder: Annotated[str | None, typer.Option(
        help="Store folder to write (default: generate/<task>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    runner: RunnerOpt = RunnerKind.local,
    ray_address: RayAddressOpt = None,
    ray_actors: RayActorsOpt = None,
    ray_gpus: RayGpusOpt = 0.0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample N answers per prompt; only the samples missing from the store are generated."""
    from gvstore.params import SampleParams, TaskEntry
    from gvstore.steps.generate import generate_task

    if offset < 0 or (prompts is not None and prompts < 1):
        raise GvstoreError("--offset must be >= 0 and --prompts >= 1")
    spec = model_spec(model, model_path)
    sample = SampleParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                          max_tokens=max_tokens, batch_size=batch_size, backend=backend)
    entry = TaskEntry(split=split, prompts=prompts, offset=offset, kshot=kshot)
    out_folder = folder or f"generate/{task}"
    with generate_bar(spec.name, task, quiet) as bar:
        summary = generate_task(get_store(ctx, store, must_exist=False), spec, task, entry,
                                sample, seed=seed, round_=round_, models_dir=models_dir,
                                folder=out_folder, progress=bar,
                                runner=runner_params(runner, ray_address, ray_actors, ray_gpus))
    data = summary.as_dict() | {"model": spec.name, "task": task, "folder": out_folder}
    if summary.made == 0:
        msg = f"nothing to do: all {summary.requested} samples are in the store"
        emit(data, as_json, msg)
        return
    emit(data, as_json, table(
        f"generate {spec.name} on {task}", ["", "value"],
        [["prompts", summary.prompts], ["samples requested", summary.requested],
         ["already in the store", summary.present], ["generated now", summary.made],
         ["tokens", summary.tokens], ["samples/s", data["samples_per_s"]],
         ["tokens/s", data["tokens_per_s"]], ["finish reasons", summary.finish],
         ["seconds", round(summary.seconds, 1)]]))
