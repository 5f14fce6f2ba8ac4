"""Learned ensembles (``learned(lr|nb,...)`` and ``gvstore ensembles``) on hand-made stores.

The stores: ``inverted`` has 20 prompts of 4 samples (2 correct, 2 wrong) where cot_score is
high exactly on the wrong samples and mc is uninformative; a learned model can invert
cot_score, no keep-high rule on a single method can.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import Graded, gap_table
from gvstore.analysis.learned import features, fit_predict, fold_of, normalised
from gvstore.analysis.learned_eval import Settings, compare, cross_choose, summary
from gvstore.analysis.specs import Learned, Rule, parse, parse_template
from gvstore.analysis.sweep import sweep
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError
from gvstore.replay import Projections, handle

MC = ([0.9, 0.1, 0.8, 0.2], [0.2, 0.8, 0.9, 0.1])
"""mc of the inverted store: on even prompts it ranks a correct sample first, on odd ones a
wrong one (its keep-high rules gain on half the prompts what they lose on the other)."""


def build_inverted(root: Path, flip: str | None = None) -> Projections:
    """The inverted store; ``flip`` names a prompt whose four grades are inverted."""
    b = StoreBuilder(root)
    for i in range(20):
        u = [1, 1, 0, 0] if f"p{i:02d}" != flip else [0, 0, 1, 1]
        g = b.gens(b.prompt(f"p{i:02d}"), u)
        b.scores(g, "cot_score", [1, 2, 8, 9])
        b.scores(g, "mc", MC[i % 2])
    return b.projections()


@pytest.fixture
def inverted(tmp_path: Path) -> Projections:
    return build_inverted(tmp_path / "s")


def one_group(proj: Projections, methods: tuple[str, ...] = ("mc", "cot_score"),
              utility: str | None = "strict") -> Group:
    groups = Dataset(proj, utility=utility).groups(methods)
    assert len(groups) == 1
    return groups[0]


def rows_of(g: Group, b: StoreBuilder, name: str) -> np.ndarray:
    """The rows of prompt ``name`` (groups order prompts by handle, not by name)."""
    return g.prompt == handle(b.prompt(name).id)


def learned_scores(g: Group, text: str) -> np.ndarray:
    spec = parse(text)
    assert isinstance(spec, Learned)
    return Weigher(g).score(spec)


@pytest.mark.parametrize("model", ["lr", "nb"])
def test_learned_beats_every_single_method(inverted: Projections, model: str) -> None:
    rows = gap_table(Dataset(inverted), [parse(f"learned({model},mc,cot_score)"),
                                         parse("mc:quantile=1"), parse("mc:quantile=0.5"),
                                         parse("cot_score:quantile=1")], resamples=100)
    gaps = {r.spec: r for r in rows}
    lrn = gaps[f"learned({model},mc,cot_score):tau=0.5"]
    # by hand: base 0.5 on every prompt; the model keeps exactly the 2 correct samples
    assert (lrn.base, lrn.reweighted, lrn.gap, lrn.rel_gap) == (0.5, 1.0, 0.5, 1.0)
    assert lrn.kept == 40 and lrn.verdict == "improvable"
    # mc:quantile=1 keeps the top sample: +0.5 on even prompts, -0.5 on odd ones
    assert gaps["mc:quantile=1"].gap == pytest.approx(0.0)
    # mc:quantile=0.5 keeps the top two: one correct and one wrong on every prompt
    assert gaps["mc:quantile=0.5"].gap == pytest.approx(0.0)
    assert gaps["cot_score:quantile=1"].gap == pytest.approx(-0.5)


def test_ensembles_compare_by_hand(inverted: Projections) -> None:
    rows = {r.candidate: r for r in compare(Dataset(inverted), ("mc", "cot_score"),
                                            Settings(folds=4, resamples=200))}
    assert list(rows) == ["learned lr", "learned nb", "best single", "best hand-made"]
    assert rows["learned lr"].gap == 0.5 and rows["learned nb"].gap == 0.5
    single = rows["best single"]
    # every single spec averages to <= 0 over any set of prompts with as many even as odd
    # prompts, and none reaches 0.5 anywhere: learned beats it by a decided margin
    assert single.gap < 0.5
    assert rows["learned lr"].vs_single == pytest.approx(0.5 - single.gap)
    assert rows["learned lr"].vs_single_verdict == "improvable"
    assert single.vs_single is None and len(single.choices) == 4
    assert all(r.prompts == 20 and r.folds == 4 for r in rows.values())


def test_best_single_matches_direct_enumeration(inverted: Projections) -> None:
    """The held-out choice, redone by hand: per fold, the best mean gap on the other folds."""
    g = one_group(inverted)
    cfg = Settings(folds=5, fold_seed=3, resamples=0, grid=5)
    row = next(r for r in compare(Dataset(inverted), ("mc", "cot_score"), cfg)
               if r.candidate == "best single")
    fold = fold_of(20, 5, 3)
    graded = Graded(g)
    w = Weigher(g)
    specs = [f"{m}:quantile={q}" for m in ("mc", "cot_score") for q in
             ("0", "0.25", "0.5", "0.75", "1")]
    diff = {s: graded.stats(w.weights(parse(s))).diff for s in specs}
    held = np.empty(20)
    for f in range(5):
        test = fold == f
        best = max(specs, key=lambda s: (diff[s][~test].mean(), -specs.index(s)))
        assert row.choices[f] == best
        held[test] = diff[best][test]
    assert row.gap == pytest.approx(held.mean())


def test_cross_choose_by_hand() -> None:
    d = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.2]])
    fold = np.array([0, 1, 2, 2])
    out, rel, chosen = cross_choose(d, d * 2, fold, 4)
    # fold 0 trains on rows 1-3: means (0.567, 0.233) -> column 0; fold 1 on rows 0,2,3:
    # (0.233, 0.567) -> 1; fold 2 on rows 0,1: (0.5, 0.5) tie -> the first, 0; fold 3 empty
    assert chosen == [0, 1, 0, None]
    assert out.tolist() == [0.0, 0.0, 0.5, 0.2] and rel.tolist() == [0.0, 0.0, 1.0, 0.4]
    assert summary(["a", "a", "b", ""]) == "folds 0,1: a; fold 2: b"
    assert summary(["a", "a"]) == "every fold: a"


def test_own_grades_never_move_own_weights(tmp_path: Path) -> None:
    """Flip one prompt's grades in the store: its weights stay, other folds' move."""
    text = "learned(lr,mc,cot_score):folds=4"
    base = one_group(build_inverted(tmp_path / "a"))
    flipped = one_group(build_inverted(tmp_path / "b", flip="p03"))
    s0, s1 = learned_scores(base, text), learned_scores(flipped, text)
    own = rows_of(base, StoreBuilder(tmp_path / "a"), "p03")
    assert np.array_equal(s0[own], s1[own])
    for rule in ("tau=0.5", "quantile=0.5", "exp=0.1"):  # and so its weights, whatever rule
        spec = parse(f"learned(lr,mc,cot_score):{rule},folds=4")
        assert np.array_equal(Weigher(base).weights(spec)[own],
                              Weigher(flipped).weights(spec)[own])
    assert np.abs(s0[~own] - s1[~own]).max() > 1e-6  # the training sets changed
    fold = fold_of(20, 4, 0)[base.pidx]
    assert np.array_equal(s0[fold == fold[own][0]], s1[fold == fold[own][0]])  # same fold


@pytest.mark.parametrize("text", ["learned(lr,mc,cot_score):folds=5",
                                  "learned(nb,mc,cot_score):norm=z,folds=3,seed=2"])
def test_never_trained_on_its_own_prompt(inverted: Projections, text: str) -> None:
    """By construction, for every prompt: random grades there leave its scores unchanged."""
    g = one_group(inverted)
    before = learned_scores(g, text)
    rng = np.random.default_rng(0)
    for p in range(g.n_prompts):
        own = g.pidx == p
        u = g.utility.copy()
        u[own] = rng.integers(0, 2, own.sum())
        u[np.flatnonzero(own)[0]] = np.nan  # and one ungraded
        after = learned_scores(dataclasses.replace(g, utility=u), text)
        assert np.array_equal(before[own], after[own]), p


def test_folds_seeded_balanced_and_stable() -> None:
    a = fold_of(10, 3, 0)
    assert np.array_equal(a, fold_of(10, 3, 0))
    assert sorted(np.bincount(a).tolist()) == [3, 3, 4]
    perm = np.random.default_rng(0).permutation(10)
    assert [a[perm[i]] for i in range(10)] == [i % 3 for i in range(10)]
    assert not np.array_equal(a, fold_of(10, 3, 1))
    assert fold_of(2, 5, 0).tolist() in ([0, 1], [1, 0])  # more folds than prompts


def test_normalisations_by_hand(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("a"), [1, 0, 0, 1])
    b.scores(g, "cot_score", [1, 2, 2, None])  # ties and a null
    g = b.gens(b.prompt("b"), [1])
    b.scores(g, "cot_score", [7])  # a single sample
    g = b.gens(b.prompt("c"), [1, 0])
    b.scores(g, "cot_score", [3, 3])  # all equal
    grp = one_group(b.projections(), ("cot_score",))
    w = Weigher(grp)
    nan = math.nan
    order = np.concatenate([np.flatnonzero(rows_of(grp, b, n)) for n in "abc"])
    z = 1 / math.sqrt(2 / 9)  # mean 5/3, population sd sqrt(2/9)
    for norm, want in [("rank", [0, 0.75, 0.75, nan, 0.5, 0.5, 0.5]),
                       ("minmax", [0, 1, 1, nan, 0.5, 0.5, 0.5]),
                       ("z", [-2 / 3 * z, 1 / 3 * z, 1 / 3 * z, nan, 0, 0, 0]),
                       ("none", [1, 2, 2, nan, 7, 3, 3])]:
        np.testing.assert_allclose(normalised(w, "cot_score", norm)[order], want)
    spec = parse("learned(lr,cot_score):norm=z")
    assert isinstance(spec, Learned)
    x = features(w, spec)[order]
    assert x.shape == (7, 2)
    assert x[3].tolist() == [0.0, 1.0]  # imputed with z's middle, flagged null
    assert x[:, 1].tolist() == [0, 0, 0, 1, 0, 0, 0]


def test_nulls_are_a_feature(tmp_path: Path) -> None:
    """Wrong answers are exactly those whose cot_score did not parse: the is-null flag
    alone separates them, whatever the parsed scores say."""
    b = StoreBuilder(tmp_path / "s")
    for i in range(12):
        g = b.gens(b.prompt(f"p{i:02d}"), [1, 0, 1, 0])
        b.scores(g, "cot_score", [(i % 3) + 1, None, 9 - (i % 4), None])
    r = gap_table(Dataset(b.projections()), [parse("learned(lr,cot_score):folds=3")],
                  resamples=0)[0]
    assert (r.base, r.reweighted, r.gap) == (0.5, 1.0, 0.5)


def test_single_sample_prompts(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    for i in range(6):
        g = b.gens(b.prompt(f"p{i}"), [i % 2])
        b.scores(g, "mc", [0.1 * i])
        b.scores(g, "cot_score", [None if i == 2 else i])
    r = gap_table(Dataset(b.projections()), [parse("learned(lr,mc,cot_score):folds=3")],
                  resamples=50)[0]
    # one sample per prompt: acc_w = acc whether it is kept or not (empty falls back)
    assert r.prompts == 6 and r.gap == 0.0 and r.rel_gap == 0.0


@pytest.mark.parametrize("grade, expect", [(1, 1.0), (0, 0.0)])
def test_one_class_gives_a_constant(tmp_path: Path, grade: int, expect: float) -> None:
    """All correct (all wrong): every fold trains on one class and predicts it."""
    b = StoreBuilder(tmp_path / "s")
    for i in range(5):
        g = b.gens(b.prompt(f"p{i}"), [grade] * 3)
        b.scores(g, "mc", [0.2, 0.5, 0.9])
    proj = b.projections()
    s = learned_scores(one_group(proj, ("mc",)), "learned(nb,mc)")
    assert s.tolist() == [expect] * 15
    r = gap_table(Dataset(proj), [parse("learned(lr,mc)")], resamples=20)[0]
    assert r.gap == 0.0 and r.empty_prompts == (0 if grade else 5)


def test_fold_trained_on_one_class(tmp_path: Path) -> None:
    """Two prompts, two folds: each is scored by a model of the other's single class."""
    b = StoreBuilder(tmp_path / "s")
    b.scores(b.gens(b.prompt("a"), [1, 1]), "mc", [0.1, 0.9])
    b.scores(b.gens(b.prompt("b"), [0, 0]), "mc", [0.1, 0.9])
    g = one_group(b.projections(), ("mc",))
    s = learned_scores(g, "learned(lr,mc):folds=2")
    assert s[rows_of(g, b, "a")].tolist() == [0.0, 0.0]  # trained on b: all wrong
    assert s[rows_of(g, b, "b")].tolist() == [1.0, 1.0]
    assert fit_predict("lr", np.empty((0, 2)), np.empty(0, dtype=bool), np.ones((3, 2))
                       ).tolist() == [0.5] * 3


def test_no_grades_is_an_error(inverted: Projections) -> None:
    g = one_group(inverted, utility=None)
    with pytest.raises(GvstoreError, match="learns from graded samples"):
        Weigher(g).weights(parse("learned(lr,mc,cot_score)"))


def test_works_in_sweeps_and_combinations(inverted: Projections) -> None:
    tmpl = parse_template("learned(lr,mc,cot_score):quantile")
    res = sweep(Dataset(inverted), tmpl, [0.0, 0.5], resamples=0)[0]
    assert [p.gap for p in res.points] == [0.0, 0.5]
    assert res.points[1].spec == "learned(lr,mc,cot_score):quantile=0.5"
    r = gap_table(Dataset(inverted), [parse("and(learned(nb,mc,cot_score):folds=4,mc:tau=0)")],
                  resamples=0)[0]
    assert r.gap == 0.5


def test_export_and_weight_records(inverted: Projections, tmp_path: Path) -> None:
    from gvstore.analysis.export import export_sft
    from gvstore.steps.weights import weight_records

    store = inverted.store
    rep = export_sft(store, parse("learned(lr,mc,cot_score)"), tmp_path / "out.jsonl")
    assert rep.lines == 40 and rep.prompts == 20
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(x["messages"][1]["content"].endswith(("/0", "/1")) for x in lines)
    recs = weight_records(store, [parse("learned(lr,mc,cot_score)")])
    assert len(recs) == 80 and {r.spec for r in recs} == {"learned(lr,mc,cot_score):tau=0.5"}
    assert sum(r.weight > 0.5 for r in recs) == 40


def test_cli_gap_and_ensembles(inverted: Projections, tmp_path: Path) -> None:
    from gvstore.cli.app import app

    root = str(inverted.store.root)
    res = CliRunner().invoke(app, ["--store", root, "gap", "learned(lr,mc,cot_score)",
                                   "--json", "--resamples", "50"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)["results"][0]
    assert row["spec"] == "learned(lr,mc,cot_score):tau=0.5" and row["gap"] == 0.5
    png = tmp_path / "ens.png"
    res = CliRunner().invoke(app, ["--store", root, "ensembles", "mc", "cot_score",
                                   "--folds", "4", "--resamples", "50", "--json",
                                   "--plot", str(png)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["results"]
    assert [r["candidate"] for r in rows] == ["learned lr", "learned nb", "best single",
                                              "best hand-made"]
    assert png.stat().st_size > 0
    res = CliRunner().invoke(app, ["--store", root, "ensembles", "mc", "cot_score"])
    assert res.exit_code == 0 and "best hand-made" in res.output
    res = CliRunner().invoke(app, ["--store", root, "ensembles", "mc", "--folds", "1"])
    assert res.exit_code == 1 and "--folds takes a whole number from 2 to 1000, not 1" in res.output


def test_learned_rule_chosen_or_fixed(inverted: Projections) -> None:
    ds = Dataset(inverted)
    chosen = compare(ds, ("mc", "cot_score"), Settings(folds=4, resamples=0))[0]
    # the first quantile of the grid that keeps only the top two: ceil(3q) = 2 from q = 0.35
    assert chosen.choices == ["learned(lr,mc,cot_score):quantile=0.35,folds=4"] * 4
    assert chosen.spec == "every fold: learned(lr,mc,cot_score):quantile=0.35,folds=4"
    fixed = compare(ds, ("mc", "cot_score"),
                    Settings(folds=4, rule=Rule("tau", 0.5), resamples=0))[0]
    assert fixed.spec == "learned(lr,mc,cot_score):tau=0.5,folds=4" and fixed.choices == []
    assert chosen.gap == fixed.gap == 0.5


def test_learned_choice_never_reads_its_fold(tmp_path: Path) -> None:
    """Grades of one fold changed: that fold's chosen quantile (and model) stay."""
    cfg = Settings(folds=4, resamples=0, grid=11)
    a = build_inverted(tmp_path / "a")
    g = one_group(a)
    fold = fold_of(20, 4, 0)
    b = StoreBuilder(tmp_path / "b")
    mine = {handle(b.prompt(f"p{i:02d}").id) for i in range(20)}
    in0 = [i for i in range(20) if fold[np.searchsorted(g.prompts, handle(
        b.prompt(f"p{i:02d}").id))] == 0]
    assert mine == set(g.prompts.tolist()) and in0
    for i in range(20):
        u = [1, 1, 0, 0] if i not in in0 else [0, 1, 1, 0]
        gens = b.gens(b.prompt(f"p{i:02d}"), u)
        b.scores(gens, "cot_score", [1, 2, 8, 9])
        b.scores(gens, "mc", MC[i % 2])
    ra = compare(Dataset(a), ("mc", "cot_score"), cfg)[0]
    rb = compare(Dataset(b.projections()), ("mc", "cot_score"), cfg)[0]
    assert ra.choices[0] == rb.choices[0]


def test_ensembles_small_and_single_method(tmp_path: Path) -> None:
    """Fewer prompts than folds, one method, a null and a single-sample prompt: no crash."""
    b = StoreBuilder(tmp_path / "s")
    b.scores(b.gens(b.prompt("a"), [1, 0, 0]), "mc", [0.9, None, 0.1])
    b.scores(b.gens(b.prompt("b"), [1]), "mc", [0.3])
    rows = compare(Dataset(b.projections()), ("mc",), Settings(folds=5, resamples=20))
    assert [r.candidate for r in rows] == ["learned lr", "learned nb", "best single"]
    for r in rows:
        assert r.prompts == 2 and sum(1 for c in r.choices if c) == 2  # 3 folds hold none
    single = rows[2]
    # each prompt's fold chooses on the other prompt alone. b (one sample) gives every
    # candidate 0, so a's fold takes the first, mc:quantile=0: it keeps 0.9 and 0.1 (the null
    # is rejected), acc_w 1/2 against acc 1/3: +1/6. On a, quantile=0 gains 1/6 and any q > 0
    # keeps 0.9 alone, +2/3: b's fold takes the first such, 0.05, and gains 0 on b.
    assert sorted(c for c in single.choices if c) == ["mc:quantile=0", "mc:quantile=0.05"]
    assert single.gap == pytest.approx((1 / 6 + 0) / 2)
    with pytest.raises(GvstoreError, match="at least 2 points"):
        compare(Dataset(b.projections()), ("mc",), Settings(grid=1))


def test_training_and_scored_prompts_never_meet(inverted: Projections,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A spy on every fit: the prompts a model is trained on and those it scores are apart,
    and together they are every prompt."""
    from gvstore.analysis import learned

    real_features, real_fit = learned.features, learned.fit_predict
    seen: list[tuple[set[int], set[int]]] = []

    def tagged(weigher: Weigher, spec: Learned) -> np.ndarray:
        return np.column_stack([real_features(weigher, spec), weigher.group.pidx])

    def spy(model: str, x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
        seen.append((set(x[:, -1].astype(int).tolist()), set(x_new[:, -1].astype(int).tolist())))
        return real_fit(model, x[:, :-1], y, x_new[:, :-1])

    monkeypatch.setattr(learned, "features", tagged)
    monkeypatch.setattr(learned, "fit_predict", spy)
    g = one_group(inverted)
    learned_scores(g, "learned(nb,mc,cot_score):folds=3,seed=5")
    assert len(seen) == 3
    for train, scored in seen:
        assert not train & scored and train | scored == set(range(20))
    assert set().union(*(s for _, s in seen)) == set(range(20))
