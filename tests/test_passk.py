"""pass@k: the unbiased estimator against exact integer arithmetic, and per-prompt means."""

from __future__ import annotations

from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from helpers import StoreBuilder

from gvstore.analysis.frames import Filters, base_frame, version_key
from gvstore.analysis.passk import pass_at_k, pass_at_k_matrix, pass_at_k_table
from gvstore.errors import GvstoreError
from gvstore.replay import Projections

N_MAX = 200


def _exact(n: int, c: int, k: int) -> float:
    # Python's int / int is correctly rounded, however large the integers.
    return (comb(n, k) - comb(n - c, k)) / comb(n, k)


def test_matrix_matches_closed_form_for_every_n_c_k_up_to_200() -> None:
    pascal = [[comb(n, k) for k in range(N_MAX + 1)] for n in range(N_MAX + 1)]
    worst = 0.0
    for n in range(1, N_MAX + 1):
        got = pass_at_k_matrix(np.full(n + 1, n), np.arange(n + 1), list(range(1, n + 1)))
        want = np.array([
            [(pascal[n][k] - pascal[n - c][k]) / pascal[n][k] for k in range(1, n + 1)]
            for c in range(n + 1)
        ])
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= 1e-12


def test_scalar_matches_closed_form_on_a_dense_grid() -> None:
    for n in range(1, N_MAX + 1):
        cs = sorted({0, 1, 2, n // 3, n // 2, n - 2, n - 1, n} & set(range(n + 1)))
        ks = sorted({1, 2, 3, n // 4, n // 2, n - 1, n} & set(range(1, n + 1)))
        for c in cs:
            for k in ks:
                assert abs(pass_at_k(n, c, k) - _exact(n, c, k)) <= 1e-12, (n, c, k)


def test_scalar_by_hand_and_against_fractions() -> None:
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-15)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=1e-15)  # pass@1 = c / n
    exact = 1 - Fraction(comb(150, 40), comb(200, 40))
    assert abs(pass_at_k(200, 50, 40) - float(exact)) <= 1e-12


@pytest.mark.parametrize(("n", "c", "k", "want"), [
    (1, 0, 1, 0.0), (1, 1, 1, 1.0),            # a single sample
    (8, 0, 8, 0.0), (8, 1, 8, 1.0),            # k = n: any correct sample is drawn
    (8, 0, 3, 0.0), (200, 0, 100, 0.0),        # c = 0
    (8, 8, 3, 1.0), (200, 200, 1, 1.0),        # c = n
    (8, 6, 3, 1.0),                            # k > n - c: a correct sample is always drawn
])
def test_edge_cases(n: int, c: int, k: int, want: float) -> None:
    assert pass_at_k(n, c, k) == want
    assert pass_at_k_matrix(np.array([n]), np.array([c]), [k])[0, 0] == want


@pytest.mark.parametrize(("n", "c", "k"), [(4, 0, 5), (4, 0, 0), (4, 5, 1), (4, -1, 1)])
def test_invalid_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_matrix_keeps_caller_k_order_and_marks_k_above_n() -> None:
    got = pass_at_k_matrix(np.array([4, 2]), np.array([1, 1]), [4, 1, 2, 1])
    assert got[0].tolist() == pytest.approx([1.0, 0.25, 0.5, 0.25])
    assert np.isnan(got[1, 0])  # k = 4 > n = 2
    assert got[1, 1:].tolist() == pytest.approx([0.5, 1.0, 0.5])
    with pytest.raises(ValueError):
        pass_at_k_matrix(np.array([2]), np.array([3]), [1])


# A real store, by hand -------------------------------------------------------------------


TEXT = "answer {i}"  # a generation's text: its sample index


def _hand_store(tmp_path: Path) -> Projections:
    """Prompt a: 4 samples, 1 correct (strict; 2 flexible). Prompt b: 2 samples, 0 correct,
    one re-graded as correct by a newer grader version. Prompt c: 1 ungraded sample."""
    s = StoreBuilder(tmp_path / "store")
    a, b, c = s.prompt("a"), s.prompt("b"), s.prompt("c")
    ga, gb = s.gens(a, 4, text=TEXT), s.gens(b, 2, text=TEXT)
    s.gens(c, 1, text=TEXT)
    for g, strict, flexible in zip(ga, [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], strict=True):
        s.grade(g, strict, flexible)
    s.grade(gb[0], 0.0)
    s.grade(gb[1], 0.0, version="9")
    s.grade(gb[1], 0.0, 1.0, version="10")  # "10" is newer than "9"
    return s.projections(cache=False, folder="test")


def test_table_by_hand(tmp_path: Path) -> None:
    frame = base_frame(_hand_store(tmp_path))
    assert frame.height == 7 and frame["utility"].null_count() == 1
    got = pass_at_k_table(frame, [1, 2, 4])
    assert got.columns == ["task", "model", "round", "k", "pass_at_k", "prompts", "excluded",
                           "ungraded"]
    rows = {r["k"]: r for r in got.to_dicts()}
    assert rows[1]["pass_at_k"] == pytest.approx((1 / 4 + 0) / 2)
    assert rows[2]["pass_at_k"] == pytest.approx((1 - 3 / 6 + 0) / 2)  # a: 1 - C(3,2)/C(4,2)
    # k = 4: prompt b has 2 samples, so only a counts (and has pass@4 = 1).
    assert rows[4]["pass_at_k"] == pytest.approx(1.0)
    assert (rows[4]["prompts"], rows[4]["excluded"]) == (1, 1)
    assert (rows[1]["prompts"], rows[1]["excluded"]) == (2, 0)
    assert {r["ungraded"] for r in rows.values()} == {1}


def test_flexible_utility_and_newest_grader_version(tmp_path: Path) -> None:
    frame = base_frame(_hand_store(tmp_path), utility="flexible")
    rows = {r["k"]: r for r in pass_at_k_table(frame, [1, 2]).to_dicts()}
    # a: 2 of 4 correct; b: 1 of 2 (the version-"10" grade counts, not version "9").
    assert rows[1]["pass_at_k"] == pytest.approx((2 / 4 + 1 / 2) / 2)
    assert rows[2]["pass_at_k"] == pytest.approx((1 - 1 / 6 + 1.0) / 2)


def test_no_prompt_has_k_samples_gives_null(tmp_path: Path) -> None:
    frame = base_frame(_hand_store(tmp_path))
    row = pass_at_k_table(frame, [5]).to_dicts()[0]
    assert row["pass_at_k"] is None and row["prompts"] == 0 and row["excluded"] == 2


def test_groups_and_filters(tmp_path: Path) -> None:
    s = StoreBuilder(tmp_path / "store")
    p = s.prompt("a")
    g0 = s.gens(p, 2, model="m0", text=TEXT)
    g1 = s.gens(p, 2, model="m1", rnd=1, text=TEXT)
    for g, u in zip([*g0, *g1], [1, 0, 1, 1], strict=True):
        s.grade(g, u)
    proj = s.projections(cache=False, folder="test")
    got = pass_at_k_table(base_frame(proj), [1])
    assert got.select("model", "round", "pass_at_k").rows() == [("m0", 0, 0.5), ("m1", 1, 1.0)]
    only = base_frame(proj, filters=Filters(generators=("m1",)))
    assert set(only["model"]) == {"m1"}
    assert base_frame(proj, filters=Filters(rounds=(0,)))["model"].unique().to_list() == ["m0"]
    whole = pass_at_k_table(base_frame(proj), [1], by=())
    assert whole.columns == ["k", "pass_at_k", "prompts", "excluded", "ungraded"]
    # One prompt, both models' samples pooled: 3 correct of 4.
    assert whole["pass_at_k"].to_list() == [0.75]


def test_two_graders_need_a_choice(tmp_path: Path) -> None:
    s = StoreBuilder(tmp_path / "store")
    (g,) = s.gens(s.prompt("a"), 1, text=TEXT)
    s.grade(g, 1.0, grader="x")
    s.grade(g, 0.0, grader="y")
    proj = s.projections(cache=False, folder="test")
    with pytest.raises(GvstoreError, match="several graders"):
        base_frame(proj)
    assert base_frame(proj, grader="y")["utility"].to_list() == [0.0]
    with pytest.raises(GvstoreError, match="unknown utility"):
        base_frame(proj, utility="loose")


def test_version_order_is_natural() -> None:
    assert sorted(["10", "9", "1.10", "1.2", "2"], key=version_key) == [
        "1.2", "1.10", "2", "9", "10"]


def test_table_rejects_bad_input() -> None:
    frame = pl.DataFrame({"prompt": [1], "utility": [1.0]})
    with pytest.raises(GvstoreError, match="lacks column"):
        pass_at_k_table(frame, [1])
    with pytest.raises(GvstoreError, match="k must be >= 1"):
        pass_at_k_table(frame, [0], by=())


def test_full_size_table_matches_pass_at_1() -> None:
    # Speed is measured in benchmarks/analysis_bench.py, not asserted here.
    rng = np.random.default_rng(0)
    prompts, samples = 7500, 128
    p = rng.beta(2, 2, prompts)
    u = (rng.random((prompts, samples)) < p[:, None]).astype(np.float64).reshape(-1)
    frame = pl.DataFrame({
        "prompt": np.repeat(np.arange(prompts), samples).astype(np.uint64),
        "task": "t", "model": "m", "round": 0, "utility": u,
    })
    got = pass_at_k_table(frame, range(1, 129))
    assert got.height == 128
    c = u.reshape(prompts, samples).sum(axis=1)
    assert got["pass_at_k"][0] == pytest.approx(float((c / samples).mean()))
    assert got["pass_at_k"][127] == pytest.approx(float((c > 0).mean()))


def test_table_is_the_same_bits_whatever_the_row_order() -> None:
    # the per-prompt means are summed in (group, prompt) order, never in group_by's order
    # (which varies run to run): a shuffled frame gives bit-identical means
    rng = np.random.default_rng(1)
    prompts, samples = 3000, 8
    u = (rng.random(prompts * samples) < 0.5).astype(np.float64)
    frame = pl.DataFrame({"prompt": np.repeat(np.arange(prompts), samples).astype(np.uint64),
                          "task": "t", "model": "m", "round": 0, "utility": u})
    want = pass_at_k_table(frame, [1, 2, 3, 4, 5, 7])["pass_at_k"].to_list()
    for seed in range(5):
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        assert pass_at_k_table(shuffled, [1, 2, 3, 4, 5, 7])["pass_at_k"].to_list() == want
