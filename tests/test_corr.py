"""Correlations (Pearson, Spearman with average ranks) and per-prompt gap distributions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from helpers import StoreBuilder

from gvstore.analysis.corr import (
    gap_correlation,
    gap_distribution,
    histogram,
    pearson,
    rank_average,
    score_correlations,
    spearman,
)
from gvstore.errors import GvstoreError
from gvstore.replay import Projections


def test_average_ranks() -> None:
    assert rank_average(np.array([10, 20, 20, 30])).tolist() == [1, 2.5, 2.5, 4]
    assert rank_average(np.array([3.0, 1.0, 2.0])).tolist() == [3, 1, 2]
    assert rank_average(np.array([7, 7, 7])).tolist() == [2, 2, 2]
    assert rank_average(np.array([2, 1, 2, 1, 2])).tolist() == [4, 1.5, 4, 1.5, 4]


def test_pearson_by_hand() -> None:
    # x - mean = (-1, 0, 1), y - mean = (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 14/3)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(28 / 3), abs=1e-15)
    assert pearson([1, 2], [5, 3]) == pytest.approx(-1.0)


def test_spearman_with_ties_by_hand() -> None:
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): r = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10), abs=1e-15)


def test_identities() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    assert pearson(x, 3 * x + 2) == pytest.approx(1.0)
    assert pearson(x, -2 * x) == pytest.approx(-1.0)
    assert pearson(x, y) == pytest.approx(pearson(y, x))
    assert pearson(x, y) == pytest.approx(pearson(4 * x - 1, 0.5 * y + 7))
    assert pearson(x, y) == pytest.approx(float(np.corrcoef(x, y)[0, 1]), abs=1e-12)
    # Spearman: invariant under increasing maps, equals Pearson of the ranks, and without
    # ties equals 1 - 6 sum d^2 / (n (n^2 - 1)).
    assert spearman(x, y) == pytest.approx(spearman(np.exp(x), y ** 3))
    assert spearman(x, y) == pytest.approx(pearson(rank_average(x), rank_average(y)))
    d = rank_average(x) - rank_average(y)
    n = x.size
    assert spearman(x, y) == pytest.approx(1 - 6 * float(d @ d) / (n * (n * n - 1)))
    assert spearman(x, -x) == pytest.approx(-1.0)


def test_undefined_is_none_not_a_crash() -> None:
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1, 2, 3], [0.5, 0.5, 0.5]) is None
    assert pearson([1], [2]) is None and spearman([], []) is None
    with pytest.raises(ValueError):
        pearson([1, 2], [1, 2, 3])


# Scores in a real store ------------------------------------------------------------------


def _store(tmp_path: Path, scores: dict[str, list[list[float | None]]]) -> Projections:
    """One generation per position; ``scores[method][i]`` lists its repeated scores."""
    b = StoreBuilder(tmp_path / "store")
    gens = b.gens(b.prompt("0", text="q"), len(next(iter(scores.values()))), text="a{i}")
    for method, per_gen in scores.items():
        verifier, _, name = method.partition("/")
        b.repeats(gens, name, per_gen, verifier=verifier)
    return b.projections(cache=False, folder="test")


def test_score_correlations_by_hand(tmp_path: Path) -> None:
    proj = _store(tmp_path, {
        "v/mc": [[0.1], [0.5], [0.9], [0.3], []],
        # Repeats are averaged (3 and 5 -> 4); the parse failure is left out; the fourth
        # generation has no cot verdict at all, the fifth no mc verification.
        "v/cot_score": [[2.0], [3.0, 5.0], [9.0, None], [None], [1.0]],
    })
    (pair,) = score_correlations(proj.verifications)
    assert pair["a"] == {"verifier": "v", "method": "cot_score"}
    assert pair["b"] == {"verifier": "v", "method": "mc"}
    assert (pair["n_a"], pair["n_b"], pair["joined"], pair["n"], pair["dropped"]) == (
        5, 4, 4, 3, 1)
    assert pair["pearson"] == pytest.approx(pearson([2, 4, 9], [0.1, 0.5, 0.9]))
    # x: (-3, -1, 4), y: (-0.4, 0, 0.4): r = 2.8 / sqrt(26 * 0.32)
    assert pair["pearson"] == pytest.approx(2.8 / math.sqrt(26 * 0.32))
    assert pair["spearman"] == pytest.approx(1.0)


def test_constant_scores_give_null(tmp_path: Path) -> None:
    proj = _store(tmp_path, {"v/mc": [[0.2], [0.4], [0.6]],
                             "w/cot_binary": [[1.0], [1.0], [1.0]]})
    (pair,) = score_correlations(proj.verifications)
    assert pair["n"] == 3 and pair["pearson"] is None and pair["spearman"] is None


def test_gap_correlation() -> None:
    a = pl.DataFrame({"prompt": [1, 2, 3, 4, 5], "gap": [0.0, 0.1, 0.2, None, 0.5]})
    b = pl.DataFrame({"prompt": [2, 3, 4, 5, 6], "gap": [0.3, 0.1, 0.0, 0.2, 1.0]})
    got = gap_correlation(a, b)
    # joined on prompts 2..5; prompt 4 has a null gap in a.
    assert (got["n_a"], got["n_b"], got["joined"], got["n"], got["dropped"]) == (5, 5, 4, 3, 1)
    assert got["pearson"] == pytest.approx(pearson([0.1, 0.2, 0.5], [0.3, 0.1, 0.2]))
    assert got["spearman"] == pytest.approx(-0.5)  # ranks (1,2,3) vs (3,1,2)
    with pytest.raises(GvstoreError, match="lacks column"):
        gap_correlation(a.rename({"gap": "g"}), b)
    with pytest.raises(GvstoreError, match="more than one row"):
        gap_correlation(pl.concat([a, a]), b)


def test_gap_distribution_by_hand() -> None:
    got = gap_distribution(pl.DataFrame({"gap": [0.0, 0.5, -0.5, 1.0, None]}), bins=4)
    assert got["n"] == 4 and got["nulls"] == 1
    assert got["mean"] == pytest.approx(0.25)
    assert got["std"] == pytest.approx(math.sqrt(1.25 / 3))  # ddof = 1
    assert (got["min"], got["max"]) == (-0.5, 1.0)
    assert got["histogram"]["edges"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert got["histogram"]["counts"] == [0, 1, 1, 2]  # the last bin holds 1.0
    one = gap_distribution(pl.DataFrame({"gap": [0.2]}))
    assert one["std"] is None and one["mean"] == pytest.approx(0.2)
    empty = gap_distribution(pl.DataFrame({"gap": pl.Series([], dtype=pl.Float64)}))
    assert empty["n"] == 0 and empty["mean"] is None


def test_histogram_counts_outside_values() -> None:
    got = histogram([-2.0, 0.1, 0.9, 3.0, float("nan")], bins=2, lo=0.0, hi=1.0)
    assert got["counts"] == [1, 1] and got["outside"] == 2
    with pytest.raises(GvstoreError):
        histogram([0.0], bins=0, lo=0.0, hi=1.0)
