"""``gvstore prepare-model`` and ``gvstore generate``: the commands that run a model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.cli.options import JsonOpt, get_store
from gvstore.errors import GvstoreError
from gvstore.output import emit, err_console, note, table
from gvstore.progress import progress

if TYPE_CHECKING:
    from gvstore.backends.base import Backend
    from gvstore.models import ModelSpec
    from gvstore.params import Params, SampleParams, TaskEntry
    from gvstore.steps.generate import GenerateSummary
    from gvstore.store import Store

ModelOpt = Annotated[str, typer.Option(
    "--model", help="A built-in model name (the embedded default: smollm2-135m-instruct).")]
ModelPathOpt = Annotated[Path | None, typer.Option(
    "--model-path", help="A local transformers model folder (e.g. a fine-tuned round); "
    "overrides --model.")]
ModelsDirOpt = Annotated[Path, typer.Option(
    "--models-dir", help="Where prepare-model puts converted models.")]


def _spec(model: str, model_path: Path | None) -> ModelSpec:
    from gvstore.finetune import spec_from_folder
    from gvstore.models import builtin

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


def generate_cmd(
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
    backend: Annotated[str, typer.Option(help="transformers, vllm or openai.")] = "transformers",
    batch_size: Annotated[int, typer.Option(help="Prompts per model batch.")] = 8,
    models_dir: ModelsDirOpt = Path("data/models"),
    folder: Annotated[str | None, typer.Option(
        help="Store folder to write (default: generate/<task>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sample N answers per prompt; only the samples missing from the store are generated."""
    from gvstore.params import SampleParams, TaskEntry

    if offset < 0 or (prompts is not None and prompts < 1):
        raise GvstoreError("--offset must be >= 0 and --prompts >= 1")
    spec = _spec(model, model_path)
    sample = SampleParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                          max_tokens=max_tokens, batch_size=batch_size, backend=backend)
    entry = TaskEntry(split=split, prompts=prompts, offset=offset, kshot=kshot)
    out_folder = folder or f"generate/{task}"
    summary = generate_task(get_store(ctx, must_exist=False), spec, task, entry, sample,
                            seed=seed, round_=round_, models_dir=models_dir, folder=out_folder,
                            quiet=quiet)
    data = summary.as_dict() | {"model": spec.name, "task": task, "folder": out_folder}
    if summary.generated == 0:
        msg = f"nothing to do: all {summary.requested} samples are in the store"
        emit(data, as_json, msg)
        return
    emit(data, as_json, table(
        f"generate {spec.name} on {task}", ["", "value"],
        [["prompts", summary.prompts], ["samples requested", summary.requested],
         ["already in the store", summary.present], ["generated now", summary.generated],
         ["tokens", summary.tokens], ["samples/s", data["samples_per_s"]],
         ["tokens/s", data["tokens_per_s"]], ["finish reasons", summary.finish],
         ["seconds", round(summary.seconds, 1)]]))


def generate_task(
    store: Store,
    spec: ModelSpec,
    task: str,
    entry: TaskEntry,
    sample: SampleParams,
    *,
    seed: int,
    round_: int | None,
    models_dir: Path,
    folder: str,
    quiet: bool = False,
) -> GenerateSummary:
    """Generate one model's missing samples of one task, with a progress bar."""
    from gvstore.backends import get_backend
    from gvstore.models import resolve
    from gvstore.steps import generate
    from gvstore.tasks.registry import get_task

    t = get_task(task, entry.data)
    t.check_split(entry.split)
    items = t.items(entry.split)
    stop = entry.offset + entry.prompts if entry.prompts is not None else None
    items = items[entry.offset:stop]
    if not items:
        raise GvstoreError(f"no items of {task}/{entry.split} in that range")
    prompt_recs = [t.prompt_record(it, entry.kshot) for it in items]
    gspec = generate.GenerateSpec(
        model=spec.name, model_digest=resolve(spec, models_dir).digest, backend=sample.backend,
        sampling=sample.sampling(), n=sample.n, seed=seed,
        round=spec.round if round_ is None else round_, batch_size=sample.batch_size,
    )
    gspec.check()
    with progress(quiet) as bar:
        job = bar.add_task(f"generate {spec.name} {task}", total=None, rate="")
        start = [0.0]

        def tick(done: int, total: int, tokens: int) -> None:
            if not start[0]:
                start[0] = time.monotonic()
            dt = max(time.monotonic() - start[0], 1e-9)
            bar.update(job, completed=done, total=total,
                       rate=f"{done / dt:.2f} samples/s {tokens / dt:.1f} tok/s")

        def factory() -> Backend:
            bar.update(job, description=f"loading {spec.name}")
            b = get_backend(sample.backend, spec, batch_size=sample.batch_size,
                            models_dir=models_dir)
            bar.update(job, description=f"generate {spec.name} {task}")
            return b

        summary = generate.run(store, folder, prompt_recs, gspec, factory, progress=tick)
        bar.update(job, completed=summary.generated, total=max(summary.generated, 1))
    return summary


def run_generate(params: Params, model: str, task: str, quiet: bool = False) -> GenerateSummary:
    """The generate stage for one (model, task) of a params file; prints a summary line."""
    from gvstore.store import Store

    summary = generate_task(
        Store(params.base.store), params.model(model), task, params.task(task), params.sample,
        seed=params.base.seed, round_=None, models_dir=Path(params.base.models_dir),
        folder=f"generate/{task}", quiet=quiet,
    )
    d = summary.as_dict()
    note(
        f"generate {model} {task}: {summary.generated} generated, {summary.present} already "
        f"present ({summary.prompts} prompts x n={params.sample.n}); "
        f"{d['samples_per_s'] or 0} samples/s, {d['tokens_per_s'] or 0} tok/s, "
        f"{summary.seconds:.1f} s")
    return summary
