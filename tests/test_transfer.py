"""Threshold transfer (``gvstore transfer``) against numbers worked out by hand.

Two generators (or two rounds of one) answer the same prompts; ``cot_score`` scores 9, 5, 1, 1
on the 4-sample prompts, so ``tau`` = 1, 5, 9 keeps 4, 2, 1 samples and every per-prompt gap
is a multiple of 1/4 (exact in floating point, so ties are exact ties).

Side A (``A_DATA``), per-prompt gap at tau = 1 / 5 / 9:
  p1 u=1000: 0 / .25 / .75;  p2 u=0110: 0 / 0 / -.5;  p3 one sample, null score: 0 / 0 / 0;
  p4 all wrong: 0;  p6 ungraded (not a prompt of the gap).
  mean over 4 prompts: 0 / .0625 / .0625: a tie of 5 and 9, the smallest (5) is chosen.
Side B (``B_DATA``):
  p1 u=0100: 0 / .25 / -.25;  p2 u=1000: 0 / .25 / .75;  p3 u=1011: 0 / -.25 / .25;
  p4 all right, one null: 0;  p5 (B only) u=10: 0 / .5 / .5.
  mean over 5 prompts: 0 / .15 / .25: 9 is B's own best.
A -> B: chosen tau=5, transferred .15, own best .25, loss .1 (per prompt -.5, .5, .5, 0, 0).
B -> A: chosen tau=9, transferred .0625 = A's own best (tau=5, tied): loss 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.analysis.frames import Dataset
from gvstore.analysis.gap import Bootstrap
from gvstore.analysis.specs import parse_template
from gvstore.analysis.sweep import select, sweep
from gvstore.analysis.transfer import (
    LOSES,
    TRANSFERS,
    choose,
    parse_where,
    transfer,
    transfer_grid,
    transfer_matrix,
)
from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.records import Prompt, seal
from gvstore.replay import Projections, handle

S4 = [9, 5, 1, 1]
A_DATA = [("p1", [1, 0, 0, 0], S4), ("p2", [0, 1, 1, 0], S4), ("p3", [1], [None]),
          ("p4", [0, 0], [9, 1]), ("p6", 2, [9, 1])]
B_DATA = [("p1", [0, 1, 0, 0], S4), ("p2", [1, 0, 0, 0], S4), ("p3", [1, 0, 1, 1], S4),
          ("p4", [1, 1], [9, None]), ("p5", [1, 0], [9, 1])]
TMPL = parse_template("cot_score:tau")
VALUES = [1.0, 5.0, 9.0]
B_LOSS = [-0.5, 0.5, 0.5, 0.0, 0.0]


def add(b: StoreBuilder, data: list, *, model: str, rnd: int = 0, verifier: str = "v") -> None:
    """One side's prompts: (name, grades or an ungraded count, cot_score scores)."""
    for name, grades, scores in data:
        gens = b.gens(b.prompt(name), grades, model=model, rnd=rnd)
        b.scores(gens, "cot_score", scores, verifier=verifier)


def in_order(values: list[float], names: list[str]) -> np.ndarray:
    """Per-prompt values (given in ``names`` order) in a group's order (by prompt handle), as
    a column."""
    hs = [handle(seal(Prompt(task="t", split="test", item_id=n, text=f"question {n}",
                              reference="1")).id) for n in names]
    return np.array([v for _, v in sorted(zip(hs, values, strict=True))])[:, None]


def build(root: Path, how: str = "generator") -> Projections:
    """A as generator g1 round 0; B as generator g2 (``how="generator"``) or round 1 of g1."""
    b = StoreBuilder(root)
    add(b, A_DATA, model="g1")
    add(b, B_DATA, model="g2" if how == "generator" else "g1", rnd=0 if how == "generator" else 1)
    return b.projections()


@pytest.fixture
def proj(tmp_path: Path) -> Projections:
    return build(tmp_path / "s")


def test_parse_where() -> None:
    w = parse_where("generator=A, round=01")
    assert w.terms == (("generator", "A"), ("round", "1")) and str(w) == "generator=A,round=1"
    assert w.matches(("t", "A", 1, "v")) and not w.matches(("t", "A", 0, "v"))
    for bad in ("model=A", "generator", "generator=", "round=x"):
        with pytest.raises(GvstoreError):
            parse_where(bad)


def test_a_to_b_by_hand(proj: Projections) -> None:
    (r,) = transfer(Dataset(proj), TMPL, [parse_where("generator=g1")],
                    [parse_where("generator=g2")], values=VALUES, resamples=200)
    assert (r.generator, r.sources, r.chosen_on) == ("g2", ["t/g1/0/v"], "generator=g1")
    assert r.source_prompts == 4 and r.prompts == 5
    assert r.chosen_value == 5 and r.chosen_spec == "cot_score:tau=5"  # tie 5/9: the smallest
    assert r.source_best == pytest.approx(0.0625)
    assert r.transferred == pytest.approx(0.15)
    assert (r.own_value, r.own_spec) == (9, "cot_score:tau=9")
    assert r.own_best == pytest.approx(0.25)
    assert r.loss == pytest.approx(0.1)
    # the loss interval is the bootstrap of the per-prompt losses over B's 5 prompts (in the
    # group's prompt order: by prompt handle)
    lo, hi = Bootstrap(5, 200, 0).interval(in_order(B_LOSS, ["p1", "p2", "p3", "p4", "p5"]))
    assert (r.loss_lo, r.loss_hi) == pytest.approx((lo[0], hi[0]))
    assert r.loss_lo <= r.loss <= r.loss_hi
    assert r.verdict in (LOSES, "inconclusive")


def test_b_to_a_tied_own_best(proj: Projections) -> None:
    """B's choice (9) is one of A's two tied best values: loss 0, though A's own is 5."""
    (r,) = transfer(Dataset(proj), TMPL, [parse_where("generator=g2")], values=VALUES,
                    resamples=0)
    assert r.generator == "g1" and r.chosen_value == 9 and r.own_value == 5
    assert r.transferred == pytest.approx(0.0625) and r.own_best == pytest.approx(0.0625)
    assert r.loss == pytest.approx(0.0)
    assert r.verdict == "unknown" and np.isnan(r.loss_lo)  # no bootstrap


def test_choice_is_sweeps_rule(proj: Projections) -> None:
    """The in-sample choice of ``sweep.select`` (ties included) is ``choose``'s."""
    ds = Dataset(proj)
    for res in sweep(ds, TMPL, VALUES, resamples=0):
        assert res.diff is not None
        sel = select(res, TMPL, fraction=0.5, resamples=0)
        assert sel.in_sample_value == VALUES[choose(res.diff.mean(axis=0), VALUES)]
    assert choose(np.array([0.1, 0.3, 0.3]), [1, 2, 3]) == 1
    assert choose(np.array([0.1, 0.3, 0.3]), [3, 2, 1]) == 2  # the smallest tied value
    # the tie holds in the other order of the values too: A's tie of 5 and 9 gives 5
    (r,) = transfer(ds, TMPL, [parse_where("generator=g1")], [parse_where("generator=g2")],
                    values=[9.0, 5.0, 1.0], resamples=0)
    assert (r.chosen_value, r.own_value, r.loss) == (5, 9, pytest.approx(0.1))
    with pytest.raises(GvstoreError):
        choose(np.array([]), [])


def test_same_group_transfers(proj: Projections) -> None:
    (r,) = transfer(Dataset(proj), TMPL, [parse_where("generator=g2")],
                    [parse_where("generator=g2")], values=VALUES, resamples=100)
    assert r.loss == 0 and (r.loss_lo, r.loss_hi) == (0, 0) and r.verdict == TRANSFERS


def test_pooled_sources(proj: Projections) -> None:
    """Both generators as sources: 9 prompts, tau=5 sums .25 + .75, tau=9 .25 + 1.25."""
    (r,) = transfer(Dataset(proj), TMPL, [parse_where("generator=g1"),
                                          parse_where("generator=g2")],
                    [parse_where("generator=g1")], values=VALUES, resamples=0)
    assert r.sources == ["t/g1/0/v", "t/g2/0/v"] and r.source_prompts == 9
    assert r.chosen_on == "itself; generator=g2"  # a target meeting --from is its own source
    assert r.chosen_value == 9 and r.source_best == pytest.approx(1.5 / 9)
    assert r.loss == pytest.approx(0.0)


def test_rounds(tmp_path: Path) -> None:
    (r,) = transfer(Dataset(build(tmp_path / "s", "round")), TMPL, [parse_where("round=0")],
                    [parse_where("round=1")], values=VALUES, resamples=0)
    assert (r.generator, r.round, r.chosen_value, r.own_value) == ("g1", 1, 5, 9)
    assert r.loss == pytest.approx(0.1)


def test_matrix(proj: Projections) -> None:
    (m,) = transfer_matrix(Dataset(proj), TMPL, "generator", values=VALUES, resamples=100)
    assert m.labels == ["g1", "g2"] and m.fixed == {"task": "t", "round": "0", "verifier": "v"}
    loss = {(s, t): m.cell(s, t).loss for s in m.labels for t in m.labels}  # type: ignore
    assert loss == pytest.approx({("g1", "g1"): 0, ("g1", "g2"): 0.1, ("g2", "g1"): 0,
                                  ("g2", "g2"): 0})
    assert m.cell("g1", "g1").verdict == TRANSFERS  # type: ignore[union-attr]
    with pytest.raises(GvstoreError):
        transfer_matrix(Dataset(proj), TMPL, "model")


def test_default_grid_and_unmatched(proj: Projections) -> None:
    ds = Dataset(proj)
    groups = ds.groups(["cot_score"])
    assert transfer_grid(TMPL, groups) == [1.0, 5.0, 9.0]  # the union of the observed scores
    (r,) = transfer(ds, TMPL, [parse_where("generator=g1")], resamples=0)
    assert r.chosen_value == 5 and r.loss == pytest.approx(0.1)
    # a target verified by another verifier than the source has no source
    assert transfer(ds, TMPL, [parse_where("generator=g1,verifier=w")], resamples=0) == []
    with pytest.raises(GvstoreError):
        transfer(ds, TMPL, [])
    with pytest.raises(GvstoreError):
        transfer(ds, TMPL, [parse_where("generator=g1")], metric="kept")


def test_cli(proj: Projections, tmp_path: Path) -> None:
    root = str(proj.store.root)
    png = tmp_path / "t.png"
    res = CliRunner().invoke(app, ["transfer", "cot_score:tau", "--from", "generator=g1",
                                   "--to", "generator=g2", "--values", "1,5,9", "--json",
                                   "--resamples", "50", "--plot", str(png), "--store", root])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)["results"]
    assert row["loss"] == pytest.approx(0.1) and row["chosen_spec"] == "cot_score:tau=5"
    assert png.stat().st_size > 0
    res = CliRunner().invoke(app, ["transfer", "cot_score:tau", "--matrix", "generator",
                                   "--resamples", "50", "--plot", str(png), "--store", root])
    assert res.exit_code == 0, res.output
    assert "source \\ target generator" in res.output and "0.1000" in res.output
    res = CliRunner().invoke(app, ["transfer", "cot_score:tau", "--from", "generator=g1",
                                   "--resamples", "0", "--store", root])
    assert res.exit_code == 0 and "does not transfer" not in res.output, res.output
    for bad in (["--matrix", "generator", "--from", "generator=g1"], [],
                ["--from", "generator=g1,verifier=w"]):
        res = CliRunner().invoke(app, ["transfer", "cot_score:tau", *bad, "--store", root])
        assert res.exit_code == 1, res.output


def test_odd_names_cli(tmp_path: Path) -> None:
    """Names with slashes, markup and mathtext reach tables and plots as plain text."""
    odd = ["org/m[bold]x[/bold]", "$\\frac{$"]
    b = StoreBuilder(tmp_path / "s")
    add(b, A_DATA, model=odd[0])
    add(b, B_DATA, model=odd[1])
    root = str(b.write().root)
    png = tmp_path / "m.png"
    res = CliRunner().invoke(app, ["transfer", "cot_score:tau", "--matrix", "generator",
                                   "--resamples", "20", "--plot", str(png), "--json",
                                   "--store", root])
    assert res.exit_code == 0, res.output
    (m,) = json.loads(res.output)["matrices"]
    assert m["labels"] == sorted(odd) and png.stat().st_size > 0
    assert [c["loss"] for c in m["cells"]] == pytest.approx([0, 0, 0.1, 0])  # sorted names
    for args in (["transfer", "cot_score:tau", "--from", f"generator={odd[0]}"],
                 ["compare", "cot_score:tau=9", "--a", f"generator={odd[0]}", "--b",
                  f"generator={odd[1]}"]):
        res = CliRunner().invoke(app, [*args, "--resamples", "20", "--plot", str(png),
                                       "--store", root])
        assert res.exit_code == 0, res.output
        assert "generator=$\\frac{$" in res.output  # lifted into the title, as text
