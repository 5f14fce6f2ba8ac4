"""Every figure of gvstore: the analyses return data, this module draws it as PNGs.

pass@k curves, histograms, scatters and heatmaps (the metric commands), the sweep of a rule's
value (``sweep_figure``), the cross-verification heatmaps (``cross_figure``) and the rounds of
self-improvement (``rounds_figure``, the paper's figure 4).

matplotlib is imported inside each function (``import gvstore`` stays light) and used through
``Figure`` and the Agg canvas directly, never ``pyplot``: no global state, no display needed.
Every figure first calls ``text_as_text`` (names from the data are never read as mathtext).
Every PNG is written through ``gvstore.io.atomic_path``, so a reader never sees half a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from gvstore.analysis.cross import CrossMatrix
    from gvstore.analysis.rounds import RoundRow, RoundsReport
    from gvstore.analysis.sweep import SweepResult

Curve = tuple[str, Sequence[float], Sequence[float]]
"""A labelled line or point set: (label, xs, ys)."""


def text_as_text() -> None:
    """Make matplotlib draw every label as plain text.

    Labels carry names from the data (generators, verifiers, tasks); with matplotlib's default
    ``text.parse_math`` a name such as ``$\\frac{$`` is parsed as mathtext and fails the plot
    (or renders as something else). Every plot of gvstore calls this before drawing.
    """
    import matplotlib

    matplotlib.rcParams["text.parse_math"] = False


def _figure(width: float = 6.0, height: float = 4.0, rows: int = 1,
            cols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    text_as_text()

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _grid(width: float, height: float, rows: int, cols: int) -> tuple[Figure, list[Axes]]:
    """A figure of matplotlib's default dpi and layout (the sweep and cross figures; laid out
    with ``tight_layout`` and saved at 120 dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    text_as_text()

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save(fig: Figure, path: Path, dpi: float | None = None) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (``dpi``: the figure's own if None)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def notice_figure(path: Path, title: str, text: str) -> Path:
    """A PNG that says why a figure has nothing to draw (a report's file always exists)."""
    fig, (ax,) = _figure(6.0, 2.0)
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", color="tab:red", wrap=True,
            transform=ax.transAxes)
    return save(fig, path)


def passk_curve(path: Path, curves: Sequence[Curve], title: str = "pass@k") -> Path:
    """pass@k against k (log2 axis, ticks at the ks drawn, as integers) for each labelled
    curve."""
    fig, (ax,) = _figure()
    for label, ks, values in curves:
        ax.plot(ks, [math.nan if v is None else v for v in values], marker="o",
                markersize=3, label=label)
    ax.set_xscale("log", base=2)
    ks_drawn = sorted({int(k) for _, ks, _ in curves for k in ks})
    if ks_drawn:
        ax.set_xticks(ks_drawn, [str(k) for k in ks_drawn])
        ax.minorticks_off()
    ax.set_xlabel("k (samples per prompt)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1 or (curves and curves[0][0]):
        ax.legend(fontsize="small")
    return save(fig, path)


def histogram(path: Path, edges: Sequence[float],
              series: Sequence[tuple[str, Sequence[int]]], title: str = "",
              xlabel: str = "", mean: float | None = None,
              std: float | None = None) -> Path:
    """Precomputed ``counts`` over shared ``edges``, one (label, counts) series each.

    One series is drawn as bars, several as outlined steps. ``mean`` (and ``std``) draw a
    vertical line (and dashed lines at mean ± std).
    """
    fig, (ax,) = _figure()
    for i, (label, counts) in enumerate(series):
        ax.stairs(list(counts), list(edges), fill=len(series) == 1,
                  label=label or None, color=f"C{i}",
                  alpha=0.8 if len(series) == 1 else 1.0, linewidth=1.5)
    if mean is not None:
        text = f"mean {mean:.3g}" + (f" ± {std:.3g}" if std is not None else "")
        ax.axvline(mean, color="tab:red", label=text)
        if std is not None:
            for x in (mean - std, mean + std):
                ax.axvline(x, color="tab:red", linestyle="--", linewidth=0.8)
    if mean is not None or any(label for label, _ in series):
        ax.legend(fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    return save(fig, path)


def _draw_scatter(ax: Axes, points: Sequence[Curve],
                  lines: Sequence[tuple[str, float, float, float, float]]) -> None:
    for label, xs, ys in points:
        ax.scatter(list(xs), list(ys), s=8, alpha=0.6, label=label or None)
    for label, slope, intercept, x0, x1 in lines:
        ax.plot([x0, x1], [slope * x0 + intercept, slope * x1 + intercept],
                linewidth=1.2, label=label or None)
    if any(p[0] for p in points) or any(line[0] for line in lines):
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def scatter(path: Path, points: Sequence[Curve],
            lines: Sequence[tuple[str, float, float, float, float]] = (),
            title: str = "", xlabel: str = "", ylabel: str = "") -> Path:
    """Point sets and fitted lines (label, slope, intercept, x from, x to) on one axes."""
    fig, (ax,) = _figure()
    _draw_scatter(ax, points, lines)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save(fig, path)


def scatter_grid(path: Path, panels: Sequence[dict[str, Any]], title: str = "") -> Path:
    """One scatter per panel: dicts with ``x``, ``y``, ``xlabel``, ``ylabel``, ``title``."""
    if not panels:
        raise ValueError("scatter_grid needs at least one panel")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = _figure(4.0 * cols, 3.6 * rows, rows, cols)
    for ax, panel in zip(axes, panels, strict=False):
        _draw_scatter(ax, [("", panel["x"], panel["y"])], ())
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.set_title(panel.get("title", ""), fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def heatmap(path: Path, matrix: Sequence[Sequence[float | None]], row_labels: Sequence[str],
            col_labels: Sequence[str], title: str = "", vmin: float | None = None,
            vmax: float | None = None, fmt: str = ".2f") -> Path:
    """A labelled matrix of numbers (None: blank cell), each cell annotated with its value."""
    import numpy as np

    data = np.array([[math.nan if v is None else v for v in row] for row in matrix],
                    dtype=float)
    fig, (ax,) = _figure(1.2 + 0.9 * max(1, len(col_labels)),
                         1.0 + 0.6 * max(1, len(row_labels)))
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=vmin, vmax=vmax,
                   aspect="auto")
    ax.set_xticks(range(len(col_labels)), list(col_labels), rotation=45, ha="right",
                  fontsize="small")
    ax.set_yticks(range(len(row_labels)), list(row_labels), fontsize="small")
    lo, hi = im.get_clim()
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if math.isfinite(data[i, j]):
                light = hi > lo and (data[i, j] - lo) / (hi - lo) > 0.6  # yellow end of viridis
                ax.text(j, i, format(data[i, j], fmt), ha="center", va="center",
                        color="black" if light else "white", fontsize="x-small")
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return save(fig, path)


# --- sweeps and cross-verification ---------------------------------------------------------


def sweep_figure(results: Sequence[SweepResult], path: Path,
                 chosen: Mapping[tuple[str, str, str, int], float] | None = None,
                 notes: Sequence[str] = (), template: str | None = None) -> Path:
    """Gap and relative gap against the swept value, one line per group (its generator and
    verifier in the legend) with its 95% interval as a labelled band, the held-out choice of
    ``chosen`` ((task, generator, verifier, round) -> value) marked by a dotted line. A group
    with fewer than two values (e.g. one parsed score value) is no curve: it is named in a
    warning drawn on the axes instead; ``notes`` are more warning lines (e.g. a method whose
    scores mostly failed to parse); ``template`` names the sweep when ``results`` is empty."""
    fig, axes = _grid(11, 4.2 + 0.2 * (len(notes) + len(results)), 1, 2)
    many_tasks = len({q.task for q in results}) > 1
    many_rounds = len({q.round for q in results}) > 1
    degenerate = list(notes)
    drawn = 0
    for r in results:
        label = (f"generator {r.generator}, verifier {r.verifier}"
                 + (f" ({r.task})" if many_tasks else "")
                 + (f" round {r.round}" if many_rounds else ""))
        if len(r.points) < 2:
            degenerate.append(f"{r.task}, generator {r.generator}, verifier {r.verifier}: "
                              f"{len(r.points)} value swept (one parsed score value), no curve")
            continue
        value = (chosen or {}).get((r.task, r.generator, r.verifier, r.round))
        _sweep_lines(axes, r, label, value, band_label=not drawn)
        drawn += 1
    template = results[0].template if results else (template or "")
    rule = results[0].rule if results else template.rpartition(":")[2]
    for ax, name in zip(axes, ("gap", "relative gap"), strict=True):
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel(f"{rule} (the rule's value)")
        ax.set_ylabel(name)
        ax.set_title(f"{name} over {template}")
        ax.grid(alpha=0.3)
    if degenerate:
        fig.text(0.01, 0.01, "warning: " + "\nwarning: ".join(degenerate), ha="left",
                 va="bottom", color="tab:red", fontsize=8)
    if rule == "rounds":
        from matplotlib.ticker import MaxNLocator

        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.tight_layout(rect=(0.0, 0.045 * len(degenerate), 1.0, 1.0))
    return save(fig, path, dpi=120)


def _sweep_lines(axes: Sequence[Axes], r: SweepResult, label: str, chosen: float | None,
                 band_label: bool) -> None:
    """One group's gap and relative gap lines, their interval bands (named in the legend
    once, ``band_label``) and its chosen value."""
    x = [pt.value for pt in r.points]
    for ax, key in zip(axes, ("gap", "rel_gap"), strict=True):
        y = [getattr(pt, key) for pt in r.points]
        lo = [getattr(pt, key + "_lo") for pt in r.points]
        hi = [getattr(pt, key + "_hi") for pt in r.points]
        (line,) = ax.plot(x, y, marker="." if len(x) < 40 else None, label=label)
        ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color(),
                        label="95% bootstrap interval (shaded, each line's colour)"
                        if key == "gap" and band_label else None)
        if chosen is not None:
            ax.axvline(chosen, color=line.get_color(), linestyle=":", linewidth=1.2,
                       label=f"chosen (held-out) {chosen:g}" if key == "gap" else None)


def cross_figure(matrices: Sequence[CrossMatrix], path: Path, metric: str = "gap") -> Path:
    """A heatmap per (task, round) matrix (side by side), each cell annotated with its value;
    generators are rows, verifiers columns."""
    import numpy as np

    n = max(len(matrices), 1)
    fig, axes = _grid(4.5 * n + 1, 4.2, 1, n)
    for ax, m in zip(axes, matrices, strict=False):
        grid = np.array([[np.nan if (v := m.value(g, ver, metric)) is None else v
                          for ver in m.verifiers] for g in m.generators], dtype=float)
        top = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        im = ax.imshow(grid, cmap="RdBu", vmin=-top or -1, vmax=top or 1)
        ax.set_xticks(range(len(m.verifiers)), m.verifiers, rotation=45, ha="right")
        ax.set_yticks(range(len(m.generators)), m.generators)
        ax.set_xlabel("verifier")
        ax.set_ylabel("generator")
        ax.set_title(f"{metric}: {m.spec}\n{m.task} (round {m.round})", fontsize=9)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    dark = abs(grid[i, j]) > 0.6 * top
                    ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return save(fig, path, dpi=120)


# --- rounds of self-improvement ------------------------------------------------------------


def rounds_figure(report: RoundsReport, path: Path) -> Path:
    """A 2x2 PNG: (a) accuracy strict and flexible, (b) gap and relative gap with their
    intervals, (c) pass@k against k (log2) per round, (d) effective and distinct answers;
    rounds on integer ticks."""
    fig, (a, b, c, d) = _figure(10.0, 7.5, 2, 2)
    rows = report.rows
    xs = [r.round for r in rows]
    a.plot(xs, [r.acc_strict for r in rows], marker="o", label="strict")
    a.plot(xs, [r.acc_flexible for r in rows], marker="s", label="flexible")
    if report.heldout is not None:  # the same on prompts never trained on, dashed
        held = report.heldout.rows
        a.plot(xs, [r.acc_strict for r in held], "--", marker="o", label="strict, held-out")
        a.plot(xs, [r.acc_flexible for r in held], "--", marker="s", label="flexible, held-out")
    _round_axes(a, "(a) accuracy", "accuracy")
    _gap_panel(b, rows)
    b.set_xlim(a.get_xlim())  # the panels over rounds span the same rounds
    for r in rows:
        ys = [r.pass_at_k[k] for k in report.ks]
        c.plot(list(report.ks), [math.nan if y is None else y for y in ys],
               marker="o", markersize=3, label=f"round {r.round} ({r.model})")
    c.set_xscale("log", base=2)
    c.set_xticks(list(report.ks), [str(k) for k in report.ks])
    c.set_ylim(0.0, 1.02)
    c.set_xlabel("k")
    c.set_ylabel(f"pass@k ({report.utility})")
    c.set_title("(c) pass@k")
    c.grid(alpha=0.3)
    c.legend(fontsize="small")
    d.plot(xs, [r.effective_answers for r in rows], marker="o", label="effective (exp H)")
    d.plot(xs, [r.distinct_answers for r in rows], marker="s", label="distinct")
    _round_axes(d, f"(d) answers per prompt: diversity {report.diversity}", "answers")
    d.set_xlim(a.get_xlim())
    fig.suptitle(f"{report.task}: {len(rows)} rounds on {report.prompts} prompts"
                 + (f", {report.spec}" if report.spec else ""))
    return save(fig, path)


def _round_axes(ax: Axes, title: str, ylabel: str) -> None:
    """Round numbers as integer ticks, a grid, a legend."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _reach(value: float, bound: float | None) -> float:
    """How far an interval bound lies from the value (0: no interval, e.g. no bootstrap)."""
    return 0.0 if bound is None or math.isnan(bound) else abs(value - bound)


def _gap_panel(ax: Axes, rows: Sequence[RoundRow]) -> None:
    """Gap and relative gap per round with interval bars (dodged apart by a little so both
    show); rounds without a gap are skipped."""
    for name, marker, dodge in (("gap", "o", -0.04), ("rel_gap", "s", 0.04)):
        pts = [(r.round + dodge, getattr(r, name), getattr(r, f"{name}_lo"),
                getattr(r, f"{name}_hi"))
               for r in rows if getattr(r, name) is not None]
        if not pts:
            continue
        x, y, lo, hi = (list(v) for v in zip(*pts, strict=True))
        err = [[_reach(yi, b) for yi, b in zip(y, lo, strict=True)],
               [_reach(yi, b) for yi, b in zip(y, hi, strict=True)]]
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=3,
                    label="relative gap" if name == "rel_gap" else "gap")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if not any(r.gap is not None for r in rows):
        ax.text(0.5, 0.5, "no gap (no spec or verifier)", ha="center", va="center",
                transform=ax.transAxes)
    _round_axes(ax, "(b) generation-verification gap", "gap")
