"""The per-round report of iterative self-improvement, against numbers worked out by hand.

The store (``chain`` fixture), task ``arith``, n = 4 samples per prompt; each sample is
(strict, flexible, extracted answer), and cot_binary verdicts where a verifier looked:

round 0, model m-r0 (verified by itself and by ``judge``)
  p1: (1,1,'4') (0,1,'4') (0,0,'5') (0,0,None)     self [1,0,1,0]  judge [1,1,1,1]
  p2: (0,0,'7') (0,0,'8') (0,0,'9') (0,1,'10')     self [0,0,0,0]  judge [1,0,0,0]
  p3: (1,1,'3') x 4                                 self [1,1,1,1]  (p3 is missing later)
round 1, model m-r1 (verified by itself and by ``judge``)
  p1: (1,1,'4') (1,1,'4') (0,1,'4') (0,0,' 5 ')   self [1,1,0,1]  judge [1,0,0,0]
      plus one ungraded generation
  p2: (1,1,'12') (0,0,'12') (0,0,'') (0,0,None)    self [1,0,0,0]  judge [0,0,0,0]
round 2, model m-r2 (verified by nobody)
  p1: (1,1,'4') x 4
  p2: (1,1,'12') (1,1,'12') (0,1,'12') (0,0,'12'); sample 0 also has an older grade
      (version 1: 0, 0, '99') that the newer one (version 2) replaces
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import StoreBuilder

from gvstore.analysis.plots import rounds_figure
from gvstore.analysis.rounds import (
    RoundRef,
    RoundsReport,
    diversity_verdict,
    infer_chain,
    round_report,
    write_series,
)
from gvstore.analysis.specs import parse
from gvstore.errors import GvstoreError
from gvstore.records import Generation
from gvstore.replay import PROJECTION_VERSION, Projections

Sample = tuple[float, float, str | None]
TASK = "arith"
SPEC = parse("cot_binary:tau=1")
EFF_2_1 = 1.8898815748423097  # exp(-(2/3 ln 2/3 + 1/3 ln 1/3)): answers 4, 4, 5
EFF_3_1 = 1.7547653506033232  # exp(-(3/4 ln 3/4 + 1/4 ln 1/4)): answers 4, 4, 4, 5


def gens(b: StoreBuilder, name: str, model: str, rnd: int, samples: list[Sample | None],
         version: str = "1") -> list[Generation]:
    """Generations of prompt ``name`` (reference "4"), each graded (strict, flexible,
    extracted) unless None."""
    return b.gens(b.prompt(name, reference="4"), samples, model=model, rnd=rnd, version=version)


@pytest.fixture
def chain(tmp_path: Path) -> Projections:
    """The three-round store of the module doc."""
    b = StoreBuilder(tmp_path / "s", TASK)
    g = gens(b, "p1", "m-r0", 0, [(1, 1, "4"), (0, 1, "4"), (0, 0, "5"), (0, 0, None)])
    b.scores(g, "cot_binary", [1, 0, 1, 0], verifier="m-r0")
    b.scores(g, "cot_binary", [1, 1, 1, 1], verifier="judge")
    g = gens(b, "p2", "m-r0", 0, [(0, 0, "7"), (0, 0, "8"), (0, 0, "9"), (0, 1, "10")])
    b.scores(g, "cot_binary", [0, 0, 0, 0], verifier="m-r0")
    b.scores(g, "cot_binary", [1, 0, 0, 0], verifier="judge")
    g = gens(b, "p3", "m-r0", 0, [(1, 1, "3")] * 4)
    b.scores(g, "cot_binary", [1, 1, 1, 1], verifier="m-r0")
    g = gens(b, "p1", "m-r1", 1, [(1, 1, "4"), (1, 1, "4"), (0, 1, "4"), (0, 0, " 5 "), None])
    b.scores(g[:4], "cot_binary", [1, 1, 0, 1], verifier="m-r1")
    b.scores(g[:4], "cot_binary", [1, 0, 0, 0], verifier="judge")
    g = gens(b, "p2", "m-r1", 1, [(1, 1, "12"), (0, 0, "12"), (0, 0, ""), (0, 0, None)])
    b.scores(g, "cot_binary", [1, 0, 0, 0], verifier="m-r1")
    b.scores(g, "cot_binary", [0, 0, 0, 0], verifier="judge")
    gens(b, "p1", "m-r2", 2, [(1, 1, "4")] * 4)
    g = gens(b, "p2", "m-r2", 2, [(1, 1, "12"), (1, 1, "12"), (0, 1, "12"), (0, 0, "12")],
             version="2")
    b.grade(g[0], 0, 0, "99", version="1")  # older: replaced by the version-2 grade
    return b.projections()


SELF_CHAIN = [RoundRef(0, "m-r0", "m-r0"), RoundRef(1, "m-r1", "m-r1"), RoundRef(2, "m-r2", None)]


def report(proj: Projections, **kw: object) -> RoundsReport:
    args: dict[str, object] = {"spec": SPEC, "ks": (1, 2, 4), "resamples": 1000, "seed": 0}
    args.update(kw)
    chain = args.pop("chain", SELF_CHAIN)
    return round_report(proj, TASK, chain, **args)  # type: ignore[arg-type]


def test_projection_carries_extracted(chain: Projections) -> None:
    assert PROJECTION_VERSION == "3"
    got = chain.grades["extracted"].to_list()
    assert set(got) == {"4", "5", None, "7", "8", "9", "10", "3", " 5 ", "12", "", "99"}


def test_infer_chain_self_fixed_and_none(chain: Projections) -> None:
    # m-r2 verified nothing: its round has no self-verifier.
    assert infer_chain(chain, TASK) == SELF_CHAIN
    assert infer_chain(chain, TASK, "judge") == [
        RoundRef(0, "m-r0", "judge"), RoundRef(1, "m-r1", "judge"), RoundRef(2, "m-r2", "judge")]
    assert [r.verifier for r in infer_chain(chain, TASK, None)] == [None, None, None]
    assert infer_chain(chain, "no-such-task") == []


def test_prompt_intersection_and_counts(chain: Projections) -> None:
    rows = report(chain).rows
    # p3 exists only in round 0: it is dropped there (and counted); every round uses p1, p2.
    assert [(r.prompts, r.prompts_before, r.dropped) for r in rows] == [
        (2, 3, 1), (2, 2, 0), (2, 2, 0)]
    # round 1's ungraded fifth sample of p1 is left out and counted
    assert [(r.samples, r.ungraded, r.n_min, r.n_max) for r in rows] == [
        (8, 0, 4, 4), (8, 1, 4, 4), (8, 0, 4, 4)]
    assert report(chain).prompts == 2


def test_accuracy_strict_flexible_and_format_gap(chain: Projections) -> None:
    rows = report(chain).rows
    # round 0: strict p1 1/4, p2 0; flexible p1 2/4, p2 1/4
    # round 1: strict 2/4, 1/4; flexible 3/4, 1/4
    # round 2: strict 4/4, 2/4 (the newer grade of p2's sample 0 counts); flexible 4/4, 3/4
    assert [r.acc_strict for r in rows] == pytest.approx([0.125, 0.375, 0.75])
    assert [r.acc_flexible for r in rows] == pytest.approx([0.375, 0.5, 0.875])
    assert [r.format_gap for r in rows] == pytest.approx([0.25, 0.125, 0.125])
    assert [r.perfect for r in rows] == [0, 0, 1]  # round 2's p1 is all correct


def test_gap_under_self_verification(chain: Projections) -> None:
    r0, r1, r2 = report(chain).rows
    # round 0, cot_binary:tau=1: p1 keeps samples 0, 2 (u 1, 0): acc_w 1/2, acc 1/4,
    # diff 1/4, rel (1/4)/(3/4) = 1/3; p2 keeps nothing: acc_w = acc, diff 0, rel 0.
    assert r0.gap == pytest.approx(0.125)
    assert r0.rel_gap == pytest.approx(1 / 6)
    assert r0.acc_reweighted == pytest.approx(0.25)
    assert r0.empty_filter == 1
    # bootstrap over 2 prompts: a quarter of resamples draw p2 twice (mean 0) and a quarter
    # p1 twice, so the 2.5% and 97.5% percentiles are the two prompts' own values.
    assert (r0.gap_lo, r0.gap_hi) == pytest.approx((0.0, 0.25))
    assert (r0.rel_gap_lo, r0.rel_gap_hi) == pytest.approx((0.0, 1 / 3))
    # [0, 0.25] holds 0 and is wider than the +-0.005 band: inconclusive; per-prompt diffs
    # 0.25 and 0 (sd 0.1768) decide at ceil((1.96 * 0.1768 / 0.125)^2) = 8 prompts
    assert r0.verdict == "inconclusive" and r0.note is None
    assert r0.prompts_to_decide == 8
    # round 1: p1 keeps 0, 1, 3 (u 1, 1, 0): acc_w 2/3, acc 1/2, diff 1/6, rel 1/3;
    # p2 keeps 0 (u 1): acc_w 1, acc 1/4, diff 3/4, rel 1.
    assert r1.gap == pytest.approx(11 / 24)
    assert r1.rel_gap == pytest.approx(2 / 3)
    assert r1.acc_reweighted == pytest.approx(5 / 6)
    assert r1.empty_filter == 0
    assert (r1.gap_lo, r1.gap_hi) == pytest.approx((1 / 6, 0.75))
    assert (r1.rel_gap_lo, r1.rel_gap_hi) == pytest.approx((1 / 3, 1.0))
    assert r1.verdict == "improvable"
    # round 2 has no verifier: every gap field is None, and the note says why
    assert r2.verifier is None
    assert (r2.gap, r2.gap_lo, r2.gap_hi, r2.rel_gap, r2.acc_reweighted, r2.empty_filter,
            r2.verdict) == (None,) * 7
    assert r2.note == "no verifier for this round: no gap"


def test_fixed_verifier_missing_in_a_round(chain: Projections) -> None:
    rows = report(chain, chain=infer_chain(chain, TASK, "judge")).rows
    # round 0: judge keeps all of p1 (acc_w = acc) and p2's sample 0 (u 0 = acc): gap 0
    # round 1: p1 keeps sample 0 (u 1): diff 1/2, rel 1; p2 keeps nothing: 0
    assert [r.gap for r in rows[:2]] == pytest.approx([0.0, 0.25])
    assert [r.rel_gap for r in rows[:2]] == pytest.approx([0.0, 0.5])
    assert rows[2].gap is None and rows[2].rel_gap_hi is None
    assert rows[2].note == ("verifier 'judge' has no cot_binary verifications of round 2 "
                            "(m-r2) on the common prompts: no gap")


def test_spec_of_an_unverified_method_and_no_spec(chain: Projections) -> None:
    rows = report(chain, spec=parse("mc:quantile=0.8")).rows
    assert all(r.gap is None for r in rows)
    assert rows[0].note is not None and "has no mc verifications of round 0" in rows[0].note
    rows = report(chain, spec=None).rows
    assert all(r.gap is None and r.note == "no filter spec: no gap" for r in rows)
    assert report(chain, spec=None).spec is None


def test_pass_at_k(chain: Projections) -> None:
    rows = report(chain).rows
    # per prompt (n = 4): c = 1 -> pass@1 1/4, pass@2 1 - C(3,2)/C(4,2) = 1/2, pass@4 1;
    # c = 2 -> 1/2, 1 - 1/6 = 5/6, 1; c = 0 -> 0, 0, 0; c = 4 -> 1, 1, 1.
    # round 0: c = (1, 0); round 1: (2, 1); round 2: (4, 2)
    assert rows[0].pass_at_k == pytest.approx({1: 0.125, 2: 0.25, 4: 0.5})
    assert rows[1].pass_at_k == pytest.approx({1: 0.375, 2: 2 / 3, 4: 1.0})
    assert rows[2].pass_at_k == pytest.approx({1: 0.75, 2: 11 / 12, 4: 1.0})
    # k = 8 > n = 4: every prompt is left out (as in passk.py) and pass@8 is None
    row = report(chain, ks=(1, 2, 4, 8)).rows[0]
    assert row.pass_at_k[8] is None and row.pass_at_k_excluded == {1: 0, 2: 0, 4: 0, 8: 2}


def test_flexible_utility(chain: Projections) -> None:
    r0 = report(chain, utility="flexible").rows[0]
    # flexible p1 [1,1,0,0] keeps samples 0, 2 (u 1, 0): acc_w 1/2 = acc; p2 empty: gap 0
    assert r0.gap == pytest.approx(0.0)
    # pass@1 under flexible: c = (2, 1) -> (1/2 + 1/4) / 2, the flexible accuracy
    assert r0.pass_at_k[1] == pytest.approx(0.375)
    assert r0.acc_strict == pytest.approx(0.125)  # strict and flexible stay apart


def test_answer_diversity(chain: Projections) -> None:
    rows = report(chain).rows
    # round 0: p1 answers 4, 4, 5 (one none): 2 distinct, exp(H) = 1.8899;
    #          p2 answers 7, 8, 9, 10: 4 distinct, exp(H) = 4. One sample of 8 has no answer.
    assert rows[0].distinct_answers == pytest.approx(3.0)
    assert rows[0].effective_answers == pytest.approx((EFF_2_1 + 4) / 2)
    assert rows[0].no_answer_rate == pytest.approx(1 / 8)
    # round 1: p1 answers 4, 4, 4, '5' (stripped): 2 distinct, exp(H) = 1.7548;
    #          p2 answers 12, 12 ('' and None are no answer): 1 distinct, exp(H) = 1.
    assert rows[1].distinct_answers == pytest.approx(1.5)
    assert rows[1].effective_answers == pytest.approx((EFF_3_1 + 1) / 2)
    assert rows[1].no_answer_rate == pytest.approx(2 / 8)
    # round 2: one answer per prompt
    assert (rows[2].distinct_answers, rows[2].effective_answers, rows[2].no_answer_rate) == (
        1.0, 1.0, 0.0)


def test_prompt_with_no_answer_counts_zero(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s", TASK)
    gens(b, "p1", "m", 0, [(0, 0, None), (0, 0, " ")])
    gens(b, "p2", "m", 0, [(1, 1, "4"), (1, 1, "5")])
    row = round_report(b.projections(), TASK, [RoundRef(0, "m", None)], spec=None).rows[0]
    # p1: no answer: distinct 0, effective 0; p2: 2 distinct, exp(ln 2) = 2
    assert (row.distinct_answers, row.effective_answers) == pytest.approx((1.0, 1.0))
    assert row.no_answer_rate == pytest.approx(0.5)


def test_trend_and_verdict(chain: Projections) -> None:
    rep = report(chain)
    t = rep.trend
    assert list(t) == ["acc_strict", "acc_flexible", "gap", "pass@1", "pass@4",
                       "effective_answers"]
    assert t["acc_strict"] == pytest.approx(0.625)  # 0.75 - 0.125
    assert t["acc_flexible"] == pytest.approx(0.5)  # 0.875 - 0.375
    assert t["gap"] is None  # the last round has no gap
    assert t["pass@1"] == pytest.approx(0.625)
    assert t["pass@4"] == pytest.approx(0.5)
    assert t["effective_answers"] == pytest.approx(1 - (EFF_2_1 + 4) / 2)  # -1.9449
    assert rep.diversity == "decreasing"
    # with ks up to 8, pass@8 is None everywhere: the largest k both ends have is 4
    assert "pass@4" in report(chain, ks=(1, 2, 4, 8)).trend
    # rounds 0 -> 1 under judge: a gap trend 0.25 - 0
    assert report(chain, chain=infer_chain(chain, TASK, "judge")[:2]).trend["gap"] == (
        pytest.approx(0.25))
    one = report(chain, chain=SELF_CHAIN[:1])
    assert one.trend["acc_strict"] == 0.0 and one.diversity == "flat"


@pytest.mark.parametrize(("change", "want"), [
    (-0.06, "decreasing"), (-0.05, "flat"), (0.0, "flat"), (0.05, "flat"), (0.051, "increasing"),
])
def test_diversity_threshold(change: float, want: str) -> None:
    assert diversity_verdict(change) == want


def test_items_and_split(chain: Projections) -> None:
    rows = report(chain, items={"p1"}).rows
    assert [(r.prompts, r.prompts_before, r.dropped) for r in rows] == [(1, 1, 0)] * 3
    assert [r.acc_strict for r in rows] == pytest.approx([0.25, 0.5, 1.0])
    assert report(chain, split="test").rows[0].prompts == 2
    with pytest.raises(GvstoreError, match=r"^no generations of task 'arith' by 'm-r0' in "
                       r"round 0 among the prompts of split 'train'$"):
        report(chain, split="train")


def test_missing_round_and_empty_chain(chain: Projections) -> None:
    with pytest.raises(GvstoreError) as exc:
        report(chain, chain=[*SELF_CHAIN, RoundRef(3, "m-r3", None)])
    assert str(exc.value) == "no generations of task 'arith' by 'm-r3' in round 3"
    with pytest.raises(GvstoreError, match="by 'm-r0' in round 1$"):
        report(chain, chain=[RoundRef(1, "m-r0", None)])
    with pytest.raises(GvstoreError, match="the chain is empty"):
        report(chain, chain=[])


def test_no_common_prompt_and_ungraded_round(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s", TASK)
    gens(b, "p1", "a", 0, [(1, 1, "4")] * 4)
    gens(b, "p2", "b", 1, [(1, 1, "4")] * 4)
    gens(b, "p1", "c", 2, [None] * 4)
    proj = b.projections()
    with pytest.raises(GvstoreError) as exc:
        round_report(proj, TASK, [RoundRef(0, "a", None), RoundRef(1, "b", None)], spec=None)
    assert str(exc.value) == ("no prompt of task 'arith' has graded generations in every round "
                              "of the chain (prompts per round: round 0 (a): 1, round 1 (b): 1)")
    with pytest.raises(GvstoreError, match="no graded generations of task 'arith' by 'c' in "
                       "round 2: grade them first"):
        round_report(proj, TASK, [RoundRef(2, "c", None)], spec=None)


def test_two_graders_need_a_grader(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s", TASK)
    g = gens(b, "p1", "m", 0, [(1, 1, "4"), (0, 0, "5")])
    for gen in g:
        b.grade(gen, 1.0, 1.0, "4", grader="other")
    proj = b.projections()
    ref = [RoundRef(0, "m", None)]
    with pytest.raises(GvstoreError, match="several graders"):
        round_report(proj, TASK, ref, spec=None)
    assert round_report(proj, TASK, ref, spec=None, grader="other").rows[0].acc_strict == 1.0
    assert round_report(proj, TASK, ref, spec=None, grader=TASK).rows[0].acc_strict == 0.5


def test_bad_arguments(chain: Projections) -> None:
    with pytest.raises(GvstoreError, match="unknown utility"):
        report(chain, utility="loose")
    with pytest.raises(GvstoreError, match="k must be >= 1"):
        report(chain, ks=(0, 1))


def test_to_dict_is_json_ready(chain: Projections) -> None:
    d = report(chain, resamples=0).to_dict()
    json.dumps(d, allow_nan=False)
    row = d["rows"][0]
    assert row["effective_answers"] == 2.944941  # (1.8899 + 4) / 2, rounded to 6 places
    assert row["pass_at_k"] == {"1": 0.125, "2": 0.25, "4": 0.5}
    assert row["gap"] == 0.125 and row["rel_gap"] == 0.166667
    # no bootstrap: the intervals are NaN, written as None, and there is no verdict
    assert row["gap_lo"] is None and row["verdict"] is None
    assert d["spec"] == "cot_binary:tau=1" and d["ks"] == [1, 2, 4]
    assert d["diversity"] == "decreasing" and d["trend"]["gap"] is None


def test_write_series_and_figure(chain: Projections, tmp_path: Path) -> None:
    rep = report(chain, resamples=200)
    paths = write_series(rep, tmp_path / "out")
    assert [p.name for p in paths] == ["rounds.csv", "rounds-passk.csv"]
    lines = paths[0].read_text().splitlines()
    assert lines[0] == (
        "round,model,verifier,prompts,acc_strict,acc_flexible,format_gap,gap,gap_lo,gap_hi,"
        "rel_gap,rel_gap_lo,rel_gap_hi,effective_answers,distinct_answers,no_answer_rate,"
        "pass@1,pass@2,pass@4")
    assert len(lines) == 4
    assert lines[1].startswith("0,m-r0,m-r0,2,0.125,0.375,0.25,0.125,")
    assert lines[3].startswith("2,m-r2,,2,0.75,0.875,0.125,,,,,,,1.0,1.0,0.0,")
    passk = paths[1].read_text().splitlines()
    assert passk[0] == "round,model,k,pass_at_k" and len(passk) == 1 + 3 * 3
    assert passk[1] == "0,m-r0,1,0.125"
    png = rounds_figure(rep, tmp_path / "out" / "rounds.png")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert not list((tmp_path / "out").glob(".*.part"))
    assert math.isclose(rep.rows[0].acc_strict, 0.125)


def test_without_heldout_prompts_the_report_is_as_before(chain: Projections,
                                                          tmp_path: Path) -> None:
    from rich.table import Table

    from gvstore.report import rounds_views

    rep = report(chain, resamples=0)
    assert rep.heldout is None
    d = rep.to_dict()
    assert list(d) == ["task", "utility", "spec", "ks", "prompts", "resamples", "seed", "rows",
                       "trend", "diversity"]
    table, *lines = rounds_views(d)
    assert isinstance(table, Table)
    assert [str(c.header) for c in table.columns] == [
        "round", "model", "verifier", "prompts", "samples", "acc strict", "acc flexible",
        "gap [95% CI]", "rel gap", "pass@1", "pass@2", "pass@4", "eff. answers", "distinct"]
    title = str(table.title)
    assert title.startswith("rounds on arith: filter cot_binary:tau=1, gap and pass@k on the "
                            "strict utility") and "held-out" not in title
    assert str(lines[0]).startswith("first to last round: acc_strict 0.6250, ")
    assert lines[1:] == ["round 2: no verifier for this round: no gap"]
    assert [p.name for p in write_series(rep, tmp_path)] == ["rounds.csv", "rounds-passk.csv"]


def test_the_rounds_table_says_each_gap_verdict(chain: Projections) -> None:
    from gvstore.report import rounds_views

    table, *_ = rounds_views(report(chain).to_dict())
    gaps = list(table.columns[7].cells)
    # round 0: [0, 0.25] on 2 prompts is inconclusive, decided at ~8 prompts (by hand in
    # test above); round 2 has no verifier, so no gap and no verdict
    assert str(gaps[0]).endswith("\ninconclusive (~8 to decide)")
    assert "\n" not in str(gaps[2])


def test_passk_columns_go_by_k_as_a_number_after_a_json_round_trip() -> None:
    """metrics.json sorts its keys as text (pass@16 before pass@2); the report's pass@k table
    lists them by k."""
    import json

    from gvstore.report import _passk_rows

    ks = {"pass@1": 0.2, "pass@2": 0.3, "pass@4": 0.4, "pass@8": 0.45, "pass@16": 0.5}
    back = json.loads(json.dumps({"arith": {"m": {"round0": ks}}}, sort_keys=True))
    assert list(back["arith"]["m"]["round0"])[:2] == ["pass@1", "pass@16"]
    (row,) = _passk_rows(back)
    assert [c.split("=")[0] for c in row[3:]] == ["pass@1", "pass@2", "pass@4", "pass@8",
                                                   "pass@16"]
