"""Correlations between verifiers' scores and between per-prompt gaps; gap distributions.

* Scores: one score per generation and (verifier, method): the mean of its non-null scores
  over repeated verifications (parse failures, score null, are left out; a generation whose
  every verification failed has a null score). Two (verifier, method) pairs are compared on
  the generations both scored (inner join on ``gen``); rows where either score is null are
  dropped pairwise and counted.
* Pearson's r is the usual product-moment coefficient. Spearman's rho is Pearson's r of the
  ranks, ties sharing their average rank. Either is undefined (``None``) with fewer than two
  points or when one side is constant.
* Per-prompt gaps: frames with columns ``prompt`` and ``gap`` (one row per prompt), as the gap
  module produces them; two are compared on the prompts both hold.

No scipy: numpy and polars only.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from gvstore.errors import GvstoreError


def rank_average(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the average of the ranks they span."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return a.copy()
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    new_run = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], a.size]
    mean_rank = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(a.size)
    ranks[order] = mean_rank[np.cumsum(new_run) - 1]
    return ranks


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("x and y must be 1-d and of the same length")
    return xa, ya


def pearson(x: Any, y: Any) -> float | None:
    """Pearson's r of two equal-length sequences; None if n < 2 or a side is constant."""
    xa, ya = _pair(x, y)
    if xa.size < 2 or xa.min() == xa.max() or ya.min() == ya.max():
        return None
    xc = xa - xa.mean()
    yc = ya - ya.mean()
    r = float(xc @ yc) / math.sqrt(float(xc @ xc) * float(yc @ yc))
    return min(1.0, max(-1.0, r))


def spearman(x: Any, y: Any) -> float | None:
    """Spearman's rho (Pearson's r of average ranks); None where Pearson's would be."""
    xa, ya = _pair(x, y)
    return pearson(rank_average(xa), rank_average(ya))


def scores_per_generation(vers: pl.DataFrame) -> pl.DataFrame:
    """One row per (verifier, method, gen): mean non-null ``score``, ``verdicts``, ``failures``."""
    return vers.group_by("verifier", "method", "gen").agg(
        score=pl.col("score").mean(),
        verdicts=pl.col("score").count(),
        failures=pl.col("score").null_count(),
    )


def paired_scores(
    scores: pl.DataFrame, a: tuple[str, str], b: tuple[str, str]
) -> tuple[pl.DataFrame, int]:
    """The generations scored by both ``a`` and ``b`` (each a (verifier, method)).

    Returns a frame ``gen, x, y`` (x from ``a``, y from ``b``; both non-null) and the number of
    joined generations dropped because one of the two scores was null.
    """
    def side(key: tuple[str, str], name: str) -> pl.DataFrame:
        return scores.filter(
            (pl.col("verifier") == key[0]) & (pl.col("method") == key[1])
        ).select("gen", pl.col("score").alias(name))

    joined = side(a, "x").join(side(b, "y"), on="gen", how="inner")
    both = joined.drop_nulls(["x", "y"]).sort("gen")
    return both, joined.height - both.height


def score_correlations(vers: pl.DataFrame) -> list[dict[str, Any]]:
    """Pearson and Spearman between every two (verifier, method) pairs of ``vers``.

    ``vers`` is a ``verifications`` frame (already filtered). One entry per unordered pair
    (in sorted order): ``a``, ``b`` (``{"verifier", "method"}``), ``n_a``, ``n_b``
    (generations each scored), ``joined`` (scored by both), ``n`` (both non-null),
    ``dropped`` (joined but a null on one side), ``pearson``, ``spearman``.
    """
    scores = scores_per_generation(vers)
    keys = sorted(
        (str(v), str(m)) for v, m in scores.select("verifier", "method").unique().iter_rows()
    )
    counts = {
        (str(v), str(m)): int(n)
        for v, m, n in scores.group_by("verifier", "method").len().iter_rows()
    }
    out: list[dict[str, Any]] = []
    for a, b in combinations(keys, 2):
        both, dropped = paired_scores(scores, a, b)
        x = both["x"].to_numpy()
        y = both["y"].to_numpy()
        out.append({
            "a": {"verifier": a[0], "method": a[1]},
            "b": {"verifier": b[0], "method": b[1]},
            "n_a": counts[a], "n_b": counts[b],
            "joined": both.height + dropped, "n": both.height, "dropped": dropped,
            "pearson": pearson(x, y), "spearman": spearman(x, y),
        })
    return out


def _gap_frame(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    missing = [c for c in ("prompt", "gap") if c not in frame.columns]
    if missing:
        raise GvstoreError(f"gap frame {name} lacks column(s) {', '.join(missing)}")
    if frame["prompt"].n_unique() != frame.height:
        raise GvstoreError(f"gap frame {name} has more than one row for a prompt")
    return frame.select("prompt", pl.col("gap").cast(pl.Float64))


def gap_correlation(a: pl.DataFrame, b: pl.DataFrame) -> dict[str, Any]:
    """Pearson and Spearman between the per-prompt gaps of two specs.

    ``a`` and ``b`` each have one row per prompt with columns ``prompt`` (the prompt handle)
    and ``gap`` (acc_w(x) - acc(x), or any per-prompt number; null allowed). They are inner
    joined on ``prompt``; rows with a null gap on either side are dropped and counted.
    Returns ``n_a``, ``n_b``, ``joined``, ``n``, ``dropped``, ``pearson``, ``spearman``.
    """
    fa = _gap_frame(a, "a")
    fb = _gap_frame(b, "b")
    joined = fa.join(fb, on="prompt", how="inner", suffix="_b")
    both = joined.drop_nulls(["gap", "gap_b"])
    x = both["gap"].to_numpy()
    y = both["gap_b"].to_numpy()
    return {
        "n_a": fa.height, "n_b": fb.height, "joined": joined.height, "n": both.height,
        "dropped": joined.height - both.height,
        "pearson": pearson(x, y), "spearman": spearman(x, y),
    }


def histogram(
    values: Any, bins: int, lo: float, hi: float
) -> dict[str, Any]:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (the last bin closed).

    Returns ``edges`` (bins + 1 floats), ``counts`` and ``outside`` (values beyond [lo, hi],
    not in any bin). NaN values are not counted anywhere.
    """
    if bins < 1:
        raise GvstoreError(f"a histogram needs at least 1 bin, got {bins}")
    if not hi > lo:
        raise GvstoreError(f"histogram range must have lo < hi, got [{lo}, {hi}]")
    a = np.asarray(values, dtype=np.float64)
    a = a[~np.isnan(a)]
    counts, edges = np.histogram(a, bins=bins, range=(lo, hi))
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "outside": int(((a < lo) | (a > hi)).sum()),
    }


def gap_distribution(
    gaps: pl.DataFrame, bins: int = 20, lo: float = -1.0, hi: float = 1.0
) -> dict[str, Any]:
    """The distribution of per-prompt gaps (a frame with a ``gap`` column; nulls left out).

    Returns ``n``, ``nulls``, ``mean``, ``std`` (sample standard deviation, ddof = 1; None
    for n < 2), ``min``, ``max`` and ``histogram`` (see ``histogram``; the default range
    [-1, 1] holds every possible gap, so histograms of different specs line up).
    """
    if "gap" not in gaps.columns:
        raise GvstoreError("gap frame lacks column gap")
    col = gaps["gap"].cast(pl.Float64)
    vals = col.drop_nulls().to_numpy()
    n = int(vals.size)
    return {
        "n": n,
        "nulls": int(col.null_count()),
        "mean": float(vals.mean()) if n else None,
        "std": float(vals.std(ddof=1)) if n >= 2 else None,
        "min": float(vals.min()) if n else None,
        "max": float(vals.max()) if n else None,
        "histogram": histogram(vals, bins, lo, hi),
    }
