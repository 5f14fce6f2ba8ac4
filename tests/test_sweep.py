"""Sweeps equal one gap per value; honest (held-out) threshold choice; cross matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder

from gvstore.analysis.cross import cross_matrices
from gvstore.analysis.frames import Dataset
from gvstore.analysis.gap import gap_table
from gvstore.analysis.plots import cross_figure, sweep_figure
from gvstore.analysis.specs import parse, parse_template
from gvstore.analysis.sweep import select, sweep
from gvstore.errors import GvstoreError
from gvstore.replay import Projections


@pytest.fixture
def store(tmp_path: Path) -> Projections:
    b = StoreBuilder(tmp_path / "s")
    for i in range(12):
        p = b.prompt(f"p{i}")
        utils = [1 if (i + j) % 3 == 0 else 0 for j in range(4)]
        g = b.gens(p, utils)
        b.scores(g, "mc", [0.2 + 0.6 * u + 0.01 * j for j, u in enumerate(utils)])
        b.scores(g, "cot_score", [float(1 + (i * 7 + j * 3) % 10) for j in range(4)])
        h = b.gens(p, utils, model="g2")
        b.scores(h, "mc", [0.5] * 4, verifier="w")
        b.match(p, g[0], g[1], g[0] if utils[0] >= utils[1] else g[1], 0)
        b.match(p, g[2], g[3], g[2] if utils[2] >= utils[3] else g[3], 0)
    return b.projections()


@pytest.mark.parametrize("template, values", [
    ("mc:quantile", [0.0, 0.3, 0.5, 0.8, 1.0]),
    ("cot_score:tau", [1.0, 4.0, 8.0, 11.0]),
    ("mean(mc,cot_score):quantile", [0.25, 0.75]),
    ("mc:exp", [0.1, 1.0]),
])
def test_sweep_equals_one_gap_per_value(store: Projections, template: str,
                                        values: list[float]) -> None:
    tmpl = parse_template(template)
    res = sweep(Dataset(store), tmpl, values, resamples=100, seed=1)
    assert res and all(r.verifier == "v" for r in res[:1])
    r = res[0]
    assert [p.value for p in r.points] == values
    for pt in r.points:
        single = gap_table(Dataset(store), [parse(pt.spec)], resamples=100, seed=1)[0]
        assert pt.gap == pytest.approx(single.gap, abs=1e-12)
        assert pt.rel_gap == pytest.approx(single.rel_gap, abs=1e-12)
        assert pt.kept == single.kept and pt.empty_prompts == single.empty_prompts
        assert (pt.gap_lo, pt.gap_hi) == (pytest.approx(single.gap_lo),
                                          pytest.approx(single.gap_hi))


def test_default_values(store: Projections) -> None:
    r = sweep(Dataset(store), parse_template("mc:quantile"), resamples=0)[0]
    assert len(r.points) == 101 and r.points[0].value == 0.0 and r.points[-1].value == 1.0
    r = sweep(Dataset(store), parse_template("cot_score:tau"), resamples=0)[0]
    assert [p.value for p in r.points] == sorted({p.value for p in r.points})
    t = sweep(Dataset(store), parse_template("tournament:rounds"), resamples=0)
    assert [p.value for p in t[0].points] == [0.0, 1.0]
    assert t[0].points[0].gap == 0.0 and t[0].points[1].kept == 24


def test_select_on_is_honest_and_seeded(store: Projections) -> None:
    tmpl = parse_template("mc:quantile")
    r = sweep(Dataset(store), tmpl, [0.0, 0.5, 1.0], resamples=50)[0]
    a = select(r, tmpl, metric="gap", fraction=0.5, seed=2, resamples=50)
    b = select(r, tmpl, metric="gap", fraction=0.5, seed=2, resamples=50)
    assert a == b
    assert a.select_prompts == 6 and a.eval_prompts == 6
    assert a.held_out_value in (0.0, 0.5, 1.0)
    best = max(r.points, key=lambda p: p.gap)
    assert a.in_sample_value == best.value and a.in_sample_gap == best.gap
    # By hand: mc scores are 0.2 + 0.6 u + 0.01 j, so quantile 0 keeps all 4 samples (gap 0),
    # 0.5 the top two and 1 the top one. Prompts p0, p3, p6, p9 have 2 correct of 4 (the top
    # two scores): gaps 0.5 and 0.5; the others 1 of 4 (the top score): 0.25 and 0.75.
    hand = {0.0: (0.0, 0.0), 0.5: (0.5, 0.25), 1.0: (0.5, 0.75)}
    assert best.value == 1.0 and best.gap == pytest.approx((4 * 0.5 + 8 * 0.75) / 12)
    # the held-out gap is the mean over the evaluation prompts only: the split is the seeded
    # permutation of the group's prompts (in prompt-handle order)
    group = next(g for g in Dataset(store).groups(("mc",)) if g.verifier == "v")
    item = dict(zip(store.prompts["prompt"].to_list(), store.prompts["item_id"].to_list(),
                    strict=True))
    two_correct = [int(item[h][1:]) % 3 == 0 for h in group.prompts.tolist()]
    perm = np.random.default_rng(2).permutation(12)

    def mean_gap(rows: np.ndarray, value: float) -> float:
        return sum(hand[value][0 if two_correct[p] else 1] for p in rows) / len(rows)

    chosen = max(hand, key=lambda v: mean_gap(perm[:6], v))  # the first best on ties
    assert a.held_out_value == chosen
    assert a.held_out_gap == pytest.approx(mean_gap(perm[6:], chosen), abs=1e-12)
    assert r.diff is not None
    with pytest.raises(GvstoreError):
        select(r, tmpl, metric="accuracy")
    with pytest.raises(GvstoreError):
        select(r, tmpl, fraction=1.0)


def test_cross_matrix_and_plots(store: Projections, tmp_path: Path) -> None:
    mats = cross_matrices(Dataset(store), parse("mc:tau=0.5"), resamples=50)
    assert len(mats) == 1
    m = mats[0]
    assert m.generators == ["g", "g2"] and m.verifiers == ["v", "w"]
    assert m.value("g2", "v") is None  # never verified: missing, not zero
    assert m.value("g2", "w") == 0.0  # a flat verifier (all 0.5 >= 0.5) keeps everything
    assert m.value("g", "v") == pytest.approx(
        gap_table(Dataset(store), [parse("mc:tau=0.5")], resamples=0)[0].gap)
    png = cross_figure(mats, tmp_path / "cross.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = sweep(Dataset(store), parse_template("mc:quantile"), [0.0, 0.5], resamples=20)
    png = sweep_figure(res, tmp_path / "sub" / "sweep.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.rglob("*.part"))
