"""Selection (best-of-n, maj@n, weighted maj@n, pass@n) against a direct enumeration: a plain
Python loop over prompts on hand-made stores, with ties, null scores, single samples,
all-correct and all-wrong prompts, and a wrong majority that must grade 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.analysis.choice import parse_score, selection_table, tie_keys
from gvstore.analysis.frames import Dataset, base_frame
from gvstore.analysis.gap import gap_table
from gvstore.analysis.passk import pass_at_k_table
from gvstore.analysis.specs import Leaf, Mean, parse
from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.replay import Projections

# prompt -> samples (utility or None = ungraded, mc score or None = null, extracted answer)
CASES: dict[str, list[tuple[float | None, float | None, str | None]]] = {
    "tie": [(1.0, 0.9, "1"), (0.0, 0.9, "2"), (0.0, 0.1, "2"), (0.0, 0.3, "3")],
    "nulls": [(0.0, None, "4"), (1.0, 0.4, "5"), (0.0, None, "4")],
    "allnull": [(0.0, None, "6"), (1.0, None, "7")],
    "single": [(1.0, 0.3, "8")],
    "allright": [(1.0, 0.2, "9"), (1.0, 0.7, "9"), (1.0, 0.7, "9")],
    "allwrong": [(0.0, 0.5, "1"), (0.0, 0.8, "2"), (0.0, 0.1, "1")],
    "wrongmaj": [(0.0, 0.1, "5"), (0.0, 0.2, "5"), (1.0, 0.95, "7")],
    "noanswer": [(1.0, 0.6, None), (0.0, 0.6, " ")],
    "votetie": [(1.0, 0.0, "1"), (0.0, 0.0, "2")],
    "ungraded": [(None, 0.99, "3"), (0.0, 0.5, "3"), (1.0, 0.4, "4")],
}


def _store(tmp_path: Path, cases: dict = CASES, shift: float = 0.0) -> Projections:
    s = StoreBuilder(tmp_path / "store")
    for name, samples in cases.items():
        p = s.prompt(name)
        gens = s.gens(p, len(samples))
        for g, (u, score, ans) in zip(gens, samples, strict=True):
            if u is not None:
                s.grade(g, u, u, ans)
            s.verification(g, "mc", None if score is None else score + shift)
    return s.projections(cache=False)


def _enumerate(proj: Projections, seed: int) -> dict[str, dict[str, float]]:
    """Per prompt (by item id): base, pass@n, best-of-n, maj, wmaj by a plain loop."""
    gens = proj.generations.join(proj.grades.select("gen", "strict", "extracted"), on="gen")
    gens = gens.sort("prompt", "sample_index", "gen")  # the canonical order of graded rows
    keys = tie_keys(gens.height, seed)
    scores = {r["gen"]: r["score"] for r in proj.verifications.iter_rows(named=True)}
    items = {r["prompt"]: r["item_id"] for r in proj.prompts.iter_rows(named=True)}
    rows: dict[str, list[tuple[int, float, float | None, str | None]]] = {}
    for key, r in zip(keys, gens.iter_rows(named=True), strict=True):
        ans = (r["extracted"] or "").strip() or None
        rows.setdefault(items[r["prompt"]], []).append((int(key), r["strict"], scores[r["gen"]],
                                                        ans))
    low = min(0.0, min(s for v in rows.values() for _, _, s, _ in v if s is not None))
    out = {}
    for item, samples in rows.items():
        best = max(samples, key=lambda t: (t[2] is not None, t[2] or 0.0, -t[0]))
        out[item] = {
            "base": sum(t[1] for t in samples) / len(samples),
            "pass_at_n": float(any(t[1] >= 1 for t in samples)),
            "best_of_n": best[1],
            "maj": _vote(samples, None), "wmaj": _vote(samples, low)}
    return out


def _vote(samples: list, low: float | None) -> float:
    tally: dict[str, list] = {}
    for key, u, s, ans in samples:
        if ans is None:
            continue
        w = 1.0 if low is None else (0.0 if s is None else s - low)
        t = tally.setdefault(ans, [0.0, 0, 10**9, []])
        t[0] += w
        t[1] += 1
        t[2] = min(t[2], key)
        t[3].append(u)
    if not tally:
        return 0.0
    win = max(tally.values(), key=lambda t: (t[0], t[1], -t[2]))
    return sum(win[3]) / len(win[3])


def _means(per: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([v[k] for v in per.values()])) for k in next(iter(per.values()))}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7])
def test_matches_direct_enumeration(tmp_path: Path, seed: int) -> None:
    proj = _store(tmp_path)
    (row,) = selection_table(Dataset(proj), ["mc"], resamples=50, seed=seed)
    want = _means(_enumerate(proj, seed))
    for k, v in want.items():
        assert getattr(row, k) == pytest.approx(v, abs=1e-12), k
        if k != "base":
            assert getattr(row, f"{k}_gap" if k != "pass_at_n" else k) == pytest.approx(
                want["pass_at_n"] - v if k != "pass_at_n" else v, abs=1e-12)
    assert (row.prompts, row.generations, row.ungraded) == (10, 25, 1)
    assert (row.n_min, row.n_max) == (1, 4)
    assert row.null_score_prompts == 1  # allnull
    assert row.tied_top_prompts == 4  # tie, allright, noanswer, votetie
    assert row.answered_prompts == 9  # noanswer has none
    assert row.best_of_n_lo <= row.best_of_n <= row.best_of_n_hi


def test_hand_values(tmp_path: Path) -> None:
    """Figures a reader checks by eye, whatever the tie keys."""
    proj = _store(tmp_path)
    for seed in range(6):
        per = _enumerate(proj, seed)
        assert per["wrongmaj"]["maj"] == 0.0  # "5" wins 2 votes to 1 and is wrong
        assert per["wrongmaj"]["wmaj"] == 1.0  # 0.95 against 0.1 + 0.2
        assert per["wrongmaj"]["best_of_n"] == 1.0
        assert per["nulls"]["best_of_n"] == 1.0  # the only scored sample
        assert per["single"] == {"base": 1.0, "pass_at_n": 1.0, "best_of_n": 1.0, "maj": 1.0,
                                 "wmaj": 1.0}
        assert per["allright"]["best_of_n"] == per["allright"]["maj"] == 1.0
        assert per["allwrong"]["pass_at_n"] == per["allwrong"]["wmaj"] == 0.0
        assert per["noanswer"]["maj"] == per["noanswer"]["wmaj"] == 0.0
        assert per["ungraded"]["best_of_n"] == 0.0  # the ungraded 0.99 is never chosen
        assert per["ungraded"]["maj"] in (0.0, 1.0)  # "3" and "4": one graded vote each
        assert per["nulls"]["maj"] == 0.0 and per["nulls"]["wmaj"] == 1.0  # nulls weigh 0
    # which tied sample wins moves with the seed (a random rule, not the first sample)
    chosen = {_enumerate(proj, seed)["tie"]["best_of_n"] for seed in range(12)}
    assert chosen == {0.0, 1.0}


def test_weights_shift_negative_scores(tmp_path: Path) -> None:
    """Scores below 0 are shifted so the lowest is 0; adding a constant to every score
    of a store whose lowest score is negative changes no vote."""
    a = _store(tmp_path / "a", shift=-0.5)
    b = _store(tmp_path / "b", shift=-0.8)
    (ra,), (rb,) = (selection_table(Dataset(p), ["mc"], resamples=0) for p in (a, b))
    assert ra.wmaj == rb.wmaj
    assert ra.wmaj == pytest.approx(_means(_enumerate(a, 0))["wmaj"])


def test_pass_at_n_and_filter_gap_agree_with_their_modules(tmp_path: Path) -> None:
    proj = _store(tmp_path)
    ds = Dataset(proj)
    (row,) = selection_table(ds, ["mc:quantile=0.5"], resamples=100, seed=3)
    (gap,) = gap_table(ds, [parse("mc:quantile=0.5")], resamples=100, seed=3)
    assert row.filter == "mc:quantile=0.5" and row.score == "mc"
    assert (row.filter_gap, row.filter_gap_lo, row.filter_gap_hi) == (
        gap.gap, gap.gap_lo, gap.gap_hi)
    assert (row.base, row.base_lo, row.base_hi) == (gap.base, gap.base_lo, gap.base_hi)
    frame = base_frame(proj)
    # pass@k at k = n, prompt by prompt (the prompts have different n)
    per = [pass_at_k_table(frame.filter(frame["prompt"] == p).drop_nulls("utility"),
                           [int(n)])["pass_at_k"][0]
           for p, n in frame.drop_nulls("utility").group_by("prompt").len().iter_rows()]
    assert row.pass_at_n == pytest.approx(float(np.mean(per)))


def test_tournament_champion(tmp_path: Path) -> None:
    s = StoreBuilder(tmp_path / "store")
    p = s.prompt("a")
    g = s.gens(p, [(0.0, 0.0, "1"), (0.0, 0.0, "1"), (1.0, 1.0, "2"), (0.0, 0.0, "3")])
    s.match(p, g[0], g[1], g[1], 0)
    s.match(p, g[2], g[3], g[2], 0)
    s.match(p, g[1], g[2], g[2], 1)
    q = s.prompt("b")  # no match played: every score null, a seeded random sample
    s.gens(q, [(0.0, 0.0, "4"), (0.0, 0.0, "4")])
    (row,) = selection_table(Dataset(s.projections(cache=False)), ["tournament"], resamples=0)
    assert row.score == "tournament" and row.filter is None
    assert row.best_of_n == pytest.approx(0.5)  # a: the champion (correct), b: wrong
    assert row.null_score_prompts == 1
    assert row.maj == 0.0  # a: "1" has two votes and is wrong


def test_parse_score() -> None:
    assert parse_score("mc") == (Leaf("mc", parse_score("mc")[0].rule), None)
    spec, filt = parse_score("mean(mc,cot_score)")
    assert isinstance(spec, Mean) and filt is None
    spec, filt = parse_score("mc:quantile=0.8")
    assert filt == parse("mc:quantile=0.8") and isinstance(spec, Leaf)
    assert parse_score("mc:quantile")[1] is None
    with pytest.raises(GvstoreError, match="one score"):
        parse_score("and(mc:tau=0.5,cot_binary:tau=1)")


def test_cli_json_and_table(tmp_path: Path) -> None:
    proj = _store(tmp_path)
    root = str(proj.store.root)
    runner = CliRunner()
    plot = tmp_path / "sel.png"
    res = runner.invoke(app, ["select", "mc", "mc:quantile=0.5", "--store", root,
                              "--resamples", "20", "--json", "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["filter"] for r in data["results"]] == [None, "mc:quantile=0.5"]
    assert plot.stat().st_size > 0
    res = runner.invoke(app, ["select", "mc", "--store", root, "--resamples", "20"])
    assert res.exit_code == 0, res.output
    assert "best-of-n" in res.stdout and "pass@n" in res.stdout
    res = runner.invoke(app, ["select", "and(mc:tau=0.5,mc:tau=0.2)", "--store", root])
    assert res.exit_code == 1


def test_names_print_as_text(tmp_path: Path) -> None:
    s = StoreBuilder(tmp_path / "store")
    p = s.prompt("a")
    gens = s.gens(p, [(1.0, 1.0, "1"), (0.0, 0.0, "2")], model="[bold]m[/bold]")
    s.scores(gens, "mc", [0.9, 0.1], verifier="[red]v")
    root = str(s.write().root)
    for cmd in ("select", "nscale"):
        res = CliRunner().invoke(app, [cmd, "mc", "--store", root, "--resamples", "0"])
        assert res.exit_code == 0, res.output
        assert "[bold]m[/bold]" in res.stdout and "[red]v" in res.stdout
