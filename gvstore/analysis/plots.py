"""Small matplotlib helpers that write PNGs: pass@k curves, histograms, scatters, heatmaps.

matplotlib is imported inside each function (``import gvstore`` stays light) and used through
``Figure`` and the Agg canvas directly, never ``pyplot``: no global state, no display needed.
Every PNG is written to a temporary name beside the target and renamed, so a reader never
sees half a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temporary name, then rename)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    FigureCanvasAgg(fig)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def passk_curve(path: Path, curves: Sequence[Curve], title: str = "pass@k") -> Path:
    """pass@k against k (log2 axis) for each labelled curve."""
    fig, (ax,) = _figure()
    for label, ks, values in curves:
        ax.plot(ks, [math.nan if v is None else v for v in values], marker="o",
                markersize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
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
