"""Gap metrics against numbers worked out by hand on small stores built record by record."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder

from gvstore.analysis.frames import Dataset, Filters, base_frame, score_frame
from gvstore.analysis.gap import Bootstrap, GapResult, gap_table, verdict
from gvstore.analysis.specs import parse
from gvstore.errors import GvstoreError
from gvstore.replay import Projections


def one(proj: Projections, spec: str, **kw: object) -> GapResult:
    rows = gap_table(Dataset(proj, **kw), [parse(spec)], resamples=200)  # type: ignore[arg-type]
    assert len(rows) == 1
    return rows[0]


@pytest.fixture
def five(tmp_path: Path) -> Projections:
    """Five prompts covering the edge cases, scored by cot_score (see each comment)."""
    b = StoreBuilder(tmp_path / "s")
    # P1: tau=8 keeps samples 0 and 1 (8 is a tie at the threshold: kept).
    g = b.gens(b.prompt("p1"), [1, 0, 0, 0])
    b.scores(g, "cot_score", [9, 8, 2, 1])
    # P2: every sample rejected: falls back to the base accuracy and is counted.
    g = b.gens(b.prompt("p2"), [1, 0])
    b.scores(g, "cot_score", [2, 3])
    # P3: every sample correct: acc = 1, relative gap contributes 0.
    g = b.gens(b.prompt("p3"), [1, 1, 1])
    b.scores(g, "cot_score", [9, 1, None])
    # P4: a single sample.
    g = b.gens(b.prompt("p4"), [0])
    b.scores(g, "cot_score", [10])
    # P5: a null score (parse failure), rejected by default.
    g = b.gens(b.prompt("p5"), [0, 1, 1])
    b.scores(g, "cot_score", [8, None, 9])
    return b.projections()


def test_threshold_by_hand(five: Projections) -> None:
    r = one(five, "cot_score:tau=8")
    # per prompt (acc, acc_w): (1/4, 1/2), (1/2, 1/2 fallback), (1, 1), (0, 0), (2/3, 1/2)
    assert r.prompts == 5 and r.generations == 13 and r.ungraded == 0
    assert r.base == pytest.approx((0.25 + 0.5 + 1 + 0 + 2 / 3) / 5)
    assert r.reweighted == pytest.approx((0.5 + 0.5 + 1 + 0 + 0.5) / 5)
    assert r.gap == pytest.approx((0.25 - 1 / 6) / 5)
    # relative: p1 0.25 / 0.75, p5 (-1/6) / (1/3), others 0
    assert r.rel_gap == pytest.approx((1 / 3 - 0.5) / 5)
    assert r.kept == 2 + 0 + 1 + 1 + 2
    assert r.empty_prompts == 1
    assert r.perfect_prompts == 1


def test_nulls_keep(five: Projections) -> None:
    r = one(five, "cot_score:tau=8,nulls=keep")
    # p3 keeps its null (all correct anyway), p5 keeps all three: acc_w = acc there.
    assert r.kept == 2 + 0 + 2 + 1 + 3
    assert r.gap == pytest.approx(0.25 / 5)
    assert r.rel_gap == pytest.approx((1 / 3) / 5)


def test_quantile_by_hand(five: Projections) -> None:
    # q = 0.5: p1 sorted [1,2,8,9], k = ceil(1.5) = 2 -> keep s >= 8 (samples 0, 1);
    # p2 [2,3] k = 1 -> keep the 3 (u=0); p3 [1,9] k = 1 -> keep 9; p4 keeps its sample;
    # p5 [8,9] (null left out) k = 1 -> keep the 9 (u=1).
    r = one(five, "cot_score:quantile=0.5")
    acc_w = [0.5, 0.0, 1.0, 0.0, 1.0]
    acc = [0.25, 0.5, 1.0, 0.0, 2 / 3]
    assert r.reweighted == pytest.approx(np.mean(acc_w))
    assert r.gap == pytest.approx(np.mean(np.subtract(acc_w, acc)))
    rel = [(0.5 - 0.25) / 0.75, -1.0, 0.0, 0.0, (1 - 2 / 3) / (1 / 3)]
    assert r.rel_gap == pytest.approx(np.mean(rel))
    assert r.kept == 2 + 1 + 1 + 1 + 1 and r.empty_prompts == 0
    # q = 0 keeps every scored sample; q = 1 keeps the maxima (ties kept).
    assert one(five, "cot_score:quantile=0").kept == 11
    assert one(five, "cot_score:quantile=1").kept == 5


def test_quantile_ties_and_rounding(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("ties"), [1, 0, 1, 0])
    b.scores(g, "mc", [0.5, 0.5, 0.5, 0.1])  # sorted [0.1, 0.5, 0.5, 0.5]
    g = b.gens(b.prompt("twentysix"), [1] * 19 + [0] * 7)
    b.scores(g, "mc", [float(25 - i) for i in range(26)])  # scores 25..0
    proj = b.projections()
    # ties: 0.9 * 3 = 2.7 -> k = 3, threshold 0.5: all three ties kept.
    # twentysix: 0.9 * 25 = 22.5 -> k = 23, scores 23, 24, 25.
    assert one(proj, "mc:quantile=0.9").kept == 3 + 3
    # 0.28 * 25 is 7 in decimal, 7.000000000000001 in floating point: the threshold is the
    # score 7 (k = 7), so the tie at 7 is kept: scores 7..25 = 19 samples. ties: 0.28 * 3 =
    # 0.84 -> k = 1, threshold 0.5.
    r = one(proj, "mc:quantile=0.28")
    assert r.kept == 3 + 19
    assert np.quantile(np.arange(26.0), 0.28) > 7.0  # what a naive >= quantile would drop


def test_all_correct_and_all_rejected(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("a"), [1, 1])
    b.scores(g, "mc", [0.1, 0.2])
    g = b.gens(b.prompt("b"), [0, 1])
    b.scores(g, "mc", [None, None])
    proj = b.projections()
    r = one(proj, "mc:tau=0.5")
    assert r.empty_prompts == 2 and r.kept == 0
    assert r.gap == 0.0 and r.rel_gap == 0.0 and r.perfect_prompts == 1
    # a gap of 0 with the interval [0, 0]: inside the +-0.005 band, so "no gap"
    assert (r.gap_lo, r.gap_hi) == (0.0, 0.0)
    assert r.verdict == "no gap" and r.prompts_to_decide is None


def test_single_sample_per_prompt(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    for i in range(4):
        g = b.gens(b.prompt(f"p{i}"), [i % 2])
        b.scores(g, "mc", [0.9])
    r = one(b.projections(), "mc:quantile=0.8")
    assert r.kept == 4 and r.gap == 0.0 and r.base == pytest.approx(0.5)


def test_exp_weights(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("p"), [0, 1, 0])
    b.scores(g, "mc", [0.0, 1.0, None])
    r = one(b.projections(), "mc:exp=0.5")
    w = np.array([math.exp(-2.0), 1.0])
    assert r.reweighted == pytest.approx(1.0 / w.sum())
    assert r.gap == pytest.approx(1.0 / w.sum() - 1 / 3)
    assert r.kept == 2


def test_and_or_mean(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("p"), [1, 0, 1])
    b.scores(g, "mc", [0.9, 0.1, 0.5])
    b.scores(g, "cot_score", [2, 8, 8])
    proj = b.projections()
    assert one(proj, "and(mc:tau=0.5,cot_score:tau=8)").kept == 1  # sample 2
    assert one(proj, "and(mc:tau=0.5,cot_score:tau=8)").reweighted == 1.0
    r = one(proj, "or(mc:tau=0.9,cot_score:tau=8)")  # all three
    assert r.kept == 3 and r.gap == 0.0
    # rank-normalised: mc [1, 0, 0.5]; cot_score average ranks [0, 1.5, 1.5] / 2 =
    # [0, 0.75, 0.75]; mean [0.5, 0.375, 0.625].
    assert one(proj, "mean(mc,cot_score):tau=0.6").kept == 1
    r = one(proj, "mean(mc,cot_score):quantile=0.5")  # threshold 0.5: samples 0 and 2
    assert r.kept == 2 and r.reweighted == 1.0
    assert one(proj, "mean(mc,cot_score):tau=0.375").kept == 3


def test_tournament_bye_and_undecided(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    p = b.prompt("bye")
    g0, g1, g2 = b.gens(p, [0, 0, 1])
    b.match(p, g0, g1, g1, 0)  # g2 has a bye in round 0
    b.match(p, g1, g2, g2, 1)
    q = b.prompt("undecided")
    h0, h1 = b.gens(q, [1, 0])
    b.match(q, h1, h0, None, 0)  # no verdict: side A (h1) advances, h0 is out
    r_ = b.prompt("unplayed")
    b.gens(r_, [1, 0])  # no matches at all: no verdict for anyone
    proj = b.projections()
    r1 = one(proj, "tournament:rounds=1")
    # bye: survivors g1, g2 -> 1/2; undecided: h1 -> 0; unplayed: falls back (1/2)
    assert r1.kept == 3 and r1.empty_prompts == 1
    assert r1.reweighted == pytest.approx((0.5 + 0 + 0.5) / 3)
    r2 = one(proj, "tournament:rounds=2")
    assert r2.kept == 2 and r2.reweighted == pytest.approx((1 + 0 + 0.5) / 3)
    r0 = one(proj, "tournament:rounds=0")
    assert r0.kept == 5 and r0.gap == 0.0
    assert one(proj, "tournament:rounds=2,nulls=keep").kept == 4
    with pytest.raises(GvstoreError, match="recorded rounds"):
        one(proj, "tournament:rounds=3")


def test_repeats_are_averaged(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("p"), [1, 0, 0])
    b.scores(g, "cot_score", [8, None, 6], repeat=0)
    b.scores(g, "cot_score", [None, None, 9], repeat=1)
    proj = b.projections()
    sf = score_frame(proj, "cot_score").sort("score", nulls_last=True)
    assert sf["score"].to_list() == [7.5, 8.0, None]
    assert sf["repeats"].to_list() == [2, 2, 2] and sorted(sf["nulls"].to_list()) == [0, 1, 2]
    # means 8, null, 7.5: tau=7.5 keeps samples 0 and 2; tau=8 only sample 0.
    assert one(proj, "cot_score:tau=7.5").kept == 2
    assert one(proj, "cot_score:tau=8").reweighted == 1.0


def test_utility_grader_versions_and_filters(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    p = b.prompt("p")
    g = b.gens(p, [0, 0], flexible=[1, 0])
    b.scores(g, "mc", [0.9, 0.1])
    h = b.gens(p, [1, None], model="other")  # one ungraded generation
    b.scores(h, "mc", [0.2, 0.8], verifier="w")
    # a newer grader version ("10" > "2" in natural order) overrides the strict grade of g[1]
    b.grade(g[1], 0.0, 0.0, version="2")
    b.grade(g[1], 1.0, 1.0, version="10")
    proj = b.projections()
    base = base_frame(proj, filters=Filters(generators=("g",)))
    assert base["utility"].to_list() == [0.0, 1.0]
    assert one(proj, "mc:tau=0.5", filters=Filters(generators=("g",))).reweighted == 0.0
    flex = one(proj, "mc:tau=0.5", utility="flexible", filters=Filters(generators=("g",)))
    assert flex.base == 1.0 and flex.reweighted == 1.0
    rows = gap_table(Dataset(proj), [parse("mc:tau=0.5")], resamples=0)
    assert [(r.generator, r.verifier) for r in rows] == [("g", "v"), ("other", "w")]
    other = rows[1]
    assert other.generations == 1 and other.ungraded == 1 and other.kept == 0
    only_w = gap_table(Dataset(proj, filters=Filters(verifiers=("w",))), [parse("mc:tau=0.5")])
    assert [r.generator for r in only_w] == ["other"]
    with pytest.raises(GvstoreError, match="utility"):
        one(proj, "mc:tau=0.5", utility="lenient")


def test_bootstrap_is_seeded_and_matches_the_definition(five: Projections) -> None:
    a = gap_table(Dataset(five), [parse("cot_score:tau=8")], resamples=300, seed=3)[0]
    b = gap_table(Dataset(five), [parse("cot_score:tau=8")], resamples=300, seed=3)[0]
    c = gap_table(Dataset(five), [parse("cot_score:tau=8")], resamples=300, seed=4)[0]
    assert a == b
    assert (a.gap_lo, a.gap_hi) != (c.gap_lo, c.gap_hi)
    diffs = np.array([0.25, 0.0, 0.0, 0.0, -1 / 6])  # per-prompt gaps, prompts by handle
    order = np.argsort(five.prompts.sort("prompt")["item_id"].to_numpy())  # p1..p5 -> rows
    per_prompt = np.empty(5)
    per_prompt[order] = diffs
    idx = np.random.default_rng(3).integers(0, 5, size=(300, 5))
    means = per_prompt[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    assert (a.gap_lo, a.gap_hi) == (pytest.approx(lo), pytest.approx(hi))
    assert a.gap_lo <= a.gap <= a.gap_hi


def test_verdicts() -> None:
    assert verdict(0.01, 0.2) == "improvable"
    assert verdict(-0.2, -0.01) == "worse"
    assert verdict(-0.1, 0.1) == "inconclusive"
    assert verdict(0.0, 0.1) == "inconclusive"
    assert verdict(0.0, 0.0) == "no gap"
    assert verdict(-0.005, 0.005) == "no gap"  # the band's edges are inside it
    assert verdict(-0.0051, 0.004) == "inconclusive"
    assert verdict(0.001, 0.003) == "improvable"  # above 0 wins over inside the band
    assert verdict(float("nan"), float("nan")) == "unknown"
    # one prompt resampled gives a zero-width interval: it decides nothing
    assert verdict(0.2, 0.2, prompts=1) == "inconclusive"
    assert verdict(0.2, 0.3, prompts=2) == "improvable"
    boot = Bootstrap(4, 0)
    lo, hi = boot.interval(np.zeros((4, 2)))
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_worse_verdict(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    for i in range(30):  # the verifier prefers the wrong answer everywhere
        g = b.gens(b.prompt(f"p{i}"), [1, 0])
        b.scores(g, "mc", [0.1, 0.9])
    r = one(b.projections(), "mc:tau=0.5")
    assert r.gap == -0.5 and r.verdict == "worse" and r.gap_hi < 0


def test_prompts_to_decide_by_hand() -> None:
    from gvstore.analysis.verdicts import describe, prompts_to_decide

    # diffs 0.25 and 0: mean 0.125, sd 0.17678 (ddof 1); z(0.95) = 1.95996;
    # N = ceil((1.95996 * 0.17678 / 0.125)^2) = ceil(7.683) = 8
    assert prompts_to_decide(np.array([0.25, 0.0])) == 8
    # a mean inside the band: the margin is band - |d| when that is larger than |d|
    # diffs +-0.01 around 0.001: d = 0.001, margin = 0.004, s = 0.01 * sqrt(4/3)
    x = np.array([0.011, -0.009, 0.011, -0.009])
    s = float(np.std(x, ddof=1))
    assert prompts_to_decide(x) == int(np.ceil((1.959963984540054 * s / 0.004) ** 2))
    assert prompts_to_decide(np.array([0.3])) is None  # one prompt: no spread
    assert prompts_to_decide(np.array([0.2, 0.2, 0.2])) is None  # no spread
    assert describe("inconclusive", 1234) == "inconclusive (~1,234 prompts to decide)"
    assert describe("improvable", None) == "improvable"
