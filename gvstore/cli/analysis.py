"""``gvstore gap | sweep | cross | weights | export``: the generation-verification gap.

Every command reads the store's projections (cached), applies the filters (``--task``,
``--generator``, ``--verifier``, ``--round``, each repeatable) and prints tables, or JSON with
``--json``. ``docs/metrics.md`` defines every number. Register with ``register(app)``.
Nothing heavy is imported until a command runs (``gvstore --help`` loads no polars or numpy).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.analysis.specs import parse, parse_template
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
    get_store,
    make_filters,
)
from gvstore.errors import GvstoreError
from gvstore.output import fmt, table

if TYPE_CHECKING:
    from gvstore.analysis.frames import Dataset, Filters

ResamplesOpt = Annotated[int, typer.Option(
    "--resamples", help="Bootstrap resamples over prompts (0: no intervals).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]
LevelOpt = Annotated[float, typer.Option("--level", help="Confidence level of intervals.")]


def dataset(ctx: typer.Context, store: Path | None, utility: str | None, filters: Filters,
            grader: str | None = None) -> Dataset:
    """The filtered view of the command's store (which must exist)."""
    from gvstore.analysis.frames import Dataset
    from gvstore.replay import Projections

    proj = Projections(get_store(ctx, store))
    return Dataset(proj, utility=utility, filters=filters, grader=grader)


def _ci(x: float, lo: float, hi: float) -> Text:
    """A cell: the value, with its interval on a second line (a Text, so the table keeps the
    line break; a str cell is one line)."""
    if lo != lo:  # NaN: no interval
        return Text(fmt(x))
    return Text(f"{fmt(x)}\n[{fmt(lo)}, {fmt(hi)}]")


def _nothing(what: str) -> GvstoreError:
    return GvstoreError(f"no graded generations with {what} match the filters")


def _plot_note(plot: Path | None, as_json: bool) -> list[object]:
    return [f"plot written to {plot}"] if plot is not None and not as_json else []


def gap_cmd(
    ctx: typer.Context,
    specs: Annotated[list[str], typer.Argument(
        help="Filter specs, e.g. mc:quantile=0.8 'and(mc:tau=0.5,cot_binary:tau=1)'.")],
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Base accuracy, reweighted accuracy, gap and relative gap of each spec, with bootstrap
    intervals over prompts and a verdict: improvable or worse (the interval excludes 0), no
    gap (it lies within +-0.005), or inconclusive (with about how many prompts would decide)."""
    from gvstore.analysis.gap import gap_table
    from gvstore.analysis.verdicts import describe

    parsed = [parse(s) for s in specs]
    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    rows = gap_table(ds, parsed, resamples=resamples, seed=seed, level=level)
    if not rows:
        raise _nothing("verifications for these specs")
    pct = f"{level:.0%}"
    t = table(f"generation-verification gap ({utility} utility; [{pct} bootstrap interval])", [
        "task", "generator", "round", "verifier", "spec", "prompts", "base", "reweighted",
        "gap", "rel gap", "kept", "empty", "acc=1", "verdict"], [
        [r.task, r.generator, r.round, r.verifier, r.spec, r.prompts,
         _ci(r.base, r.base_lo, r.base_hi),
         _ci(r.reweighted, r.reweighted_lo, r.reweighted_hi), _ci(r.gap, r.gap_lo, r.gap_hi),
         _ci(r.rel_gap, r.rel_gap_lo, r.rel_gap_hi), r.kept, r.empty_prompts,
         r.perfect_prompts, describe(r.verdict, r.prompts_to_decide)] for r in rows],
        lift=("task", "generator", "round", "verifier"))
    emit({"results": [r.to_dict() for r in rows]}, as_json, t)


def _values(values: str | None, span: str | None) -> list[float] | None:
    if values and span:
        raise GvstoreError("give --values or --range, not both")
    try:
        if values:
            return [float(v) for v in values.split(",") if v.strip()]
        if span:
            start, stop, n = span.split(":")
            import numpy as np

            return [round(float(v), 10) for v in np.linspace(float(start), float(stop),
                                                              int(n))]
    except ValueError as exc:
        raise GvstoreError(f"bad --values/--range ({exc}); e.g. --values 0.5,0.8 or "
                           "--range 0:1:101") from None
    return None


def _sweep_tables(results: list[Any], chosen: list[Any]) -> list[object]:
    """One table per sweep, then one per honest choice (held-out against in-sample)."""
    renders: list[object] = []
    for r in results:
        renders.append(table(
            f"{r.template} sweep: {r.generator} verified by {r.verifier} ({r.task}, round "
            f"{r.round}; {r.prompts} prompts, base {fmt(r.base)})",
            [r.rule, "reweighted", "gap", "rel gap", "kept", "empty"],
            [[p.value, p.reweighted, _ci(p.gap, p.gap_lo, p.gap_hi),
              _ci(p.rel_gap, p.rel_gap_lo, p.rel_gap_hi), p.kept, p.empty_prompts]
             for p in r.points]))
    for c in chosen:
        renders.append(table(
            f"choice of {c.template} by {c.metric}: {c.generator} / {c.verifier}", [
                "estimate", "value", "gap", "rel gap", "prompts"], [
                [f"held-out (chosen on {c.select_prompts} prompts, scored on the others)",
                 c.held_out_value, _ci(c.held_out_gap, c.held_out_gap_lo, c.held_out_gap_hi),
                 _ci(c.held_out_rel_gap, c.held_out_rel_gap_lo, c.held_out_rel_gap_hi),
                 c.eval_prompts],
                ["in-sample (chosen and scored on all prompts; optimistic, paper-style)",
                 c.in_sample_value, _ci(c.in_sample_gap, c.in_sample_gap_lo,
                                        c.in_sample_gap_hi), c.in_sample_rel_gap,
                 c.select_prompts + c.eval_prompts]]))
    return renders


def sweep_cmd(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(
        help="What to sweep: a spec without its value, e.g. mc:quantile, cot_score:tau, "
        "tournament:rounds, 'mean(mc,cot_score):quantile'.")],
    values: Annotated[str | None, typer.Option(
        "--values", help="Comma-separated values to try.", show_default=False)] = None,
    span: Annotated[str | None, typer.Option(
        "--range", help="START:STOP:N evenly spaced values.", show_default=False)] = None,
    select_on: Annotated[str | None, typer.Option(
        "--select-on", help="Honest choice: pick the value maximising gap or rel_gap on a "
        "random part of the prompts and report its gap on the rest.",
        show_default=False)] = None,
    select_fraction: Annotated[float, typer.Option(
        "--select-fraction", help="Share of prompts used to pick the value.")] = 0.5,
    select_seed: Annotated[int, typer.Option(
        "--select-seed", help="Seed of the prompt split.")] = 0,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Gap and relative gap over a range of thresholds, quantiles or tournament rounds."""
    from gvstore.analysis.plots import sweep_figure
    from gvstore.analysis.sweep import select, sweep

    tmpl = parse_template(template)
    vals = _values(values, span)
    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    results = sweep(ds, tmpl, vals, resamples=resamples, seed=seed, level=level)
    if not results:
        raise _nothing(f"verifications for {tmpl}")
    chosen = [select(r, tmpl, metric=select_on, fraction=select_fraction, seed=select_seed,
                     resamples=resamples, level=level) for r in results] if select_on else []
    if plot is not None:
        sweep_figure(results, plot)
    emit({"sweeps": [r.to_dict() for r in results],
          "selection": [c.to_dict() for c in chosen],
          "plot": str(plot) if plot is not None else None}, as_json,
         *_sweep_tables(results, chosen), *_plot_note(plot, as_json))


def cross_cmd(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(help="The filter spec every cell uses.")],
    metric: Annotated[str, typer.Option(
        "--metric", help="Cell value: gap, rel_gap or reweighted.")] = "gap",
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cross-verification matrix: the gap of one spec per (generator, verifier) pair."""
    from gvstore.analysis.cross import METRICS, cross_matrices
    from gvstore.analysis.plots import cross_figure
    from gvstore.analysis.verdicts import describe

    if metric not in METRICS:
        raise GvstoreError(f"--metric takes one of {', '.join(METRICS)}, not {metric!r}")
    parsed = parse(spec)
    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    mats = cross_matrices(ds, parsed, resamples=resamples, seed=seed, level=level)
    if not mats:
        raise _nothing(f"verifications for {parsed}")
    if plot is not None:
        cross_figure(mats, plot, metric)
    renders: list[object] = []
    for m in mats:
        rows = []
        for g in m.generators:
            row: list[object] = [g]
            for v in m.verifiers:
                c = m.cells.get((g, v))
                if c is None:
                    row.append(None)
                elif metric == "reweighted":
                    row.append(_ci(c.reweighted, c.reweighted_lo, c.reweighted_hi))
                else:
                    cell = _ci(getattr(c, metric), getattr(c, metric + "_lo"),
                               getattr(c, metric + "_hi"))
                    # the verdict reads the gap's interval, whichever metric is shown
                    row.append(Text.assemble(cell, "\n", describe(c.verdict, c.prompts_to_decide))
                               if c.resamples else cell)
            rows.append(row)
        renders.append(table(f"{metric} of {m.spec}: {m.task}, round {m.round} "
                             "(rows: generator, columns: verifier)",
                             ["generator \\ verifier", *m.verifiers], rows))
    emit({"metric": metric, "matrices": [m.to_dict() for m in mats],
          "plot": str(plot) if plot is not None else None}, as_json, *renders,
         *_plot_note(plot, as_json))


def weights_cmd(
    ctx: typer.Context,
    specs: Annotated[list[str], typer.Argument(help="Filter specs to materialise.")],
    folder: Annotated[str, typer.Option(
        "--folder", help="Store folder the weight records go to.")] = "weights",
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Write Weight records (one per generation, spec and verifier); skips those present."""
    from gvstore.steps.weights import materialise

    parsed = [parse(s) for s in specs]
    rep = materialise(get_store(ctx, store), parsed,
                      filters=make_filters(task, generator, verifier, rnd), folder=folder)
    data = {"specs": [str(s) for s in parsed], "computed": rep.computed,
            "written": rep.written, "present": rep.present, "folder": folder}
    emit(data, as_json, f"weights: {rep.computed} computed, {rep.written} written, "
         f"{rep.present} already present (folder {folder})")


export_app = typer.Typer(help="Training sets selected by a filter spec.", no_args_is_help=True)

SpecOpt = Annotated[str, typer.Option("--spec", help="The filter spec that selects.")]
OutOpt = Annotated[Path, typer.Option("--out", help="JSONL file to write (atomically).")]


def _export(ctx: typer.Context, store: Path | None, kind: str, spec: str, out: Path,
            filters: Filters, as_json: bool) -> None:
    from gvstore.analysis.export import export_pairs, export_sft
    from gvstore.replay import Projections

    parsed = parse(spec)
    st = get_store(ctx, store)
    fn = export_sft if kind == "sft" else export_pairs
    rep = fn(st, parsed, out, filters=filters, proj=Projections(st))
    emit(rep.to_dict(), as_json,
         f"{kind}: wrote {rep.lines} lines for {rep.prompts} prompts to {rep.path} "
         f"({rep.skipped_prompts} prompts gave nothing; verifier {rep.verifier})")


@export_app.command("sft")
def export_sft_cmd(
    ctx: typer.Context, spec: SpecOpt, out: OutOpt,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """The kept (prompt, generation) pairs as chat-format JSONL, with their weights."""
    _export(ctx, store, "sft", spec, out, make_filters(task, generator, verifier, rnd), as_json)


@export_app.command("pairs")
def export_pairs_cmd(
    ctx: typer.Context, spec: SpecOpt, out: OutOpt,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """(prompt, chosen, rejected) preference pairs, chosen and rejected by the verifier only."""
    _export(ctx, store, "pairs", spec, out, make_filters(task, generator, verifier, rnd), as_json)


def register(app: typer.Typer) -> None:
    """Add ``gap``, ``sweep``, ``cross``, ``weights`` and ``export`` to ``app``."""
    app.command("gap")(gap_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("cross")(cross_cmd)
    app.command("weights")(weights_cmd)
    app.add_typer(export_app, name="export")


# Other export formats register themselves on export_app (one module each).
from gvstore.cli import export_parquet  # noqa: E402,F401
