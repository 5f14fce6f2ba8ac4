"""The figures of threshold transfer and paired comparison (``transfer.py``, ``compare.py``).

``transfer_figure``: per target, its own best and the transferred metric with their bootstrap
intervals. ``transfer_heatmap``: one panel per all-pairs matrix, the loss of each (source,
target) cell. ``compare_figure``: each pair's difference A - B with its interval, the 0 line
and the +-0.005 "no difference" band. Drawn as ``plots.py`` draws (Agg, no pyplot, names as
plain text, atomic PNG writes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gvstore.analysis.plots import _figure, save
from gvstore.analysis.verdicts import NO_GAP_BAND

if TYPE_CHECKING:
    from gvstore.analysis.compare import CompareRow
    from gvstore.analysis.transfer import TransferMatrix, TransferRow

MAX_PANELS = 12


def _reach(v: float, bound: float) -> float:
    return 0.0 if math.isnan(bound) else abs(v - bound)


def _bounds(vs: Sequence[float], los: Sequence[float],
            his: Sequence[float]) -> list[list[float]]:
    return [[_reach(v, b) for v, b in zip(vs, los, strict=True)],
            [_reach(v, b) for v, b in zip(vs, his, strict=True)]]


def transfer_figure(rows: Sequence[TransferRow], path: Path) -> Path:
    """Own best and transferred metric per target (horizontal bars with intervals)."""
    rows = list(rows)
    fig, (ax,) = _figure(7.5, 2.2 + 0.6 * max(len(rows), 1))
    ys = list(range(len(rows)))
    for off, key, name, color in ((-0.18, "own_best", "target's own best (in-sample)", "C0"),
                                  (0.18, "transferred", "value chosen on the source", "C1")):
        vs = [getattr(r, key) for r in rows]
        err = _bounds(vs, [getattr(r, key + "_lo") for r in rows],
                      [getattr(r, key + "_hi") for r in rows])
        ax.barh([y + off for y in ys], vs, height=0.34, xerr=err, capsize=3, color=color,
                label=name)
    ax.set_yticks(ys, [f"{r.generator} / {r.verifier} ({r.task}, round {r.round})\n"
                       f"own {r.own_spec}, from source {r.chosen_spec}" for r in rows],
                  fontsize="x-small")
    ax.invert_yaxis()
    ax.axvline(0.0, color="grey", lw=0.8)
    metric = rows[0].metric if rows else "gap"
    ax.set_xlabel(f"{metric} (error bars: bootstrap interval over the target's prompts)")
    ax.set_title(f"threshold transfer of {rows[0].template if rows else ''}: target {metric}")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def transfer_heatmap(matrices: Sequence[TransferMatrix], path: Path) -> Path:
    """The loss (own best - transferred) of every (source, target) cell, a panel per matrix."""
    import numpy as np

    mats = list(matrices)[:MAX_PANELS]
    n = max(len(mats), 1)
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = _figure(4.6 * cols, 4.2 * nrows, nrows, cols)
    for ax, m in zip(axes, mats, strict=False):
        grid = np.array([[np.nan if (c := m.cell(s, t)) is None else c.loss
                          for t in m.labels] for s in m.labels], dtype=float)
        top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 0.0
        im = ax.imshow(np.ma.masked_invalid(grid), cmap="Reds", vmin=0.0, vmax=top or 1e-3)
        ax.set_xticks(range(len(m.labels)), m.labels, rotation=45, ha="right")
        ax.set_yticks(range(len(m.labels)), m.labels)
        ax.set_xlabel(f"target {m.dim}")
        ax.set_ylabel(f"source {m.dim} (value chosen here)")
        fixed = ", ".join(f"{k} {v}" for k, v in m.fixed.items())
        metric = m.cells[0].metric if m.cells else "gap"
        ax.set_title(f"loss in {metric} (own best - transferred)\n{fixed}", fontsize=8)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    dark = top > 0 and grid[i, j] > 0.6 * top
                    ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center",
                            fontsize=8, color="white" if dark else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[len(mats):]:
        ax.set_visible(False)
    return save(fig, path)


def compare_figure(rows: Sequence[CompareRow], path: Path) -> Path:
    """Each pair's gap difference A - B with its paired interval, the 0 line and the band."""
    rows = list(rows)
    fig, (ax,) = _figure(7.5, 2.2 + 0.55 * max(len(rows), 1))
    ys = list(range(len(rows)))
    vs = [r.diff for r in rows]
    ax.errorbar(vs, ys, xerr=_bounds(vs, [r.diff_lo for r in rows],
                                     [r.diff_hi for r in rows]),
                fmt="o", capsize=3, color="C0", label="gap A - gap B")
    ax.axvspan(-NO_GAP_BAND, NO_GAP_BAND, color="grey", alpha=0.2,
               label=f"no difference band (+-{NO_GAP_BAND})")
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(ys, [f"A {r.a} {r.spec_a}\nB {r.b} {r.spec_b} ({r.shared_prompts} prompts)"
                       for r in rows], fontsize="x-small")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("difference of gap, A - B (error bars: paired bootstrap interval)")
    ax.set_title("paired comparison on shared prompts")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)
