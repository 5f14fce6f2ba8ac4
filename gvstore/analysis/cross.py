"""Cross-verification matrix: the gap of one spec for every (generator, verifier) pair.

One matrix per (task, round); rows are generators, columns verifiers; the diagonal (a model
verifying itself) is self-verification (paper figure 3). A cell with no verifications is
missing (None), not zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

