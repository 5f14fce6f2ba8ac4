"""``gvstore select | nscale``: selection (best-of-n, maj@n, weighted maj@n) next to pass@n,
and how each scales with the samples n' and the verification repeats m' (docs/metrics.md,
"Selection" and "Scaling with n offline"). Register with ``register(app)``; nothing heavy is
imported until a command runs.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.cli.analysis import LevelOpt, ResamplesOpt, SeedOpt, dataset
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
from gvstore.output import fmt, table

ScoresArg = Annotated[list[str], typer.Argument(
    help="Scores to select by: mc, 'mean(mc,cot_score)', tournament; a spec with a rule "
    "(mc:quantile=0.8) also reports that filter's gap.")]
LIFT = ("task", "generator", "round", "verifier")


def _ci(x: float | None, lo: float | None, hi: float | None) -> Text | None:
    if x is None:
        return None
    if lo is None or hi is None or lo != lo:
        return Text(fmt(x))
    return Text(f"{fmt(x)}\n[{fmt(lo)}, {fmt(hi)}]")


def _row_ci(r: Any, name: str) -> Text | None:
    return _ci(getattr(r, name), getattr(r, f"{name}_lo"), getattr(r, f"{name}_hi"))


def _plot_note(plot: Any, as_json: bool) -> list[object]:
    return [f"plot written to {plot}"] if plot is not None and not as_json else []


def select_cmd(
    ctx: typer.Context, scores: ScoresArg,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Best-of-n, majority vote (maj@n) and verifier-weighted majority vote, next to pass@n
    (the oracle) and a random sample; selection gap = pass@n - selection accuracy. --seed
    seeds the tie rule and the bootstrap."""
    from gvstore.analysis.choice import selection_table

    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    rows = selection_table(ds, scores, resamples=resamples, seed=seed, level=level)
    if not rows:
        raise GvstoreError("no graded generations with verifications for these scores match "
                           "the filters")
    if plot is not None:
        from gvstore.analysis.choice_plots import select_figure

        select_figure(rows, plot)
    emit({"results": [r.to_dict() for r in rows],
          "plot": str(plot) if plot is not None else None}, as_json, *_select_tables(rows),
         *_plot_note(plot, as_json))


def _select_tables(rows: list[Any]) -> list[object]:
    """Accuracies, then the selection gaps (and each filter's gap)."""
    r0 = rows[0]
    acc = [[r.task, r.generator, r.round, r.verifier, r.filter or r.score, r.prompts,
            f"{r.n_min}" if r.n_min == r.n_max else f"{r.n_min}-{r.n_max}",
            *(_row_ci(r, k) for k in ("base", "best_of_n", "maj", "wmaj", "pass_at_n"))]
           for r in rows]
    gaps = [[r.task, r.generator, r.round, r.verifier, r.filter or r.score,
             *(_row_ci(r, k) for k in ("best_of_n_gap", "maj_gap", "wmaj_gap")),
             _row_ci(r, "filter_gap"), r.tied_top_prompts, r.null_score_prompts]
            for r in rows]
    return [
        table(f"selection accuracy ({r0.utility} utility; [{r0.level:.0%} bootstrap "
              "interval]; random: the mean over samples)",
              [*LIFT, "spec", "prompts", "n", "random", "best-of-n", "maj@n",
               "weighted maj@n", "pass@n"], acc, lift=LIFT),
        table("selection gap = pass@n - accuracy (filter gap: of a spec with a rule; ties: "
              "prompts whose top score is shared; nulls: prompts with no score, a seeded "
              "random pick)",
              [*LIFT, "spec", "best-of-n", "maj@n", "weighted maj@n", "filter gap", "ties",
               "nulls"], gaps, lift=LIFT)]


def nscale_cmd(
    ctx: typer.Context, scores: ScoresArg,
    subsets: Annotated[int, typer.Option(
        "--subsets", help="Subsets of n' samples per prompt (and draws of m' repeats) where "
        "not every subset is enumerated.")] = 64,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Scaling with n offline: pass@n', best-of-n', maj@n', weighted maj@n' and a filter's
    gap with n' = 1, 2, 4, ... of the recorded samples per prompt (exact where possible,
    seeded subsets otherwise), and with m' of the recorded verification repeats."""
    from gvstore.analysis.nscale import nscale_table

    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    rows = nscale_table(ds, scores, subsets=subsets, resamples=resamples, seed=seed,
                        level=level)
    if not rows:
        raise GvstoreError("no graded generations with verifications for these scores match "
                           "the filters")
    if plot is not None:
        from gvstore.analysis.choice_plots import nscale_figure

        nscale_figure(rows, plot)
    emit({"results": [r.to_dict() for r in rows],
          "plot": str(plot) if plot is not None else None}, as_json,
         *(t for r in rows for t in _nscale_tables(r)), *_plot_note(plot, as_json))


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _nscale_tables(r: Any) -> list[object]:
    """The n' table and, with more than one repeat, the m' table of one result."""
    head = (f"{r.generator} verified by {r.verifier} ({r.task}, round {r.round}; score "
            f"{r.score}{'; filter ' + r.filter if r.filter else ''}; {r.prompts} prompts; "
            f"[{r.level:.0%} bootstrap interval])")
    gap = ["filter gap"] if r.filter else []
    out: list[object] = [table(
        f"scaling with n: {head}\nkept: the share of the full-n gain that n' keeps (best-of "
        "over a random sample" + (" / the filter gap)" if r.filter else ")")
        + f"; maj@n', weighted maj@n'{', filter gap' if r.filter else ''}: every n'-subset "
        f"at n' = {', '.join(str(p.n) for p in r.points if p.exact)}, else {r.subsets} "
        "seeded ones per prompt",
        ["n'", "tokens", "prompts", "pass@n'", "best-of-n'", "maj@n'", "weighted maj@n'",
         *gap, "kept"],
        [[p.n, round(p.tokens), p.prompts,
          *(_row_ci(p, k) for k in ("pass_at_n", "best_of_n", "maj", "wmaj")),
          *([_row_ci(p, "filter_gap")] if r.filter else []),
          _share(p.best_of_n_kept) + (f" / {_share(p.filter_gap_kept)}" if r.filter else "")]
         for p in r.points])]
    if len(r.repeats) > 1:
        out.append(table(
            f"scaling with verification repeats (all {r.n_max} samples): {head}",
            ["m'", "draws", "best-of-n", "weighted maj@n", *gap],
            [[p.m, p.draws, _row_ci(p, "best_of_n"), _row_ci(p, "wmaj"),
              *([_row_ci(p, "filter_gap")] if r.filter else [])] for p in r.repeats]))
    return out


def register(app: typer.Typer) -> None:
    """Add ``select`` and ``nscale`` to ``app``."""
    app.command("select")(select_cmd)
    app.command("nscale")(nscale_cmd)
