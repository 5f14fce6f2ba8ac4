"""``gvstore ensembles``: learned ensembles against the best single method and the best
hand-made ensemble, each scored on held-out prompt folds (``gvstore.analysis.learned_eval``;
``docs/metrics.md`` defines every number). Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.cli.analysis import LevelOpt, ResamplesOpt, SeedOpt, _ci, _nothing, _plot_note, dataset
from gvstore.cli.console import emit
from gvstore.cli.options import (
    GeneratorOpt,
    GraderOpt,
    JsonOpt,
    PlotOpt,
    RoundOpt,
    StoreOpt,
    TaskOpt,
    UtilityOpt,
    VerifierOpt,
    make_filters,
)
from gvstore.errors import GvstoreError
from gvstore.output import safe_text, table


def ensembles_cmd(
    ctx: typer.Context,
    methods: Annotated[list[str], typer.Argument(
        help="Score methods to combine, e.g. mc cot_score.")],
    folds: Annotated[int, typer.Option("--folds", help="Folds over prompts (k >= 2).")] = 5,
    fold_seed: Annotated[int, typer.Option(
        "--fold-seed", help="Seed of the deal of prompts into folds.")] = 0,
    rule: Annotated[str, typer.Option(
        "--rule", help="The learned models' rule on P(correct): 'chosen' (a quantile picked "
        "on the training folds, as for the others) or a fixed one, e.g. tau=0.5.")] = "chosen",
    norm: Annotated[str, typer.Option(
        "--norm", help="Per-prompt normalisation of the learned models' features: rank, "
        "minmax, z or none.")] = "rank",
    grid: Annotated[int, typer.Option(
        "--grid", help="How many quantiles (0..1) the choices (single, hand-made, learned) "
        "try.")] = 21,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learned LR and NB ensembles next to the best single method and the best and/or/mean
    ensemble, each chosen or trained on k-1 prompt folds and scored on the held-out one."""
    from gvstore.analysis.learned_eval import Settings, compare, figure
    from gvstore.analysis.specs import Learned, parse
    from gvstore.analysis.verdicts import describe

    if not 2 <= folds <= 1000:  # say it of the flag, not of the spec built from it
        raise GvstoreError(f"--folds takes a whole number from 2 to 1000, not {folds}")
    fixed = f"{rule}," if rule != "chosen" else ""
    spec = parse(f"learned(lr,{','.join(methods)}):{fixed}norm={norm},folds={folds},"
                 f"seed={fold_seed}")
    if not isinstance(spec, Learned):
        raise GvstoreError(f"--rule takes 'chosen' or one rule (e.g. tau=0.5), not {rule!r}")
    cfg = Settings(folds=spec.folds, fold_seed=spec.seed, rule=spec.rule if fixed else None,
                   norm=spec.norm,
                   grid=grid, resamples=resamples, seed=seed, level=level)
    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    rows = compare(ds, spec.methods, cfg)
    if not rows:
        raise _nothing(f"{', '.join(spec.methods)} verifications")
    if plot is not None:
        figure(rows, plot)
    t = table(f"held-out gap over {cfg.folds} prompt folds (fold seed {cfg.fold_seed}; "
              f"{utility} utility; [{level:.0%} bootstrap interval])", [
        "task", "generator", "round", "verifier", "candidate", "spec (per fold)", "prompts",
        "gap", "rel gap", "vs best single", "verdict"], [
        [r.task, r.generator, r.round, r.verifier, r.candidate,
         Text(safe_text(r.spec.replace("; ", "\n").replace("):", ")\n:"), multiline=True)),
         r.prompts, _ci(r.gap, r.gap_lo, r.gap_hi), _ci(r.rel_gap, r.rel_gap_lo, r.rel_gap_hi),
         None if r.vs_single is None else _ci(r.vs_single, r.vs_single_lo or 0.0,
                                               r.vs_single_hi or 0.0),
         None if r.vs_single_verdict is None else describe(r.vs_single_verdict,
                                                           r.vs_single_prompts_to_decide)]
        for r in rows], lift=("task", "generator", "round", "verifier"))
    emit({"results": [r.to_dict() for r in rows],
          "plot": str(plot) if plot is not None else None}, as_json, t,
         *_plot_note(plot, as_json))
