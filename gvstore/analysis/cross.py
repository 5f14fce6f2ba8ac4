"""Cross-verification matrix: the gap of one spec for every (generator, verifier) pair.

One matrix per (task, round); rows are generators, columns verifiers; the diagonal (a model
verifying itself) is self-verification (paper figure 3). A cell with no verifications is
missing (None), not zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gvstore.analysis.frames import Dataset
from gvstore.analysis.gap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, GapResult, gap_table
from gvstore.analysis.specs import Spec

METRICS = ("gap", "rel_gap", "reweighted")


@dataclass
class CrossMatrix:
    """The cells of one (task, round): ``cells[(generator, verifier)]`` is a ``GapResult``."""

    task: str
    round: int
    spec: str
    generators: list[str] = field(default_factory=list)
    verifiers: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], GapResult] = field(default_factory=dict)

    def value(self, generator: str, verifier: str, metric: str = "gap") -> float | None:
        cell = self.cells.get((generator, verifier))
        return None if cell is None else float(getattr(cell, metric))

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task, "round": self.round, "spec": self.spec,
            "generators": self.generators, "verifiers": self.verifiers,
            "cells": [c.to_dict() for c in self.cells.values()],
        }


def cross_matrices(
    ds: Dataset,
    spec: Spec,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[CrossMatrix]:
    """One matrix per (task, round) present after the filters."""
    out: dict[tuple[str, int], CrossMatrix] = {}
    for row in gap_table(ds, [spec], resamples=resamples, seed=seed, level=level):
        m = out.setdefault((row.task, row.round), CrossMatrix(row.task, row.round, str(spec)))
        m.cells[(row.generator, row.verifier)] = row
    for m in out.values():
        m.generators = sorted({g for g, _ in m.cells})
        m.verifiers = sorted({v for _, v in m.cells})
    return [out[k] for k in sorted(out)]


def plot_cross(matrices: Sequence[CrossMatrix], path: Path, metric: str = "gap") -> Path:
    """A PNG heatmap per matrix (side by side), each cell annotated with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gvstore.analysis.plots import text_as_text

    text_as_text()
    import numpy as np

    from gvstore.analysis.sweep import save_figure

    n = max(len(matrices), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n + 1, 4.2), squeeze=False)
    for ax, m in zip(axes[0], matrices, strict=False):
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
    return save_figure(fig, path)
