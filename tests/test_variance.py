"""Verification variance: Bernoulli variance of repeated binary verdicts, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import StoreBuilder

from gvstore.analysis.variance import variance_summary, verdict_variance
from gvstore.replay import Projections


def _store(tmp_path: Path, verdicts: dict[str, list[list[float | None]]]) -> Projections:
    """One generation per position; ``verdicts[method][i]`` lists its repeated scores by v
    (recorded "ok", null or not)."""
    b = StoreBuilder(tmp_path / "store")
    gens = b.gens(b.prompt("0", text="q"), len(next(iter(verdicts.values()))), text="a{i}")
    for method, per_gen in verdicts.items():
        b.repeats(gens, method, per_gen, status="ok")
    return b.projections(cache=False, folder="test")


def test_variance_by_hand(tmp_path: Path) -> None:
    proj = _store(tmp_path, {
        "cot_binary": [[1.0, 1.0, 0.0], [1.0, 1.0], [1.0, None], []],
        # mc: P(Correct) >= 0.5 is "correct" (0.5 included): verdicts 1, 0, 1.
        "mc": [[0.7, 0.4, 0.5], [0.1, 0.2], [0.9], [0.6, 0.3]],
        "cot_score": [[3.0, 9.0], [1.0], [2.0], [4.0]],  # no binary verdict: skipped
    })
    per_gen = verdict_variance(proj.verifications)
    assert set(per_gen["method"]) == {"cot_binary", "mc"}
    cot = per_gen.filter(method="cot_binary").sort("m", descending=True)
    assert cot["m"].to_list() == [3, 2, 1]
    assert cot["p"].to_list() == pytest.approx([2 / 3, 1.0, 1.0])
    assert cot["variance"].to_list()[:2] == pytest.approx([2 / 9, 0.0])
    assert cot["variance"].to_list()[2] is None and cot["failures"].to_list() == [0, 0, 1]

    summary = {s["method"]: s for s in variance_summary(per_gen, bins=10)}
    s = summary["cot_binary"]
    assert (s["generations"], s["single"], s["failures"]) == (2, 1, 1)
    assert s["mean_variance"] == pytest.approx((2 / 9 + 0.0) / 2)
    assert s["mean_verdicts"] == pytest.approx(2.5)
    assert s["consistent"] == pytest.approx(0.5)
    counts = s["histogram"]["counts"]
    assert counts[0] == 1 and counts[8] == 1 and sum(counts) == 2  # 2/9 in [0.2, 0.225)
    assert s["histogram"]["edges"][-1] == pytest.approx(0.25)

    m = summary["mc"]
    assert (m["generations"], m["single"]) == (3, 1)
    # p(1-p): 2/9 (1,0,1), 0 (0,0), 1/4 (1,0): the maximum lands in the closed last bin.
    assert m["mean_variance"] == pytest.approx((2 / 9 + 0 + 1 / 4) / 3)
    assert m["histogram"]["counts"][-1] == 1


def test_custom_thresholds_and_all_single(tmp_path: Path) -> None:
    proj = _store(tmp_path, {"cot_score": [[3.0, 9.0], [8.0, 8.0]], "mc": [[0.9], [0.2]]})
    per_gen = verdict_variance(proj.verifications, thresholds={"cot_score": 8.0})
    assert sorted(per_gen["variance"].to_list()) == pytest.approx([0.0, 0.25])
    only_single = variance_summary(verdict_variance(proj.verifications))
    assert only_single[0]["method"] == "mc" and only_single[0]["generations"] == 0
    assert only_single[0]["mean_variance"] is None
