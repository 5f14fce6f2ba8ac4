"""``gvstore verify``: the command that runs a verifier model over stored generations."""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.cli.options import JsonOpt, get_store
from gvstore.errors import GvstoreError
from gvstore.output import emit, note, table
from gvstore.progress import progress
from gvstore.records import Sampling

if TYPE_CHECKING:
    from gvstore.backends.base import Backend
    from gvstore.models import ModelSpec
    from gvstore.params import Params
    from gvstore.steps.verify import VerifySpec, VerifySummary
    from gvstore.store import Store

METHOD_HELP = "mc, cot_binary, cot_score or tournament."


def default_folder(verifier: str, method: str, task: str) -> str:
    """The store folder ``gvstore verify`` writes by default."""
    return f"verify-{verifier}-{method}-{task}"


def _verifier_spec(verifier: str, verifier_path: Path | None, base: bool) -> ModelSpec:
    from gvstore.models import ModelSpec, builtin

    if verifier_path is not None:
        return ModelSpec(name=verifier_path.name, source="local", path=str(verifier_path),
                         kind="base" if base else "instruct")
    return builtin(verifier)


def verify_cmd(
    ctx: typer.Context,
    method: Annotated[str, typer.Option(help=METHOD_HELP)],
    verifier: Annotated[str, typer.Option(
        help="The verifier: a built-in model name (may differ from the generator: "
        "cross-verification).")] = "smollm2-135m-instruct",
    verifier_path: Annotated[Path | None, typer.Option(
        "--verifier-path", help="A local transformers model folder as the verifier; "
        "overrides --verifier.")] = None,
    base: Annotated[bool, typer.Option(
        "--base", help="With --verifier-path: a base model (raw prompts, no chat "
        "template).")] = False,
    task: Annotated[str, typer.Option(help="Task whose generations are verified.")] = "arith",
    generator: Annotated[str | None, typer.Option(
        help="Only generations of this model (default: every generator).")] = None,
    round_: Annotated[int | None, typer.Option(
        "--round", help="Only generations of this self-improvement round.")] = None,
    repeats: Annotated[int, typer.Option(
        help="Verifications per generation (m; cot and tournament only: mc is "
        "deterministic).")] = 1,
    rounds: Annotated[int, typer.Option(
        help="Tournament: rounds of single elimination; brackets of 2**rounds "
        "samples.")] = 3,
    max_tokens: Annotated[int, typer.Option(
        help="Most new tokens of a cot or tournament verdict.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 means greedy.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Base seed of the per-request seeds.")] = 0,
    backend: Annotated[str, typer.Option(help="transformers, vllm or openai.")] = "transformers",
    batch_size: Annotated[int, typer.Option(help="Requests per model batch.")] = 8,
    models_dir: Annotated[Path, typer.Option(
        "--models-dir", help="Where prepare-model puts converted models.")] = Path("data/models"),
    folder: Annotated[str | None, typer.Option(
        help="Store folder to write (default: verify-<verifier>-<method>-<task>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify stored generations; only the verifications missing from the store are made."""
    spec = _verifier_spec(verifier, verifier_path, base)
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    out_folder = folder or default_folder(spec.name, method, task)
    summary = verify_task(
        get_store(ctx, must_exist=False), spec, method, task, sampling=sampling,
        repeats=repeats, rounds=rounds, seed=seed, backend=backend, batch_size=batch_size,
        generator=generator, round_=round_, models_dir=models_dir, folder=out_folder, quiet=quiet,
    )
    data = summary.as_dict() | {"task": task, "folder": out_folder}
    if summary.foreign and not as_json:
        note(
            f"warning: the store already holds {summary.foreign} round-0 matches of "
            f"{spec.name} on these prompts from another bracket size, seed, sampling or "
            "template; the analysis will read both tournaments together")
    if summary.made == 0:
        unit = "matches" if method == "tournament" else "verifications"
        emit(data, as_json, f"nothing to do: all {summary.requested} {unit} are in the store")
        return
    emit(data, as_json, summary_table(summary, task))


def summary_table(summary: VerifySummary, task: str) -> object:
    """The human-readable summary of one verify run."""
    rows: list[list[object]] = [
        ["generations", summary.generations],
        ["requested", summary.requested], ["already in the store", summary.present],
        ["made now", summary.made],
        ["parse failure rate", summary.parse_failure_rate],
        ["parse statuses", dict(sorted(summary.statuses.items()))],
        ["seconds per call", summary.seconds_per_call],
        ["seconds", round(summary.seconds, 1)],
    ]
    if summary.method == "tournament":
        rows += [["rounds played", summary.rounds_played], ["byes", summary.byes],
                 ["position bias (A wins)", summary.position_bias]]
    else:
        rows.append(["score histogram", summary.histogram])
    return table(f"verify {summary.method} by {summary.verifier} on {task}", ["", "value"],
                 rows)


def verify_task(
    store: Store,
    verifier: ModelSpec,
    method: str,
    task: str,
    *,
    sampling: Sampling,
    repeats: int,
    rounds: int,
    seed: int,
    backend: str,
    batch_size: int,
    models_dir: Path,
    folder: str,
    generator: str | None = None,
    round_: int | None = None,
    prompt_ids: Collection[str] | None = None,
    quiet: bool = False,
) -> VerifySummary:
    """Verify one task's stored generations with one verifier and method, with a progress bar.
    The verifier's weights are resolved (and digested) now; the model loads only if some
    verification is missing."""
    from gvstore.backends import get_backend
    from gvstore.models import resolve
    from gvstore.steps.verify import VerifySpec, run, select

    vspec: VerifySpec = VerifySpec(
        method=method, verifier=verifier.name,
        verifier_digest=resolve(verifier, models_dir).digest, backend=backend,
        verifier_kind=verifier.kind, sampling=sampling, repeats=repeats, rounds=rounds,
        seed=seed, batch_size=batch_size,
    )
    vspec.check()
    selection = select(store, task, generator, round_, prompt_ids)
    if not selection.generations:
        raise GvstoreError(f"no generations of task {task!r} in {store.root}"
                           + (f" by {generator!r}" if generator else "")
                           + (f" in round {round_}" if round_ is not None else "")
                           + "; run `gvstore generate` first")
    unit = "matches" if method == "tournament" else "verifications"
    with progress(quiet) as bar:
        job = bar.add_task(f"verify {method} {verifier.name} {task}", total=None, rate="")
        t0 = [0.0]

        def tick(done: int, total: int) -> None:
            if not t0[0]:
                t0[0] = time.monotonic()
            dt = max(time.monotonic() - t0[0], 1e-9)
            bar.update(job, completed=done, total=total, rate=f"{done / dt:.2f} {unit}/s")

        def factory() -> Backend:
            bar.update(job, description=f"loading {verifier.name}")
            b = get_backend(backend, verifier, batch_size=batch_size, models_dir=models_dir)
            bar.update(job, description=f"verify {method} {verifier.name} {task}")
            return b

        summary = run(store, folder, selection, vspec, factory, progress=tick)
        bar.update(job, completed=summary.made, total=max(summary.made, 1))
    return summary


def run_verify(params: Params, verifier: str, method: str, task: str,
               quiet: bool = False) -> VerifySummary:
    """The verify stage for one (verifier, method, task) of a params file, into
    ``verify/<method>-<task>`` (the stage's DVC output); prints one summary line.

    ``mc`` always makes one verification per generation (its scores are deterministic), so
    ``verify.repeats`` applies to the sampled methods only.
    """
    from gvstore.store import Store

    v = params.verify
    summary = verify_task(
        Store(params.base.store), params.model(verifier), method, task,
        sampling=Sampling(temperature=v.temperature, max_tokens=v.max_tokens),
        repeats=1 if method == "mc" else v.repeats, rounds=v.tournament_rounds,
        seed=params.base.seed, backend=v.backend, batch_size=v.batch_size,
        models_dir=Path(params.base.models_dir), folder=f"verify/{method}-{task}", quiet=quiet,
    )
    d = summary.as_dict()
    note(
        f"verify {method} {verifier} {task}: {summary.made} made, {summary.present} already "
        f"present ({summary.generations} generations); parse failure rate "
        f"{d['parse_failure_rate']}, {d['seconds_per_call']} s per call, "
        f"{summary.seconds:.1f} s")
    return summary
