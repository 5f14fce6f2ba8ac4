"""A group's tournament matches are its own: joined by generation, never by prompt alone.

Two generators (gA, gB), or two rounds (0, 1) of one generator, answer the same four prompts
p0..p3. The first plays tournaments on every prompt (brackets of 4, two rounds); the second
only on the even prompts (brackets of 2, one round). Both are scored by ``mc`` (verifier v).

The second one, by hand (utility u, mc score s, tournament survivors of round 0):

    p0: u 1 1 0, s .9 .9 .9; match s0 beats s1, s2 alone: survivors s0, s2 (u 1, 0)
        acc 2/3, and(tournament:rounds=1,mc:tau=0.5) keeps s0, s2: acc_w 1/2, diff -1/6
    p1: u 1 0 0 0, s .9 .9 .1 .1; no match of its own: tournament null, nothing kept
        (empty: acc_w = acc, diff 0). Read with the first one's matches, mc alone would
        keep s0, s1: acc_w 1/2 - acc 1/4 = +1/4
    p2: u 1 0 1 0, s .9 .9 .9 .9; s0 beats s1, s3 beats s2: survivors s0, s3
        acc 1/2, acc_w 1/2, diff 0
    p3: u 1 1 0 0, s .9 .9 .9 .1; no match of its own: empty, diff 0 (with the first one's
        matches: keeps s0 s1 s2, acc_w 2/3 - acc 1/2 = +1/6)

    gap = (-1/6 + 0 + 0 + 0) / 4 = -1/24 = -0.0417, 2 empty prompts, 4 kept
    (the prompt join gave (-1/6 + 1/4 + 0 + 1/6) / 4 = +1/16 = +0.0625, 0 empty, 9 kept)

The first one: u 1 0 0 1 on every prompt, s .9 everywhere; s0 beats s1 and s3 beats s2 in
round 0, s0 beats s3 in round 1. rounds=1 keeps s0, s3: acc_w 1, acc 1/2, gap +1/2;
rounds=2 keeps s0: gap +1/2 too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.analysis.frames import Dataset, Filters
from gvstore.analysis.gap import GapResult, gap_table
from gvstore.analysis.rounds import RoundRef, round_report
from gvstore.analysis.specs import parse, parse_template
from gvstore.analysis.sweep import sweep
from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.params import load
from gvstore.records import Generation, Prompt
from gvstore.replay import Projections
from gvstore.report import build as build_report
from gvstore.store import Store

REPO = Path(__file__).resolve().parents[1]
AND = "and(tournament:rounds=1,mc:tau=0.5)"


def gens(b: StoreBuilder, p: Prompt, utils: list[float], scores: list[float], model: str,
         rnd: int) -> list[Generation]:
    """Generations of ``p``, each graded ``utils[i]`` and scored ``scores[i]`` by mc (v)."""
    out = []
    for i, (u, s) in enumerate(zip(utils, scores, strict=True)):
        g = b.generation(p, i, f"answer {p.item_id}/{model}/{rnd}/{i}", model=model, rnd=rnd)
        b.grade(g, u)
        b.verification(g, "mc", s)
        out.append(g)
    return out


def build(root: Path, first: tuple[str, int], second: tuple[str, int], task: str = "t") -> Path:
    """The store of the module doc; ``first``/``second`` are (model, round) of each."""
    b = StoreBuilder(root, task)
    prompts = [b.prompt(f"p{i}") for i in range(4)]
    for p in prompts:  # the first one: a 2-round bracket of 4 on every prompt
        s0, s1, s2, s3 = gens(b, p, [1, 0, 0, 1], [0.9] * 4, *first)
        b.match(p, s0, s1, s0, 0, 0)
        b.match(p, s2, s3, s3, 0, 0)
        b.match(p, s0, s3, s0, 1, 0)
    p0, p1, p2, p3 = prompts
    g = gens(b, p0, [1, 1, 0], [0.9, 0.9, 0.9], *second)
    b.match(p0, g[0], g[1], g[0], 0, 0)  # g[2] is alone in bracket 1
    gens(b, p1, [1, 0, 0, 0], [0.9, 0.9, 0.1, 0.1], *second)
    g = gens(b, p2, [1, 0, 1, 0], [0.9] * 4, *second)
    b.match(p2, g[0], g[1], g[0], 0, 0)
    b.match(p2, g[2], g[3], g[3], 0, 1)
    gens(b, p3, [1, 1, 0, 0], [0.9, 0.9, 0.9, 0.1], *second)
    return b.write().root


@pytest.fixture
def two_generators(tmp_path: Path) -> Path:
    return build(tmp_path / "gens", ("gA", 0), ("gB", 0))


@pytest.fixture
def two_rounds(tmp_path: Path) -> Path:
    return build(tmp_path / "rounds", ("g", 0), ("g", 1))


def rows(root: Path, spec: str, **filters: tuple[object, ...]) -> dict[tuple[str, int], GapResult]:
    ds = Dataset(Projections(Store(root)), filters=Filters(**filters))  # type: ignore[arg-type]
    return {(r.generator, r.round): r for r in gap_table(ds, [parse(spec)], resamples=50)}


def check_second(r: GapResult) -> None:
    assert r.gap == pytest.approx(-1 / 24)  # not the +1/16 of the prompt join
    assert r.base == pytest.approx((2 / 3 + 1 / 4 + 1 / 2 + 1 / 2) / 4)
    assert r.reweighted == pytest.approx(r.base - 1 / 24)
    assert r.kept == 4 and r.empty_prompts == 2 and r.prompts == 4


def check_first(r: GapResult) -> None:
    assert r.gap == pytest.approx(0.5) and r.kept == 8 and r.empty_prompts == 0


def test_generators_sharing_prompts(two_generators: Path) -> None:
    got = rows(two_generators, AND)
    check_second(got[("gB", 0)])
    check_first(got[("gA", 0)])
    only = rows(two_generators, AND, generators=("gB",))
    assert list(only) == [("gB", 0)]
    check_second(only[("gB", 0)])
    # gB played one round: two is an error that names it; gA played two.
    with pytest.raises(GvstoreError, match=r"rounds=2 .*played 1 on gB/t"):
        rows(two_generators, "tournament:rounds=2")
    r = rows(two_generators, "tournament:rounds=2", generators=("gA",))[("gA", 0)]
    assert r.gap == pytest.approx(0.5) and r.kept == 4


def test_rounds_sharing_prompts(two_rounds: Path) -> None:
    got = rows(two_rounds, AND)
    check_second(got[("g", 1)])
    check_first(got[("g", 0)])
    check_second(rows(two_rounds, AND, rounds=(1,))[("g", 1)])
    with pytest.raises(GvstoreError, match=r"rounds=2 .*played 1 on g/t round 1"):
        rows(two_rounds, "tournament:rounds=2", rounds=(1,))
    assert rows(two_rounds, "tournament:rounds=2", rounds=(0,))[("g", 0)].kept == 4


def test_group_comparisons_are_its_own(two_generators: Path) -> None:
    ds = Dataset(Projections(Store(two_generators)))
    by = {g.generator: g for g in ds.groups(["tournament"])}
    comps = {}
    for name, g in by.items():
        assert g.comparisons is not None
        comps[name] = g.comparisons
        sides = set(comps[name]["a"].to_list()) | set(comps[name]["b"].to_list())
        assert sides <= set(g.gen.tolist())
    assert comps["gA"].height == 12 and comps["gB"].height == 3
    assert comps["gB"]["bracket_round"].max() == 0


def test_a_group_with_no_match_cannot_read_a_round(tmp_path: Path) -> None:
    """gC answers the same prompts, scored by mc, and never played: rounds=1 is an error,
    rounds=0 leaves every prompt empty (no tournament score anywhere)."""
    root = tmp_path / "s"
    build(root, ("gA", 0), ("gB", 0))
    b = StoreBuilder(root)
    for p in [b.prompt(f"p{i}") for i in range(4)]:
        gens(b, p, [1, 0], [0.9, 0.1], "gC", 0)
    b.write()
    with pytest.raises(GvstoreError, match=r"rounds=1 .*played 0 on gC/t"):
        rows(root, AND, generators=("gC",))
    r = rows(root, "and(tournament:rounds=0,mc:tau=0.5)", generators=("gC",))[("gC", 0)]
    assert r.kept == 0 and r.empty_prompts == 4 and r.gap == 0.0


def test_sweep_stops_at_the_groups_own_rounds(two_generators: Path) -> None:
    ds = Dataset(Projections(Store(two_generators)))
    res = {r.generator: r for r in sweep(ds, parse_template("tournament:rounds"), resamples=0)}
    assert [p.value for p in res["gA"].points] == [0.0, 1.0, 2.0]
    assert [p.value for p in res["gB"].points] == [0.0, 1.0]
    # gB, rounds=1 alone: p0 keeps s0 s2 (1/2 vs 2/3), p2 keeps s0 s3 (1/2 vs 1/2), p1 p3 empty
    assert res["gB"].points[1].gap == pytest.approx(-1 / 24)
    assert res["gB"].points[1].empty_prompts == 2


def test_round_report_uses_each_rounds_own_matches(two_rounds: Path) -> None:
    chain = [RoundRef(0, "g", "v"), RoundRef(1, "g", "v")]
    rep = round_report(Projections(Store(two_rounds)), "t", chain, spec=parse(AND),
                       resamples=0)
    r0, r1 = rep.rows
    assert r0.gap == pytest.approx(0.5)
    assert r1.gap == pytest.approx(-1 / 24) and r1.empty_filter == 2


def cli(root: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["--store", str(root), *args])
    return res.exit_code, res.output


def test_cli_gap_cross_and_rounds(two_generators: Path, two_rounds: Path) -> None:
    code, out = cli(two_generators, "gap", AND, "-g", "gB", "--json", "--resamples", "50")
    assert code == 0, out
    (row,) = json.loads(out)["results"]
    assert row["generator"] == "gB" and row["gap"] == pytest.approx(-1 / 24)
    assert row["empty_prompts"] == 2
    code, out = cli(two_generators, "gap", "tournament:rounds=2", "-g", "gB")
    assert code == 1, out
    assert "rounds=2" in out and "played 1 on gB/t" in out and "Traceback" not in out
    code, out = cli(two_generators, "cross", AND, "--json", "--resamples", "50")
    assert code == 0, out
    cells = {c["generator"]: c for m in json.loads(out)["matrices"] for c in m["cells"]}
    assert cells["gB"]["gap"] == pytest.approx(-1 / 24)
    assert cells["gA"]["gap"] == pytest.approx(0.5)
    code, out = cli(two_rounds, "rounds", "--task", "t", "--spec", AND, "-v", "v",
                    "--resamples", "0", "--json")
    assert code == 0, out
    gaps = {r["round"]: r["gap"] for r in json.loads(out)["rows"]}
    assert gaps[0] == pytest.approx(0.5) and gaps[1] == pytest.approx(-1 / 24, abs=1e-6)


def test_the_study_report(tmp_path: Path) -> None:
    store = Store(build(tmp_path / "store", ("gA", 0), ("gB", 0), task="arith"))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(models=["gA", "gB", "v"], generators=["gA", "gB"], verifiers=["v"],
                        tasks=["arith"])
    raw["models"] = {m: {"package": "x"} for m in ("gA", "gB", "v")}
    raw["report"].update(specs=[AND], sweeps=["tournament:rounds"], resamples=50)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    metrics = build_report(store, load(tmp_path / "params.yaml"), tmp_path / "reports").metrics
    gap = metrics["gap"]["arith"]
    assert gap["gB"]["v"]["round0"][AND]["gap"] == round(-1 / 24, 6)
    assert gap["gB"]["v"]["round0"][AND]["empty_prompts"] == 2
    assert gap["gA"]["v"]["round0"][AND]["gap"] == 0.5
    series = (tmp_path / "reports" / "plots" / "sweep-tournament_rounds.csv").read_text()
    assert "arith/gB/v/r0,2.0" not in series and "arith/gB/v/r0,1.0" in series
    assert "arith/gA/v/r0,2.0" in series
