"""``gvstore rounds``: the round report of iterative self-improvement, from the store.

With a params file whose ``rounds`` section is on, the chain (round 0's model, then each
trained model), the verifier, the filter and the prompts come from it (with ``rounds.heldout``,
every round is shown on the training prompts and on the held-out ones). Otherwise give
``--task``: every (model, round) with generations of that task is a round, sorted by round.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.analysis.specs import parse
from gvstore.cli.console import emit
from gvstore.cli.options import GraderOpt, JsonOpt, PlotOpt, StoreOpt, get_store
from gvstore.errors import GvstoreError

if TYPE_CHECKING:
    from gvstore.analysis.rounds import RoundsReport


def rounds_cmd(
    ctx: typer.Context,
    params_file: Annotated[Path, typer.Option(
        "--params", help="A params file with a rounds section (used if it exists and no "
        "--task is given).")] = Path("params.yaml"),
    task: Annotated[str | None, typer.Option(
        "--task", "-t", help="Report this task's rounds from the store alone (every model and "
        "round with generations of it), ignoring the params file.", show_default=False)]
    = None,
    spec: Annotated[str | None, typer.Option(
        "--spec", help="With --task: the filter spec whose gap each round reports (e.g. "
        "cot_binary:tau=1; default: none, no gap).", show_default=False)] = None,
    verifier: Annotated[str, typer.Option(
        "--verifier", "-v", help="With --task: whose verifications the gap uses: self (each "
        "round's own model) or a model name.")] = "self",
    k: Annotated[list[int] | None, typer.Option(
        "--k", "-k", help="pass@k for this k (repeatable; default: report.passk of the params, "
        "else 1 2 4 8).", show_default=False)] = None,
    utility: Annotated[str | None, typer.Option(
        "--utility", "-u", help="Ground truth for gap and pass@k: strict or flexible answer "
        "match (default: report.utility of the params, else strict; accuracy shows both).",
        show_default=False)] = None,
    resamples: Annotated[int | None, typer.Option(
        "--resamples", help="Bootstrap resamples over prompts (0: no intervals; default: "
        "report.resamples of the params, else 1000).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the bootstrap (default: base.seed of the params, else 0).",
        show_default=False)] = None,
    grader: GraderOpt = None,
    plot: PlotOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per round: accuracy (strict and flexible apart), gap and relative gap with bootstrap
    intervals, pass@k, and answer diversity (distinct and effective answers), with the trend
    from the first round to the last. docs/metrics_extra.md defines each number."""
    from gvstore.analysis.plots import rounds_figure
    from gvstore.report import rounds_views

    if task is None:
        rep = _from_params(ctx, params_file, store, k=k, utility=utility, resamples=resamples,
                           seed=seed, grader=grader)
    else:
        rep = _from_store(ctx, store, task, spec, verifier, k=k, utility=utility,
                          resamples=resamples, seed=seed, grader=grader)
    if plot is not None:
        rounds_figure(rep, plot)
    data = rep.to_dict()
    emit(data, as_json, *rounds_views(data))


def _from_params(ctx: typer.Context, params_file: Path, store_path: Path | None, *,
                 k: list[int] | None, utility: str | None, resamples: int | None,
                 seed: int | None, grader: str | None) -> RoundsReport:
    """The report of a params file's rounds (training and held-out prompts); the options
    override its report section."""
    from gvstore.params import load
    from gvstore.steps import rounds
    from gvstore.store import Store

    if not params_file.is_file():
        raise GvstoreError(f"no {params_file}: give --params FILE with a rounds section, "
                           "or --task to read the rounds from the store")
    params = load(params_file)
    if not params.rounds.enabled:
        raise GvstoreError(f"{params_file} has no rounds (rounds.start is empty); give "
                           "--task to read the rounds from the store")
    obj = ctx.find_root().obj or {}
    store = Store(store_path or obj.get("store") or params.base.store)
    if not store.root.exists():
        raise GvstoreError(f"no store at {store.root}: run the study first (dvc repro)")
    return rounds.report(params, store, ks=k, utility=utility, resamples=resamples, seed=seed,
                         grader=grader)


def _from_store(ctx: typer.Context, store_path: Path | None, task: str, spec: str | None,
                verifier: str, *, k: list[int] | None, utility: str | None,
                resamples: int | None, seed: int | None, grader: str | None) -> RoundsReport:
    """The report of every (model, round) with generations of ``task`` in the store."""
    from gvstore.analysis.rounds import infer_chain, round_report
    from gvstore.replay import Projections

    store = get_store(ctx, store_path)
    if not store.root.exists():
        raise GvstoreError(f"no store at {store.root} (set --store or GVSTORE_STORE)")
    proj = Projections(store)
    chain = infer_chain(proj, task, None if verifier == "none" else verifier)
    return round_report(proj, task, chain, spec=parse(spec) if spec else None,
                        ks=k or (1, 2, 4, 8), utility=utility or "strict",
                        resamples=1000 if resamples is None else resamples,
                        seed=seed or 0, grader=grader)
