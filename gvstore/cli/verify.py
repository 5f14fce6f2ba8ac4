"""``gvstore verify``: the command that runs a verifier model over stored generations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.cli.console import emit, note
from gvstore.cli.options import BACKEND_HELP, JsonOpt, StoreOpt, get_store
from gvstore.cli.runner_opts import (
    RayActorsOpt,
    RayAddressOpt,
    RayGpusOpt,
    RunnerKind,
    RunnerOpt,
    runner_params,
)
from gvstore.output import table
from gvstore.progress import verify_bar
from gvstore.records import Sampling
from gvstore.verifiers.registry import names_text

if TYPE_CHECKING:
    from gvstore.models import ModelSpec
    from gvstore.steps.verify import VerifySummary

METHOD_HELP = names_text() + "."


def default_folder(verifier: str, method: str, task: str) -> str:
    """The store folder ``gvstore verify`` writes by default."""
    return f"verify-{verifier}-{method}-{task}"


def _verifier_spec(verifier: str, verifier_path: Path | None, base: bool) -> ModelSpec:
    from gvstore.models import ModelSpec, builtin

    if verifier_path is not None:
        return ModelSpec(name=verifier_path.name, source="local", path=str(verifier_path),
                         kind="base" if base else "instruct")
    return builtin(verifier)


def verify_cmd(  # Long because each of its options is a line of the signature
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
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "transformers",
    batch_size: Annotated[int, typer.Option(help="Requests per model batch.")] = 8,
    models_dir: Annotated[Path, typer.Option(
        "--models-dir", help="Where prepare-model puts converted models.")] = Path("data/models"),
    folder: Annotated[str | None, typer.Option(
        help="Store folder to write (default: verify-<verifier>-<method>-<task>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    runner: RunnerOpt = RunnerKind.local,
    ray_address: RayAddressOpt = None,
    ray_actors: RayActorsOpt = None,
    ray_gpus: RayGpusOpt = 0.0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify stored generations; only the verifications missing from the store are made."""
    from gvstore.steps.verify import verify_task

    spec = _verifier_spec(verifier, verifier_path, base)
    on = runner_params(runner, ray_address, ray_actors, ray_gpus)
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    out_folder = folder or default_folder(spec.name, method, task)
    with verify_bar(method, spec.name, task, quiet) as bar:
        summary = verify_task(get_store(ctx, store, must_exist=False), spec, method, task,
                              sampling=sampling, repeats=repeats, rounds=rounds, seed=seed,
                              backend=backend, batch_size=batch_size, generator=generator,
                              round_=round_, models_dir=models_dir, folder=out_folder,
                              progress=bar, runner=on)
    data = summary.as_dict() | {"task": task, "folder": out_folder}
    if summary.foreign and not as_json:
        note(f"warning: the store already holds {summary.foreign} round-0 matches of "
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
