"""``gvstore scaling``: the relative gap against pretraining compute (figure 1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from gvstore.cli.console import emit
from gvstore.cli.metrics import GraderOpt, PlotOpt, projections, wrote
from gvstore.cli.options import (
    JsonOpt,
    RoundOpt,
    StoreOpt,
    TaskOpt,
    UtilityOpt,
    VerifierOpt,
    make_filters,
)
from gvstore.errors import GvstoreError
from gvstore.output import table


def _store_gaps(
    proj: Any, spec: str, task: list[str] | None, round_: list[int] | None,
    verifier: list[str] | None, utility: str, grader: str | None,
) -> Callable[[str], float | None]:
    """Each generator's relative gap under ``spec``, from the store (``gvstore.analysis.gap``).

    Without ``--verifier`` only self-verification counts (verifier = generator), as in
    figure 1. A model must be left with one (task, round, verifier) group.
    """
    from gvstore.analysis.frames import Dataset
    from gvstore.analysis.gap import gap_table
    from gvstore.analysis.specs import parse

    ds = Dataset(proj, utility=utility, grader=grader, filters=make_filters(
        task=task, verifier=verifier, rnd=round_))
    rows = gap_table(ds, [parse(spec)], resamples=0)
    if not verifier:
        rows = [r for r in rows if r.verifier == r.generator]
    by_model: dict[str, list[Any]] = {}
    for r in rows:
        by_model.setdefault(r.generator, []).append(r)
    for model, found in sorted(by_model.items()):
        if len(found) > 1:
            groups = ", ".join(f"{r.task}/round {r.round}/{r.verifier}" for r in found)
            raise GvstoreError(f"model {model} has {len(found)} gaps ({groups}); "
                               "narrow with --task, --round or --verifier")
    gaps = {model: float(found[0].rel_gap) for model, found in by_model.items()}
    return gaps.get


def _scaling_plot(plot: Path, points: Any, fits: list[dict[str, Any]]) -> None:
    """One scatter series per family, with its least-squares line where there is one."""
    import polars as pl

    from gvstore.analysis import plots

    have = points.drop_nulls("relative_gap")
    series = []
    lines = []
    for fit in fits:
        part = have.filter(pl.col("family") == fit["family"])
        series.append((fit["family"], part["log10_flops"].to_list(),
                       part["relative_gap"].to_list()))
        if fit["slope"] is not None:
            x = part["log10_flops"]
            lines.append(("", fit["slope"], fit["intercept"], float(x.min()), float(x.max())))
    plots.scatter(plot, series, lines, title="relative gap vs pretraining compute",
                  xlabel="log10 pretraining FLOPs", ylabel="relative gap")


def scaling_cmd(
    ctx: typer.Context,
    models: Annotated[
        Path, typer.Option("--models", help="YAML/JSON list of {name, family, flops}.")
    ],
    spec: Annotated[
        str | None,
        typer.Option("--spec", help="Filter spec whose relative gap is computed from the "
                     "store, e.g. mc:quantile=0.8."),
    ] = None,
    gaps: Annotated[
        Path | None,
        typer.Option("--gaps", help="JSON list of {model, relative_gap} (instead of --spec)."),
    ] = None,
    task: TaskOpt = None, round_: RoundOpt = None, verifier: VerifierOpt = None,
    utility: UtilityOpt = "strict", grader: GraderOpt = None, plot: PlotOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Relative gap against log10 pretraining FLOPs: a least-squares line per family (fig. 1).

    The relative gaps come from the store under --spec (self-verification unless --verifier
    is given; one task and round per model), or from a --gaps file. R^2 needs three models of
    a family; with fewer it is null and a note says why.
    """
    from gvstore.analysis.scaling import load_models, scaling_fit, scaling_points

    table_ = load_models(models)
    lookup: Callable[[str], float | None]
    if gaps is not None and spec is None:
        from gvstore.analysis.scaling import load_gaps

        lookup = load_gaps(gaps).get
    elif spec is not None and gaps is None:
        lookup = _store_gaps(projections(ctx, store), spec, task, round_, verifier, utility,
                             grader)
    else:
        raise GvstoreError("scaling needs exactly one of --spec SPEC (relative gaps from the "
                           "store) or --gaps FILE (a JSON list of {model, relative_gap})")
    points = scaling_points(table_, lookup)
    fits = scaling_fit(points)
    data: dict[str, Any] = {"points": points.to_dicts(), "fits": fits}
    if plot is not None:
        _scaling_plot(plot, points, fits)
    wrote(data, plot, as_json)
    point_rows = [[p["model"], p["family"], p["flops"], p["log10_flops"], p["relative_gap"]]
                  for p in data["points"]]
    fit_rows = [[f["family"], f["n"], f["slope"], f["intercept"], f["r2"], f["note"] or ""]
                for f in fits]
    emit(data, as_json,
         table("models", ["model", "family", "flops", "log10 flops", "relative gap"],
               point_rows),
         table("fits per family", ["family", "n", "slope", "intercept", "R^2", "note"],
               fit_rows))
