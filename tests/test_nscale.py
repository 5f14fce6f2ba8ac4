"""Scaling with n offline against a direct enumeration of every n'-subset (itertools), and
with verification repeats m' against hand values."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.analysis.choice import selection_table, tie_keys
from gvstore.analysis.frames import Dataset
from gvstore.analysis.nscale import best_of_probabilities, budgets, nscale_table
from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.replay import Projections

# prompt -> samples (utility or None = ungraded, mc score or None = null, extracted answer)
CASES: dict[str, list[tuple[float | None, float | None, str | None]]] = {
    "mixed": [(1.0, 0.9, "1"), (0.0, 0.9, "2"), (0.0, 0.1, "2"), (1.0, None, "1")],
    "wrongmaj": [(0.0, 0.1, "5"), (0.0, 0.2, "5"), (1.0, 0.95, "7"), (0.0, 0.3, "5")],
    "allright": [(1.0, 0.2, "9"), (1.0, 0.7, "9"), (1.0, 0.7, " ")],
    "allwrong": [(0.0, 0.5, "1"), (0.0, None, "2"), (0.0, 0.1, None)],
    "single": [(1.0, 0.3, "8")],
    "ungraded": [(None, 0.99, "3"), (0.0, 0.5, "3"), (1.0, 0.4, "4")],
}
SPEC = ("mc", 0.5)  # tau for the filter enumeration


def _store(tmp_path: Path, cases: dict = CASES) -> Projections:
    s = StoreBuilder(tmp_path / "store")
    for name, samples in cases.items():
        p = s.prompt(name)
        for g, (u, score, ans) in zip(s.gens(p, len(samples)), samples, strict=True):
            if u is not None:
                s.grade(g, u, u, ans)
            s.verification(g, "mc", score)
    return s.projections(cache=False)


def _samples(proj: Projections, seed: int) -> dict[str, list[tuple]]:
    gens = proj.generations.join(proj.grades.select("gen", "strict", "extracted"), on="gen")
    gens = gens.sort("prompt", "sample_index", "gen")
    scores = {r["gen"]: r["score"] for r in proj.verifications.iter_rows(named=True)}
    items = {r["prompt"]: r["item_id"] for r in proj.prompts.iter_rows(named=True)}
    out: dict[str, list[tuple]] = {}
    for key, r in zip(tie_keys(gens.height, seed), gens.iter_rows(named=True), strict=True):
        ans = (r["extracted"] or "").strip() or None
        out.setdefault(items[r["prompt"]], []).append(
            (int(key), r["strict"], scores[r["gen"]], ans))
    return out


def _vote(sub: tuple, low: float | None) -> float:
    tally: dict[str, list] = {}
    for key, u, s, ans in sub:
        if ans is not None:
            t = tally.setdefault(ans, [0.0, 0, 10**9, []])
            t[0] += 1.0 if low is None else (0.0 if s is None else s - low)
            t[1] += 1
            t[2] = min(t[2], key)
            t[3].append(u)
    if not tally:
        return 0.0
    win = max(tally.values(), key=lambda t: (t[0], t[1], -t[2]))
    return sum(win[3]) / len(win[3])


def _gap(sub: tuple, rule: str, value: float) -> float:
    acc = sum(t[1] for t in sub) / len(sub)
    scored = sorted(t[2] for t in sub if t[2] is not None)
    if rule == "tau":
        thr = value
    elif scored:
        thr = scored[min(math.ceil(value * (len(scored) - 1) - 1e-9), len(scored) - 1)]
    else:
        return 0.0
    kept = [t[1] for t in sub if t[2] is not None and t[2] >= thr]
    return (sum(kept) / len(kept) - acc) if kept else 0.0


def _enumerate(proj: Projections, seed: int, k: int, rule: str, value: float) -> dict:
    samples = _samples(proj, seed)
    low = min(0.0, min(t[2] for v in samples.values() for t in v if t[2] is not None))
    per: dict[str, list[float]] = {}
    for item, rows in samples.items():
        if len(rows) < k:
            continue
        subs = list(combinations(rows, k))
        vals = []
        for sub in subs:
            best = max(sub, key=lambda t: (t[2] is not None, t[2] or 0.0, -t[0]))
            vals.append([float(any(t[1] >= 1 for t in sub)), best[1], _vote(sub, None),
                         _vote(sub, low), _gap(sub, rule, value)])
        per[item] = list(np.mean(vals, axis=0))
    return {"prompts": len(per), **dict(zip(
        ("pass_at_n", "best_of_n", "maj", "wmaj", "filter_gap"),
        np.mean(list(per.values()), axis=0), strict=True))}


@pytest.mark.parametrize(("spec", "rule", "value"), [
    ("mc:tau=0.5", "tau", 0.5), ("mc:quantile=0.5", "quantile", 0.5)])
@pytest.mark.parametrize("seed", [0, 5])
def test_every_n_matches_enumeration(tmp_path: Path, spec: str, rule: str, value: float,
                                     seed: int) -> None:
    proj = _store(tmp_path)
    (res,) = nscale_table(Dataset(proj), [spec], resamples=30, seed=seed)
    assert [p.n for p in res.points] == [1, 2, 4]
    assert (res.n_max, res.m_max, res.prompts) == (4, 1, 6)
    for p in res.points:
        want = _enumerate(proj, seed, p.n, rule, value)
        assert p.exact and p.prompts == want.pop("prompts")
        assert p.excluded == 6 - p.prompts
        for k, v in want.items():
            assert getattr(p, k) == pytest.approx(v, abs=1e-12), (p.n, k)
    # n' = 1: best-of and pass@1 are a random sample (maj too, but a sample with no
    # answer scores 0 there); a filter of one sample changes nothing
    first, last = res.points[0], res.points[-1]
    assert first.best_of_n == pytest.approx(first.pass_at_n, abs=1e-12)
    assert first.maj < first.best_of_n
    assert (first.best_of_n_kept, last.best_of_n_kept, last.filter_gap_kept) == (0, 1, 1)
    mid = res.points[1]
    assert mid.best_of_n_kept == pytest.approx(
        (mid.best_of_n - first.best_of_n) / (last.best_of_n - first.best_of_n))
    assert first.filter_gap == pytest.approx(0.0)


def test_full_n_is_the_selection(tmp_path: Path) -> None:
    # one n (3 graded samples), so n' = n covers every prompt
    cases = {k: v[:3] for k, v in CASES.items() if k not in ("single", "ungraded")}
    proj = _store(tmp_path, cases)
    ds = Dataset(proj)
    (res,) = nscale_table(ds, ["mc"], resamples=0, seed=2)
    (sel,) = selection_table(ds, ["mc"], resamples=0, seed=2)
    last = res.points[-1]
    assert last.n == 3 and last.filter_gap is None
    for k in ("pass_at_n", "best_of_n", "maj", "wmaj"):
        assert getattr(last, k) == pytest.approx(getattr(sel, k), abs=1e-12), k


def test_sampled_subsets_are_seeded_and_close(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    cases = {f"p{i}": [(float(rng.random() < 0.4), float(rng.random()), str(rng.integers(3)))
                       for _ in range(8)] for i in range(3)}
    proj = _store(tmp_path, cases)
    run = [nscale_table(Dataset(proj), ["mc:tau=0.5"], subsets=40, resamples=10, seed=1)[0]
           for _ in range(2)]
    assert [p.to_dict() for p in run[0].points] == [p.to_dict() for p in run[1].points]
    p4 = run[0].points[2]
    assert p4.n == 4 and not p4.exact  # C(8, 4) = 70 > 40 subsets
    want = _enumerate(proj, 1, 4, "tau", 0.5)
    assert p4.best_of_n == pytest.approx(want["best_of_n"], abs=1e-12)  # exact anyway
    for k in ("maj", "wmaj", "filter_gap"):
        assert getattr(p4, k) == pytest.approx(want[k], abs=0.08), k


@pytest.mark.parametrize("b_repeats", [[0.6, 0.6], [0.6]])  # same counts, and not
def test_repeats_by_hand(tmp_path: Path, b_repeats: list[float]) -> None:
    """A: repeats 1.0 and 0.0, correct; B: 0.6 (twice or once), wrong. With one repeat A is
    the best half the time; with both A's mean 0.5 loses to 0.6."""
    s = StoreBuilder(tmp_path / "store")
    p = s.prompt("a")
    a, b = s.gens(p, [(1.0, 1.0, "1"), (0.0, 0.0, "2")])
    s.repeats([a, b], "mc", [[1.0, 0.0], b_repeats])
    (res,) = nscale_table(Dataset(s.projections(cache=False)), ["mc:tau=0.55"],
                          subsets=400, resamples=0, seed=0)
    assert res.m_max == 2 and [m.m for m in res.repeats] == [1, 2]
    one, two = res.repeats
    assert one.draws == 400 and two.draws == 1
    assert one.best_of_n == pytest.approx(0.5, abs=0.06)
    assert one.wmaj == pytest.approx(0.5, abs=0.06)  # 1.0 > 0.6, 0.0 < 0.6
    assert two.best_of_n == 0.0 and two.wmaj == 0.0  # 0.6 > 0.5
    # filter tau=0.55 (B, at 0.6, is always kept): A drew 1.0 -> kept {A, B}, gap 0;
    # A drew 0.0 (or averages 0.5) -> kept {B}, gap 0 - 0.5
    assert one.filter_gap == pytest.approx(-0.25, abs=0.03)
    assert two.filter_gap == pytest.approx(-0.5)


def test_helpers() -> None:
    assert budgets(1) == [1] and budgets(8) == [1, 2, 4, 8] and budgets(6) == [1, 2, 4, 6]
    for n in range(1, 12):
        for k in range(1, n + 1):
            p = best_of_probabilities(n, k)
            want = [math.comb(n - 1 - j, k - 1) / math.comb(n, k) for j in range(n)]
            assert p == pytest.approx(want, abs=1e-14) and p.sum() == pytest.approx(1.0)


def test_tournament_is_refused(tmp_path: Path) -> None:
    proj = _store(tmp_path)
    with pytest.raises(GvstoreError, match="tournament"):
        nscale_table(Dataset(proj), ["tournament"])


def test_cli(tmp_path: Path) -> None:
    root = str(_store(tmp_path).store.root)
    plot = tmp_path / "n.png"
    runner = CliRunner()
    res = runner.invoke(app, ["nscale", "mc:quantile=0.5", "--store", root, "--resamples",
                              "20", "--json", "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    (r,) = json.loads(res.stdout)["results"]
    assert [p["n"] for p in r["points"]] == [1, 2, 4] and plot.stat().st_size > 0
    res = runner.invoke(app, ["nscale", "mc", "--store", root, "--resamples", "0"])
    assert res.exit_code == 0, res.output
    assert "best-of-n'" in res.stdout and "tokens" in res.stdout
