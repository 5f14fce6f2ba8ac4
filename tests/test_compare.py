"""Paired comparison (``gvstore compare``) against numbers worked out by hand.

The store of ``test_transfer`` (see its doc): side A generator g1, side B generator g2 (or round
1 of g1, or a second store). At ``cot_score:tau=9``, per prompt (acc, acc_w):
  A: p1 (.25, 1), p2 (.5, 0), p3 (1, 1: one sample, null score, empty), p4 (0, 0);
     p6 ungraded (no prompt of A).
  B: p1 (.25, 0), p2 (.25, 1), p3 (.75, 1), p4 (1, 1), p5 (.5, 1) (B only).
Shared prompts p1..p4 (p5 left out: only_b = 1): gap A = (.75 - .5 + 0 + 0)/4 = .0625,
gap B = (-.25 + .75 + .25 + 0)/4 = .1875, A - B = -.125; reweighted A .5, B .75, A - B = -.25.
At tau=5 the gaps are A .0625, B (.25 + .25 - .25 + 0)/4 = .0625 on p1..p4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder
from test_transfer import A_DATA, B_DATA, add, build, in_order
from typer.testing import CliRunner

from gvstore.analysis.compare import (
    A_BETTER,
    B_BETTER,
    NO_DIFFERENCE,
    compare,
    difference_verdict,
)
from gvstore.analysis.frames import Dataset
from gvstore.analysis.gap import Bootstrap, gap_table
from gvstore.analysis.specs import parse
from gvstore.analysis.transfer import parse_where
from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.replay import Projections

TAU9 = parse("cot_score:tau=9")
TAU5 = parse("cot_score:tau=5")
G1, G2 = [parse_where("generator=g1")], [parse_where("generator=g2")]
SHARED = ["p1", "p2", "p3", "p4"]
DIFF9 = [0.75 - -0.25, -0.5 - 0.75, 0.0 - 0.25, 0.0]  # per shared prompt, A - B at tau=9


@pytest.fixture
def proj(tmp_path: Path) -> Projections:
    return build(tmp_path / "s")


def test_generators_by_hand(proj: Projections) -> None:
    rep = compare(Dataset(proj), TAU9, a=G1, b=G2, resamples=200)
    assert rep.unpaired_a == [] and rep.unpaired_b == []
    (r,) = rep.rows
    assert (r.a, r.b, r.spec_a, r.spec_b) == ("t/g1/0/v", "t/g2/0/v", str(TAU9), str(TAU9))
    assert (r.generator, r.round, r.verifier, r.b_differs) == ("g1", 0, "v", "generator=g2")
    assert (r.shared_prompts, r.only_a, r.only_b) == (4, 0, 1)
    assert r.gap_a == pytest.approx(0.0625) and r.gap_b == pytest.approx(0.1875)
    assert r.diff == pytest.approx(-0.125) == r.gap_a - r.gap_b
    assert np.mean(DIFF9) == pytest.approx(r.diff)
    assert (r.base_a, r.base_b) == pytest.approx((1.75 / 4, 2.25 / 4))
    assert (r.reweighted_a, r.reweighted_b) == pytest.approx((0.5, 0.75))
    assert r.reweighted_diff == pytest.approx(-0.25)
    # the paired interval: one draw matrix over the 4 shared prompts, in handle order
    lo, hi = Bootstrap(4, 200, 0).interval(in_order(DIFF9, SHARED))
    assert (r.diff_lo, r.diff_hi) == pytest.approx((lo[0], hi[0]))
    assert r.verdict == "inconclusive" and r.prompts_to_decide is not None
    # each side's gap on all its prompts (gap_table) differs from the shared-prompt figure
    full = {g.generator: g.gap for g in gap_table(Dataset(proj), [TAU9], resamples=0)}
    assert full == pytest.approx({"g1": 0.0625, "g2": 1.25 / 5})


def test_two_specs_same_groups(proj: Projections) -> None:
    """Same groups, so the same prompts and base: the gap difference is the reweighted one."""
    rep = compare(Dataset(proj), TAU5, TAU9, resamples=100)
    rows = {r.a: r for r in rep.rows}
    assert [r.a == r.b for r in rep.rows] == [True, True]
    a, b = rows["t/g1/0/v"], rows["t/g2/0/v"]
    assert (a.shared_prompts, a.only_a, a.only_b, b.shared_prompts) == (4, 0, 0, 5)
    assert a.diff == pytest.approx(0.0) and b.diff == pytest.approx((0.75 - 1.25) / 5)
    for r in rep.rows:
        assert r.diff == pytest.approx(r.reweighted_diff) and r.base_a == r.base_b


def test_identical_sides(proj: Projections) -> None:
    rep = compare(Dataset(proj), TAU9, TAU9, resamples=100)
    for r in rep.rows:
        assert r.diff == 0 and (r.diff_lo, r.diff_hi) == (0, 0) and r.verdict == NO_DIFFERENCE
        assert r.prompts_to_decide is None


def test_rounds_and_stores(tmp_path: Path) -> None:
    """Round 0 against round 1, and one store against another, give the same figures."""
    rounds = compare(Dataset(build(tmp_path / "r", "round")), TAU9,
                     a=[parse_where("round=0")], b=[parse_where("round=1")], resamples=0)
    sa, sb = StoreBuilder(tmp_path / "a"), StoreBuilder(tmp_path / "b")
    add(sa, A_DATA, model="g")
    add(sb, B_DATA, model="g")
    stores = compare(Dataset(sa.projections()), TAU9, ds_b=Dataset(sb.projections()),
                     resamples=0)
    for rep in (rounds, stores):
        (r,) = rep.rows
        assert (r.shared_prompts, r.only_b, r.diff) == (4, 1, pytest.approx(-0.125))
        assert r.verdict == "unknown"
    assert (stores.rows[0].a, stores.rows[0].b) == ("t/g/0/v", "t/g/0/v")
    assert (rounds.rows[0].b_differs, stores.rows[0].b_differs) == ("round=1", "")


def test_unpaired_and_errors(proj: Projections) -> None:
    ds = Dataset(proj)
    rep = compare(ds, TAU9, a=G1, b=[parse_where("generator=g2,verifier=w")], resamples=0)
    assert rep.rows == [] and rep.unpaired_a == ["t/g1/0/v"] and rep.unpaired_b == []
    with pytest.raises(GvstoreError):
        compare(ds, TAU9, a=G1)


def test_verdict_words() -> None:
    assert difference_verdict(0.01, 0.02) == A_BETTER
    assert difference_verdict(-0.02, -0.01) == B_BETTER
    assert difference_verdict(-0.004, 0.004) == NO_DIFFERENCE
    assert difference_verdict(-0.1, 0.2) == "inconclusive"
    assert difference_verdict(float("nan"), float("nan")) == "unknown"


def test_cli(proj: Projections, tmp_path: Path) -> None:
    root = str(proj.store.root)
    png = tmp_path / "c.png"
    res = CliRunner().invoke(app, ["compare", "cot_score:tau=9", "--a", "generator=g1",
                                   "--b", "generator=g2", "--json", "--resamples", "50",
                                   "--plot", str(png), "--store", root])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)["rows"]
    assert row["diff"] == pytest.approx(-0.125) and row["only_b"] == 1
    assert png.stat().st_size > 0
    other = StoreBuilder(tmp_path / "b")
    add(other, B_DATA, model="g1")
    other.write()
    res = CliRunner().invoke(app, ["compare", "cot_score:tau=9", "--store-b",
                                   str(tmp_path / "b"), "--resamples", "50", "-g", "g1",
                                   "--store", root])
    assert res.exit_code == 0, res.output
    assert "-0.1250" in res.output and "verdict" in res.output
    res = CliRunner().invoke(app, ["compare", "cot_score:tau=9", "cot_score:tau=9",
                                   "--store", root])
    assert res.exit_code == 0 and "no difference" in res.output, res.output
    for bad in (["--a", "generator=g1"], ["--a", "x=1", "--b", "generator=g2"],
                ["--a", "generator=g1", "--b", "generator=zz"]):
        res = CliRunner().invoke(app, ["compare", "cot_score:tau=9", *bad, "--store", root])
        assert res.exit_code == 1, res.output


def test_two_verifiers(tmp_path: Path) -> None:
    """g1's samples scored by v (A_DATA's scores) and by w (reversed): at tau=9 w keeps
    p1's and p2's last sample (both wrong: -.25, -.5) and p4's wrong one (0); p3 null: 0.
    gap v = .0625, gap w = -.75 / 4, A - B = .25 on the 4 prompts."""
    b = StoreBuilder(tmp_path / "s")
    rev = {"p1": [1, 1, 5, 9], "p2": [1, 1, 5, 9], "p3": [None], "p4": [1, 9], "p6": [1, 9]}
    for name, grades, scores in A_DATA:
        gens = b.gens(b.prompt(name), grades, model="g1")
        b.scores(gens, "cot_score", scores, verifier="v")
        b.scores(gens, "cot_score", rev[name], verifier="w")
    rep = compare(Dataset(b.projections()), TAU9, a=[parse_where("verifier=v")],
                  b=[parse_where("verifier=w")], resamples=100)
    (r,) = rep.rows
    assert (r.verifier, r.b_differs, r.shared_prompts) == ("v", "verifier=w", 4)
    assert (r.gap_a, r.gap_b, r.diff) == pytest.approx((0.0625, -0.1875, 0.25))
    assert r.base_a == r.base_b and r.diff == pytest.approx(r.reweighted_diff)
