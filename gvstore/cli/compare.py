"""``gvstore transfer | compare``: threshold transfer across groups and paired comparisons
(``docs/metrics.md``, "Threshold transfer" and "Paired comparison"). Register with
``register(app)``; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.cli.analysis import (
    LevelOpt,
    ResamplesOpt,
    SeedOpt,
    _ci,
    _nothing,
    _plot_note,
    _values,
    dataset,
)
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

if TYPE_CHECKING:
    from gvstore.analysis.transfer import TransferMatrix, TransferRow

WHERE_HELP = ("DIM=VALUE[,DIM=VALUE] on task, generator, round, verifier (repeatable: any "
              "of them)")
WhereOpt = list[str] | None


def _verdict(word: str, prompts: int | None) -> str:
    from gvstore.analysis.verdicts import describe

    return describe(word, prompts)


def _transfer_table(rows: list[TransferRow], metric: str, pct: str) -> object:
    return table(f"threshold transfer of {rows[0].template} by {metric} ([{pct} bootstrap "
                 "interval over the target's prompts])", [
        "task", "generator", "round", "verifier", "chosen on", "chosen spec", "prompts",
        "transferred", "own best", "own spec", "loss", "verdict"], [
        [r.task, r.generator, r.round, r.verifier, r.chosen_on.replace("; ", "\n"),
         r.chosen_spec,
         r.prompts, _ci(r.transferred, r.transferred_lo, r.transferred_hi),
         _ci(r.own_best, r.own_best_lo, r.own_best_hi), r.own_spec,
         _ci(r.loss, r.loss_lo, r.loss_hi), _verdict(r.verdict, r.prompts_to_decide)]
        for r in rows], lift=("task", "generator", "round", "verifier"))


def _matrix_table(m: TransferMatrix, pct: str) -> object:
    rows = []
    for s in m.labels:
        row: list[object] = [s]
        for t in m.labels:
            c = m.cell(s, t)
            row.append(None if c is None else Text.assemble(
                _ci(c.loss, c.loss_lo, c.loss_hi), f"\nat {c.chosen_spec}\n",
                _verdict(c.verdict, c.prompts_to_decide)))
        rows.append(row)
    fixed = ", ".join(f"{k}={v}" for k, v in m.fixed.items())
    metric = m.cells[0].metric if m.cells else "gap"
    return table(f"loss in {metric} (own best - transferred; [{pct}]) of "
                 f"{m.cells[0].template if m.cells else ''}: {fixed} "
                 f"(rows: source {m.dim}, columns: target {m.dim})",
                 [f"source \\ target {m.dim}", *m.labels], rows)


def _emit_matrices(mats: list[TransferMatrix], tmpl: str, plot: Path | None, pct: str,
                   as_json: bool) -> None:
    if not mats:
        raise _nothing(f"verifications for {tmpl}")
    if plot is not None:
        from gvstore.analysis.compare_plots import transfer_heatmap

        transfer_heatmap(mats, plot)
    emit({"matrices": [m.to_dict() for m in mats],
          "plot": str(plot) if plot is not None else None}, as_json,
         *[_matrix_table(m, pct) for m in mats], *_plot_note(plot, as_json))


def transfer_cmd(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(
        help="A spec without its value: mc:quantile, cot_score:tau, tournament:rounds, "
        "'mean(mc,cot_score):quantile'.")],
    source: Annotated[WhereOpt, typer.Option(
        "--from", help=f"Source groups, where the value is chosen: {WHERE_HELP}.",
        show_default=False)] = None,
    target: Annotated[WhereOpt, typer.Option(
        "--to", help=f"Target groups: {WHERE_HELP}; default every group no --from meets.",
        show_default=False)] = None,
    matrix: Annotated[str | None, typer.Option(
        "--matrix", help="All pairs along one dimension (task, generator, round or verifier) "
        "instead of --from/--to.", show_default=False)] = None,
    metric: Annotated[str, typer.Option(
        "--metric", help="What the value maximises: gap or rel_gap.")] = "gap",
    values: Annotated[str | None, typer.Option(
        "--values", help="Comma-separated values to try.", show_default=False)] = None,
    span: Annotated[str | None, typer.Option(
        "--range", help="START:STOP:N evenly spaced values.", show_default=False)] = None,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Threshold transfer: choose a rule's value on the source groups (as sweep chooses), and
    report the gap it gives on each target next to the target's own best and the loss."""
    from gvstore.analysis.specs import parse_template
    from gvstore.analysis.transfer import parse_where, transfer, transfer_matrix

    tmpl = parse_template(template)
    vals = _values(values, span)
    if (matrix is None) == (not source):
        raise GvstoreError("give --from (and optionally --to), or --matrix DIM")
    if matrix is not None and target:
        raise GvstoreError("--to does not go with --matrix")
    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    pct = f"{level:.0%}"
    if matrix is not None:
        _emit_matrices(transfer_matrix(ds, tmpl, matrix, values=vals, metric=metric,
                                       resamples=resamples, seed=seed, level=level),
                       str(tmpl), plot, pct, as_json)
        return
    rows = transfer(ds, tmpl, [parse_where(s) for s in source or []],
                    [parse_where(t) for t in target or []] or None, values=vals, metric=metric,
                    resamples=resamples, seed=seed, level=level)
    if not rows:
        raise GvstoreError(
            f"no target group of {tmpl} has a source group: a target pairs with the sources "
            "that agree with it on every dimension neither --from nor --to names (name the "
            "verifier in both if it differs, e.g. --from generator=A,verifier=A)")
    if plot is not None:
        from gvstore.analysis.compare_plots import transfer_figure

        transfer_figure(rows, plot)
    emit({"results": [r.to_dict() for r in rows],
          "plot": str(plot) if plot is not None else None}, as_json,
         _transfer_table(rows, metric, pct), *_plot_note(plot, as_json))


def compare_cmd(
    ctx: typer.Context,
    spec_a: Annotated[str, typer.Argument(help="Side A's filter spec, e.g. mc:quantile=0.8.")],
    spec_b: Annotated[str | None, typer.Argument(
        help="Side B's filter spec (default: side A's).", show_default=False)] = None,
    a: Annotated[WhereOpt, typer.Option(
        "--a", help=f"Side A's groups: {WHERE_HELP}; with --b.", show_default=False)] = None,
    b: Annotated[WhereOpt, typer.Option(
        "--b", help=f"Side B's groups: {WHERE_HELP}; with --a.", show_default=False)] = None,
    store_b: Annotated[Path | None, typer.Option(
        "--store-b", help="Side B's store (default: side A's).", show_default=False)] = None,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL, plot: PlotOpt = None, store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Paired comparison on shared prompts: two specs, verifiers (--a verifier=X --b
    verifier=Y), rounds or stores (--store-b): the difference of gap with a paired interval
    and a verdict (A better, B better, no difference within +-0.005, or inconclusive)."""
    from gvstore.analysis.compare import compare
    from gvstore.analysis.specs import parse
    from gvstore.analysis.transfer import parse_where

    filters = make_filters(task, generator, verifier, rnd)
    ds = dataset(ctx, store, utility, filters, grader)
    ds_b = dataset(ctx, store_b, utility, filters, grader) if store_b is not None else None
    rep = compare(ds, parse(spec_a), parse(spec_b) if spec_b is not None else None,
                  a=[parse_where(s) for s in a or []], b=[parse_where(s) for s in b or []],
                  ds_b=ds_b, resamples=resamples, seed=seed, level=level)
    if not rep.rows:
        raise GvstoreError(
            "no group of side A shares a graded prompt with a group of side B (unpaired: "
            f"A {', '.join(rep.unpaired_a) or 'none'}; B {', '.join(rep.unpaired_b) or 'none'})")
    if plot is not None:
        from gvstore.analysis.compare_plots import compare_figure

        compare_figure(rep.rows, plot)
    pct = f"{level:.0%}"
    other = f" against store {store_b}" if store_b is not None else ""
    t = table(f"paired comparison on shared prompts{other} ({utility} utility; [{pct} paired "
              "bootstrap interval])", [
        "task", "generator", "round", "verifier", "B's group", "spec A", "spec B", "shared",
        "only A", "only B", "gap A", "gap B", "gap A - B", "reweighted A - B", "verdict"], [
        [r.task, r.generator, r.round, r.verifier, r.b_differs or "same", r.spec_a, r.spec_b,
         r.shared_prompts, r.only_a, r.only_b, _ci(r.gap_a, r.gap_a_lo, r.gap_a_hi),
         _ci(r.gap_b, r.gap_b_lo, r.gap_b_hi), _ci(r.diff, r.diff_lo, r.diff_hi),
         _ci(r.reweighted_diff, r.reweighted_diff_lo, r.reweighted_diff_hi),
         _verdict(r.verdict, r.prompts_to_decide)] for r in rep.rows],
        lift=("task", "generator", "round", "verifier", "B's group", "spec A", "spec B"))
    notes = [safe_text(f"unpaired on side {s}: {', '.join(keys)}")
             for s, keys in (("A", rep.unpaired_a), ("B", rep.unpaired_b)) if keys]
    emit({**rep.to_dict(), "plot": str(plot) if plot is not None else None}, as_json, t,
         *notes, *_plot_note(plot, as_json))


def register(app: typer.Typer) -> None:
    """Add ``transfer`` and ``compare`` to ``app``."""
    app.command("transfer")(transfer_cmd)
    app.command("compare")(compare_cmd)
