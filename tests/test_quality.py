"""Verifier quality (gvstore/analysis/quality*.py) against hand computations on small stores
and against scikit-learn on the same arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from gvstore.analysis.frames import Dataset, Filters
from gvstore.analysis.gap import Graded, draw_counts
from gvstore.analysis.quality import QualityRow, quality_table, score_methods
from gvstore.analysis.quality_plots import write_quality_plots
from gvstore.analysis.quality_stats import (
    AucResampler,
    Calibration,
    bin_index,
    curve,
    labels,
    rescale,
    weighted_auc,
)
from gvstore.errors import GvstoreError
from gvstore.replay import Projections


def rows_of(proj: Projections, methods: list[str], **kw: object) -> list[QualityRow]:
    return quality_table(Dataset(proj, utility=str(kw.pop("utility", "strict"))), methods,
                         **kw)  # type: ignore[arg-type]


def one(proj: Projections, method: str = "cot_score", **kw: object) -> QualityRow:
    rows = [r for r in rows_of(proj, [method], **kw) if r.generator == "g"]
    assert len(rows) == 1
    return rows[0]


@pytest.fixture
def hand(tmp_path: Path) -> Projections:
    """Five prompts of generator g, cot_score by verifier v (see each comment)."""
    b = StoreBuilder(tmp_path / "s")
    # p1: a tie at 9 between a correct and a wrong sample; a null score on a wrong one
    b.scores(b.gens(b.prompt("p1"), [1, 0, 1, 0]), "cot_score", [9, 9, 5, None])
    # p2: a single sample
    b.scores(b.gens(b.prompt("p2"), [1]), "cot_score", [10])
    # p3: all wrong; the 8 is a wrong answer scored high (a false positive at 8)
    b.scores(b.gens(b.prompt("p3"), [0, 0]), "cot_score", [2, 8])
    # p4: all correct
    b.scores(b.gens(b.prompt("p4"), [1, 1]), "cot_score", [7, 3])
    # p5: an ungraded sample (left out, though scored) and a wrong one
    b.scores(b.gens(b.prompt("p5"), [None, 0]), "cot_score", [10, 1])
    return b.projections()


# the usable samples of `hand`: (score, label)
POS = [9, 5, 10, 7, 3]
NEG = [9, 2, 8, 1]


def test_counts_and_parse_failures(hand: Projections) -> None:
    r = one(hand, resamples=0)
    assert (r.prompts, r.scored_prompts, r.graded, r.verified, r.unparsed) == (5, 5, 10, 10, 1)
    assert r.parse_failure_rate == pytest.approx(0.1)
    assert (r.samples, r.positives, r.negatives) == (9, 5, 4)
    assert r.accuracy == pytest.approx(5 / 9)
    assert r.scale == (1.0, 10.0)
    assert r.note is None and not r.self_verification
    head = r.headline()
    assert head["parse_failure_rate"] == pytest.approx(0.1) and head["method"] == "cot_score"
    assert "curve" not in head and "bins" not in head and "scale" not in head


def test_auc_by_hand_and_by_sklearn(hand: Projections) -> None:
    r = one(hand, resamples=0)
    # pairs ranked right: 10 beats 4, 9 beats 3 and ties 1 (a half), 7, 5, 3 beat 2 each
    assert r.auc == pytest.approx(13.5 / 20)
    s = np.array(POS + NEG, float)
    y = np.array([1] * 5 + [0] * 4, float)
    assert r.auc == pytest.approx(roc_auc_score(y, s))
    assert weighted_auc(s, y) == pytest.approx(13.5 / 20)
    assert r.auc_lo is None and r.auc_hi is None  # no resamples, no interval


def test_thresholds_by_hand(hand: Projections) -> None:
    cv = one(hand, resamples=0).curve
    assert cv.threshold == [10, 9, 8, 7, 5, 3, 2, 1]
    assert cv.tp == [1, 2, 2, 3, 4, 5, 5, 5]
    assert cv.fp == [0, 1, 2, 2, 2, 2, 3, 4]  # the wrong 8 counts as a false positive
    assert cv.precision == pytest.approx([1, 2 / 3, 2 / 4, 3 / 5, 4 / 6, 5 / 7, 5 / 8, 5 / 9])
    assert cv.recall == pytest.approx([t / 5 for t in cv.tp])
    assert cv.fpr == pytest.approx([f / 4 for f in cv.fp])
    thin = curve(np.array(POS + NEG, float), np.array([1] * 5 + [0] * 4, float), 3)
    assert thin.threshold == [10, 5, 1]  # indices 0, round(3.5) = 4 and 7 of the 8


def test_calibration_by_hand(hand: Projections) -> None:
    r = one(hand, resamples=0)
    # c = (s - 1) / 9; squared errors: correct 0, 1, 9, 25, 49 /81, wrong 64, 1, 49, 0 /81
    assert r.brier == pytest.approx(198 / 81 / 9)
    # bins: 0 {0-}, 1 {1/9-}, 2 {2/9+}, 4 {4/9+}, 6 {6/9+}, 7 {7/9-}, 8 {8/9+, 8/9-}, 9 {1+}
    assert r.ece == pytest.approx((0 + 1 + 7 + 5 + 3 + 7 + 7 + 0) / 9 / 9)
    assert [b.n for b in r.bins] == [1, 1, 1, 0, 1, 0, 1, 1, 2, 1]
    assert [b.positives for b in r.bins] == [0, 0, 1, 0, 1, 0, 1, 0, 1, 1]
    assert r.bins[8].accuracy == 0.5 and r.bins[8].confidence == pytest.approx(8 / 9)
    assert r.bins[3].accuracy is None and r.bins[3].confidence is None
    assert r.mean_confidence == pytest.approx(45 / 81)
    assert r.overconfidence == pytest.approx(0.0, abs=1e-12)  # mean c 5/9 = accuracy 5/9
    assert r.mean_confidence_correct == pytest.approx(29 / 45)
    assert r.mean_confidence_incorrect == pytest.approx(16 / 36)


def test_curve_and_bins_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    for s in (rng.integers(1, 11, 300).astype(float), rng.random(300)):  # ties, then none
        y = (rng.random(300) < 0.4).astype(float)
        cv = curve(s, y)
        fpr, tpr, th = roc_curve(y, s, drop_intermediate=False)
        assert np.allclose(cv.threshold, th[1:]) and np.allclose(cv.fpr, fpr[1:])
        assert np.allclose(cv.recall, tpr[1:])
        prec, rec, th2 = precision_recall_curve(y, s)
        assert np.allclose(cv.threshold[::-1], th2)
        assert np.allclose(cv.precision[::-1], prec[:-1]) and np.allclose(cv.recall[::-1],
                                                                          rec[:-1])
        c = rescale(s, float(s.min()), float(s.max()))
        cal = Calibration.of(np.zeros(300, np.int64), c, y, 1, 10)
        st = cal.stats(np.ones((1, 1)))
        true, pred = calibration_curve(y, c, n_bins=10, strategy="uniform")
        full = st["n"][0] > 0
        assert np.allclose(st["accuracy"][0][full], true)
        assert np.allclose(st["confidence"][0][full], pred)
        assert st["brier"][0] == pytest.approx(brier_score_loss(y, c))


def test_weighted_auc_matches_sklearn_sample_weight() -> None:
    rng = np.random.default_rng(5)
    p, n = 30, 7
    pidx = np.repeat(np.arange(p), n)
    y = (rng.random(p * n) < 0.5).astype(float)
    for s in (rng.integers(0, 4, p * n).astype(float), rng.normal(y, 1.0)):
        counts = draw_counts(p, 50, 11)
        got = AucResampler(pidx, s, y, p).resampled(counts)
        want = [roc_auc_score(y, s, sample_weight=c[pidx]) for c in counts]
        assert np.allclose(got, want, atol=1e-12)
        assert np.allclose([weighted_auc(s, y, c[pidx]) for c in counts], want, atol=1e-12)


def test_resampled_auc_undefined_without_a_class() -> None:
    pidx = np.array([0, 0, 1, 1])
    s, y = np.array([0.9, 0.2, 0.4, 0.1]), np.array([1.0, 1.0, 0.0, 0.0])
    counts = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    got = AucResampler(pidx, s, y, 2).resampled(counts)
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == pytest.approx(0.75)
    assert np.isnan(weighted_auc(s, np.ones(4)))


def test_labels_rescale_and_bins() -> None:
    assert labels(np.array([0.0, 0.49, 0.5, 1.0])).tolist() == [0, 0, 1, 1]
    assert rescale(np.array([1.0, 5.5, 10.0]), 1, 10).tolist() == [0, 0.5, 1]
    assert bin_index(np.array([0.0, 0.1, 0.1001, 0.95, 1.0])).tolist() == [0, 0, 1, 9, 9]


def test_bootstrap_equals_a_direct_loop(hand: Projections) -> None:
    r = one(hand, resamples=200, seed=4)
    counts = draw_counts(5, 200, 4)
    # the usable samples with their prompt numbers (prompts are numbered in handle order)
    g = Dataset(hand).groups(["cot_score"])[0]
    graded = Graded(g)
    s_all = g.scores["cot_score"][graded.mask]
    ok = ~np.isnan(s_all)
    s, y, pidx = s_all[ok], graded.u[ok], graded.pidx[ok]
    assert sorted(s[y == 1]) == sorted(POS) and sorted(s[y == 0]) == sorted(NEG)
    c = (s - 1) / 9
    aucs, briers, eces = [], [], []
    for cnt in counts:
        w = cnt[pidx]
        if w.sum() == 0:
            continue
        briers.append(brier_score_loss(y, c, sample_weight=w))
        k = bin_index(c)
        eces.append(sum(abs((w * (y - c))[k == b].sum()) for b in range(10)) / w.sum())
        if (w * y).sum() > 0 and (w * (1 - y)).sum() > 0:
            aucs.append(roc_auc_score(y, s, sample_weight=w))
    assert (r.auc_lo, r.auc_hi) == pytest.approx(tuple(np.percentile(aucs, [2.5, 97.5])))
    assert r.auc_undefined_resamples == 200 - len(aucs)
    assert (r.brier_lo, r.brier_hi) == pytest.approx(tuple(np.percentile(briers, [2.5, 97.5])))
    assert (r.ece_lo, r.ece_hi) == pytest.approx(tuple(np.percentile(eces, [2.5, 97.5])))
    assert r.auc_lo is not None and r.auc_lo <= (r.auc or 0) <= (r.auc_hi or 0)


@pytest.fixture
def edges(tmp_path: Path) -> Projections:
    """Groups where something is undefined: all correct, all wrong, no parsed score."""
    b = StoreBuilder(tmp_path / "e")
    b.scores(b.gens(b.prompt("a"), [1, 1], model="right"), "mc", [0.9, 0.3])
    b.scores(b.gens(b.prompt("b"), [1], model="right"), "mc", [0.6])
    b.scores(b.gens(b.prompt("a"), [0, 0], model="wrong"), "mc", [0.2, 0.2])
    b.scores(b.gens(b.prompt("a"), [1, 0], model="null"), "cot_binary", [None, None])
    b.repeats(b.gens(b.prompt("b"), [0], model="null"), "cot_binary", [[None, None]])
    b.scores(b.gens(b.prompt("a"), [1, 0, 0], model="few"), "cot_binary", [1.0, None, None])
    return b.projections()


def test_one_class_and_no_scores_never_crash(edges: Projections) -> None:
    rows = {(r.generator, r.method): r for r in rows_of(edges, ["mc", "cot_binary"],
                                                         resamples=100)}
    right = rows["right", "mc"]
    assert right.auc is None and right.auc_lo is None and "only correct" in (right.note or "")
    assert right.brier == pytest.approx((0.01 + 0.49 + 0.16) / 3)
    assert right.overconfidence == pytest.approx(0.6 - 1.0)
    assert right.curve.recall == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(np.isnan(right.curve.fpr))  # no negatives: undefined
    wrong = rows["wrong", "mc"]
    assert wrong.auc is None and wrong.curve.precision == [0.0]
    assert wrong.ece == pytest.approx(0.2) and wrong.positives == 0
    null = rows["null", "cot_binary"]
    assert (null.samples, null.verified, null.unparsed, null.parse_failure_rate) == (
        0, 3, 3, 1.0)
    assert null.auc is None and null.brier is None and null.ece is None
    assert null.brier_lo is None and "no parsed score" in (null.note or "")
    few = rows["few", "cot_binary"]
    assert few.parse_failure_rate == pytest.approx(2 / 3) and few.samples == 1
    assert "mostly unparsed: 2 of 3" in (few.note or "") and "only correct" in (few.note or "")
    paths = write_quality_plots(list(rows.values()), edges.store.root.parent / "plots")
    assert [p.name for p in paths] == ["verifier_roc.png", "verifier_reliability.png",
                                       "verifier_scores.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.fixture
def selfish(tmp_path: Path) -> Projections:
    """Generator g verified by itself and by x (mc), three prompts."""
    b = StoreBuilder(tmp_path / "b")
    for name, grades, own, other in (("p", [1, 0], [0.9, 0.7], [0.8, 0.2]),
                                     ("q", [0, 0], [0.6, 0.4], [0.1, 0.3]),
                                     ("r", [1], [1.0], [0.5])):
        gens = b.gens(b.prompt(name), grades)
        b.scores(gens, "mc", own, verifier="g")
        b.scores(gens, "mc", other, verifier="x")
    return b.projections()


def test_self_bias(selfish: Projections) -> None:
    rows = {r.verifier: r for r in rows_of(selfish, ["mc"], resamples=300, seed=2)}
    own, other = rows["g"], rows["x"]
    assert own.self_verification and not other.self_verification
    # accuracy 2/5; mean confidence self 3.6/5, cross 1.9/5
    assert own.overconfidence == pytest.approx(3.6 / 5 - 0.4)
    assert other.overconfidence == pytest.approx(1.9 / 5 - 0.4)
    assert own.self_bias == pytest.approx(1.7 / 5)
    assert own.cross_verifiers == ["x"] and other.self_bias is None
    # paired: the same prompt draws for both verifiers
    counts = draw_counts(3, 300, 2)
    groups = {g.verifier: g for g in Dataset(selfish).groups(["mc"])}
    pidx = Graded(groups["g"]).pidx  # prompts numbered in handle order, shared by both
    assert (pidx == Graded(groups["x"]).pidx).all()
    gap = groups["g"].scores["mc"] - groups["x"].scores["mc"]
    assert sorted(gap.round(6)) == sorted([0.1, 0.5, 0.5, 0.1, 0.5])
    diffs = [(cnt[pidx] * gap).sum() / cnt[pidx].sum() for cnt in counts]
    assert (own.self_bias_lo, own.self_bias_hi) == pytest.approx(
        tuple(np.percentile(diffs, [2.5, 97.5])))


def test_flexible_utility_and_filters(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "f")
    gens = b.gens(b.prompt("p"), [(0.0, 1.0), (0.0, 0.0)])
    b.scores(gens, "mc", [0.8, 0.3])
    proj = b.projections()
    strict = one(proj, "mc", resamples=0)
    flex = one(proj, "mc", resamples=0, utility="flexible")
    assert strict.auc is None and strict.positives == 0
    assert flex.auc == 1.0 and flex.positives == 1 and flex.utility == "flexible"
    ds = Dataset(proj, filters=Filters(verifiers=("nobody",)))
    assert quality_table(ds, ["mc"], resamples=0) == []


def test_methods() -> None:
    assert score_methods(None) == (["mc", "cot_binary", "cot_score"], [])
    assert score_methods(["mc", "tournament", "mc"]) == (["mc"], ["tournament"])
    with pytest.raises(GvstoreError, match="unknown method"):
        score_methods(["nope"])
