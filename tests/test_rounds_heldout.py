"""Held-out prompts of the rounds (``rounds.heldout``): checked disjoint from the training
prompts, generated and verified in every round, never in a training set, reported apart.

The built store (``heldout`` fixture), task ``arith``, training prompts A = L1-000, B = L1-001
(``rounds.prompts``: the first 2), held-out C = L1-002, D = L1-003 (offset 2), n = 2; each sample
is (strict, flexible, extracted) with its self-verifier's cot_binary verdict:

round 0, m0 (verified by m0)             round 1, m1 (verified by m1)
  A: (1,1,a) (0,0,b)  [1, 0]               A: (1,1,a) (1,1,a)  [1, 1]
  B: (0,0,c) (0,1,d)  [1, 1]               B: (1,1,c) (0,0,d)  [1, 0]
  C: (0,0,e) (1,1,e)  [1, 0]               C: (0,1,e) (0,0,g)  [1, 1]
  D: (1,1,f) (1,1,f)  [0, 1]               D: (0,0,f) (0,0,h)  [0, 1]

Under cot_binary:tau=1 a prompt keeps its samples with verdict 1 (acc_w: their mean utility;
diff = acc_w - acc; rel = diff / (1 - acc), 0 where acc = 1):

round 0  A acc 1/2 acc_w 1 diff 1/2 rel 1 | B 0 0 0 0 | C 1/2 0 -1/2 -1 | D 1 1 0 0
round 1  A 1 1 0 0 | B 1/2 1 1/2 1 | C 0 0 0 0 | D 0 0 0 0

so on the training prompts round 1 looks better (accuracy 0.25 -> 0.75) while on the held-out
prompts it is worse (0.75 -> 0): what memorised answers look like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.params import Params, load
from gvstore.records import Prompt, seal

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
M0, M1 = "smollm2-135m-instruct", "smollm2-135m-instruct-r1"
TRAIN = {"split": "test", "prompts": 2}
HELD = {"split": "test", "prompts": 2, "offset": 2}


def write_params(tmp_path: Path, **rounds: Any) -> Path:
    """configs/rounds-arith.yaml with one trained round, its store and folders under
    ``tmp_path``, and ``rounds`` over its rounds section."""
    raw = yaml.safe_load((REPO / "configs" / "rounds-arith.yaml").read_text())
    raw["base"]["store"] = str(tmp_path / "store")
    raw["report"].update(passk=[1, 2], resamples=1000)
    raw["rounds"].update(steps={M1: M0}, dir=str(tmp_path / "rounds"), prompts=TRAIN,
                         heldout=HELD, folders={M0: f"data/models/{M0}",
                                                M1: str(tmp_path / "rounds" / "models" / M1)})
    raw["rounds"].update(rounds)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def arith_prompt(item_id: str) -> Prompt:
    from gvstore.tasks.registry import get_task

    task = get_task("arith")
    (item,) = [it for it in task.items("test") if it.item_id == item_id]
    return seal(task.prompt_record(item, None))


ROUNDS: dict[str, dict[str, tuple[list[tuple[float, float, str]], list[float]]]] = {
    M0: {"L1-000": ([(1, 1, "a"), (0, 0, "b")], [1, 0]),
         "L1-001": ([(0, 0, "c"), (0, 1, "d")], [1, 1]),
         "L1-002": ([(0, 0, "e"), (1, 1, "e")], [1, 0]),
         "L1-003": ([(1, 1, "f"), (1, 1, "f")], [0, 1])},
    M1: {"L1-000": ([(1, 1, "a"), (1, 1, "a")], [1, 1]),
         "L1-001": ([(1, 1, "c"), (0, 0, "d")], [1, 0]),
         "L1-002": ([(0, 1, "e"), (0, 0, "g")], [1, 1]),
         "L1-003": ([(0, 0, "f"), (0, 0, "h")], [0, 1])},
}


@pytest.fixture
def heldout(tmp_path: Path) -> tuple[Params, dict[str, list[str]]]:
    """The params and the store of the module doc; the generation ids of each (model, item)."""
    params = load(write_params(tmp_path))
    b = StoreBuilder(Path(params.base.store), "arith")
    ids: dict[str, list[str]] = {}
    for rnd, (model, prompts) in enumerate(ROUNDS.items()):
        for item, (samples, verdicts) in prompts.items():
            p = b.add(arith_prompt(item))
            g = b.gens(p, samples, model=model, rnd=rnd)
            b.scores(g, "cot_binary", verdicts, verifier=model)
            ids[f"{model}/{item}"] = [x.id for x in g]
    b.write("t")
    return params, ids


# --- params ------------------------------------------------------------------------------


def test_heldout_sets_are_disjoint_or_refused_in_one_line(tmp_path: Path) -> None:
    from gvstore.steps import rounds

    params = load(write_params(tmp_path))
    assert rounds.prompt_set(params).items == ["L1-000", "L1-001"]
    held = rounds.heldout_set(params)
    assert held is not None and held.items == ["L1-002", "L1-003"]
    assert not held.prompt_ids & rounds.prompt_set(params).prompt_ids
    # offset 1 shares L1-001 with the training prompts: validate (with data) and every step
    # that reads the held-out set refuse it, naming how many
    bad = write_params(tmp_path, heldout={"split": "test", "prompts": 3, "offset": 1})
    res = runner.invoke(app, ["params", "validate", str(bad)])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "rounds.heldout: 1 of its 3 prompts are training prompts too " \
        "(rounds.prompts, split test; first 'L1-001')" in lines[0], res.stderr
    with pytest.raises(GvstoreError, match="1 of its 3 prompts are training prompts"):
        rounds.heldout_set(load(bad))
    # no held-out set: None, and validate says nothing of one
    plain = load(write_params(tmp_path, heldout=None))
    assert plain.rounds.heldout is None and rounds.heldout_set(plain) is None


def test_a_stratified_heldout_after_a_stratified_training_draw_is_disjoint(
        tmp_path: Path) -> None:
    from gvstore.steps import rounds

    params = load(write_params(
        tmp_path, prompts={"split": "test", "prompts": 10, "select": "stratified"},
        heldout={"split": "test", "prompts": 10, "offset": 10, "select": "stratified"}))
    train, held = rounds.prompt_set(params), rounds.heldout_set(params)
    assert held is not None and len(train.items) == len(held.items) == 10
    assert not set(train.items) & set(held.items)
    # each draw spreads over the 5 levels: 2 items of each
    for s in (train, held):
        assert sorted(i.split("-")[0] for i in s.items) == [f"L{k}" for k in range(1, 6)
                                                            for _ in range(2)]


def test_a_heldout_range_is_bounded_like_other_entries(tmp_path: Path) -> None:
    bad = write_params(tmp_path, heldout={"split": "test", "prompts": 0})
    res = runner.invoke(app, ["params", "validate", "--no-data", str(bad)])
    assert res.exit_code == 1 and "rounds.heldout.prompts must be >= 1" in res.stderr
    bad = write_params(tmp_path, heldout={"split": "dev"})
    res = runner.invoke(app, ["params", "validate", "--no-data", str(bad)])
    assert res.exit_code == 1 and "no split 'dev'" in res.stderr


# --- the steps ---------------------------------------------------------------------------


def test_training_sets_never_see_a_heldout_sample(
        heldout: tuple[Params, dict[str, list[str]]]) -> None:
    import json

    import msgspec

    from gvstore.steps import rounds

    params, ids = heldout
    # self verifier, cot_binary:tau=1: A keeps its sample 0, B both samples; C's sample 0 and
    # D's sample 1 have verdict 1 too but are held out.
    rep = rounds.training_set(params, M1)
    lines = [json.loads(ln) for ln in Path(rep.path).read_text().splitlines()]
    want = {ids[f"{M0}/L1-000"][0], *ids[f"{M0}/L1-001"]}
    assert {ln["generation_id"] for ln in lines} == want and rep.lines == 3
    assert {ln["prompt_id"] for ln in lines} == rounds.prompt_set(params).prompt_ids
    # the oracle keeps strict 1: A's sample 0 only (C's sample 1 and D's two are held out)
    raw = msgspec.to_builtins(params)
    raw["rounds"]["verifier"] = "ground_truth"
    oracle = msgspec.convert(raw, Params)
    rep = rounds.training_set(oracle, M1)
    lines = [json.loads(ln) for ln in Path(rep.path).read_text().splitlines()]
    assert [ln["generation_id"] for ln in lines] == [ids[f"{M0}/L1-000"][0]]


def test_generate_and_verify_cover_both_sets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gvstore.steps.generate as generate
    import gvstore.steps.verify as verify
    from gvstore.steps import rounds
    from gvstore.steps.generate import GenerateSummary

    params = load(write_params(tmp_path))
    seen: dict[str, Any] = {}

    def fake_generate(*args: Any, **kw: Any) -> GenerateSummary:
        seen["entry"], seen["more"] = args[3], kw["more"]
        return GenerateSummary()

    def fake_verify(*args: Any, **kw: Any) -> None:
        seen["prompt_ids"] = kw["prompt_ids"]

    monkeypatch.setattr(generate, "generate_task", fake_generate)
    monkeypatch.setattr(verify, "verify_with_params", fake_verify)
    rounds.generate(params, M0)
    assert seen["entry"] == params.rounds.prompts and seen["more"] == [params.rounds.heldout]
    rounds.verify(params, M0)
    held = rounds.heldout_set(params)
    assert held is not None
    assert seen["prompt_ids"] == rounds.prompt_set(params).prompt_ids | held.prompt_ids
    assert len(seen["prompt_ids"]) == 4


def test_generate_task_samples_the_more_entries_in_the_same_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from helpers import FakeBackend

    import gvstore.backends
    import gvstore.models
    from gvstore.params import SampleParams, TaskEntry
    from gvstore.replay import Projections
    from gvstore.steps.generate import generate_task
    from gvstore.store import Store

    fake = FakeBackend(on_sample=lambda r: "The answer is 2.")
    monkeypatch.setattr(gvstore.models, "resolve", lambda spec, d: SimpleNamespace(digest="d"))
    monkeypatch.setattr(gvstore.backends, "get_backend", lambda *a, **k: fake.factory())
    store = Store(tmp_path / "s")
    load_params = load(write_params(tmp_path))
    s = generate_task(store, load_params.model(M0), "arith", TaskEntry(prompts=2),
                      SampleParams(n=2, batch_size=4), seed=0, round_=0, models_dir=tmp_path,
                      folder="g", more=[TaskEntry(prompts=1, offset=5)])
    assert (s.prompts, s.made, fake.factory_calls) == (3, 6, 1)  # one back end, one loop
    proj = Projections(store)
    items = proj.generations.join(proj.prompts, on="prompt")["item_id"].to_list()
    assert sorted(items) == ["L1-000"] * 2 + ["L1-001"] * 2 + ["L1-005"] * 2


# --- the report --------------------------------------------------------------------------


def test_round_report_on_training_and_heldout_prompts_by_hand(
        heldout: tuple[Params, dict[str, list[str]]]) -> None:
    from gvstore.steps import rounds

    params, _ = heldout
    rep = rounds.report(params)
    held = rep.heldout
    assert held is not None and held.heldout is None
    assert (rep.prompts, held.prompts) == (2, 2)
    train0, train1 = rep.rows
    held0, held1 = held.rows
    # training prompts A, B
    assert (train0.acc_strict, train0.acc_flexible) == pytest.approx((0.25, 0.5))
    assert (train1.acc_strict, train1.acc_flexible) == pytest.approx((0.75, 0.75))
    assert (train0.gap, train0.rel_gap, train1.gap, train1.rel_gap) == pytest.approx(
        (0.25, 0.5, 0.25, 0.5))
    assert (train0.gap_lo, train0.gap_hi) == pytest.approx((0.0, 0.5))  # the two prompts' diffs
    assert train0.pass_at_k == pytest.approx({1: 0.25, 2: 0.5})
    assert train1.pass_at_k == pytest.approx({1: 0.75, 2: 1.0})
    assert (train0.effective_answers, train1.effective_answers) == pytest.approx((2.0, 1.5))
    # held-out prompts C, D
    assert (held0.acc_strict, held0.acc_flexible) == pytest.approx((0.75, 0.75))
    assert (held1.acc_strict, held1.acc_flexible) == pytest.approx((0.0, 0.25))
    assert (held0.gap, held0.rel_gap, held1.gap, held1.rel_gap) == pytest.approx(
        (-0.25, -0.5, 0.0, 0.0))
    assert (held0.gap_lo, held0.gap_hi) == pytest.approx((-0.5, 0.0))
    assert held0.pass_at_k == pytest.approx({1: 0.75, 2: 1.0})
    assert held1.pass_at_k == pytest.approx({1: 0.0, 2: 0.0})
    assert (held0.effective_answers, held1.effective_answers) == pytest.approx((1.0, 2.0))
    assert rep.trend == pytest.approx({"acc_strict": 0.5, "acc_flexible": 0.25, "gap": 0.0,
                                       "pass@1": 0.5, "pass@2": 0.5, "effective_answers": -0.5})
    assert held.trend == pytest.approx({"acc_strict": -0.75, "acc_flexible": -0.5, "gap": 0.25,
                                        "pass@1": -0.75, "pass@2": -1.0,
                                        "effective_answers": 1.0})
    assert (rep.diversity, held.diversity) == ("decreasing", "increasing")


def test_json_keeps_the_training_keys_and_adds_heldout_beside(
        heldout: tuple[Params, dict[str, list[str]]]) -> None:
    import json

    from gvstore.steps import rounds

    params, _ = heldout
    both = rounds.report(params).to_dict()
    raw = load(write_params(Path(params.base.store).parent, heldout=None))
    alone = rounds.report(raw).to_dict()
    assert "heldout" not in alone
    assert {k: v for k, v in both.items() if k != "heldout"} == alone
    assert set(both["heldout"]) == set(alone)
    assert both["heldout"]["rows"][0]["acc_strict"] == 0.75
    json.dumps(both, allow_nan=False)


def test_views_show_train_and_heldout_side_by_side(
        heldout: tuple[Params, dict[str, list[str]]], tmp_path: Path) -> None:
    import io

    from rich.console import Console
    from rich.table import Table

    from gvstore.analysis.plots import rounds_figure
    from gvstore.analysis.rounds import write_series
    from gvstore.report import rounds_views
    from gvstore.steps import rounds

    params, _ = heldout
    rep = rounds.report(params)
    out = rounds_views(rep.to_dict())
    table, lines = out[0], out[1:]
    assert isinstance(table, Table)
    headers = [str(c.header) for c in table.columns]
    assert headers[:5] == ["round", "model", "verifier", "set", "prompts"]
    assert [str(c) for c in table.columns[3].cells] == ["train", "held-out"] * 2
    strict = [str(c) for c in table.columns[headers.index("acc strict")].cells]
    assert strict == ["0.2500", "0.7500", "0.7500", "0.0000"]
    console = Console(width=250, record=True, file=io.StringIO())
    console.print(table)
    assert "held-out" in console.export_text()
    assert lines[0].startswith("first to last round (train): acc_strict 0.5000, ")
    assert lines[0].endswith("answer diversity decreasing")
    assert lines[1].startswith("first to last round (held-out): acc_strict -0.7500, ")
    assert lines[1].endswith("answer diversity increasing")
    assert len(lines) == 2  # every round has its gap: no notes
    names = [p.name for p in write_series(rep, tmp_path / "out")]
    assert names == ["rounds.csv", "rounds-passk.csv", "rounds-heldout.csv",
                     "rounds-heldout-passk.csv"]
    held_csv = (tmp_path / "out" / "rounds-heldout.csv").read_text().splitlines()
    assert held_csv[1].startswith(f"0,{M0},{M0},2,0.75,0.75,0.0,-0.25,")
    assert rounds_figure(rep, tmp_path / "out" / "rounds.png").read_bytes()[:4] == b"\x89PNG"


def test_gvstore_rounds_reads_the_heldout_set(
        heldout: tuple[Params, dict[str, list[str]]]) -> None:
    import json

    params, _ = heldout
    path = Path(params.base.store).parent / "params.yaml"
    res = runner.invoke(app, ["rounds", "--params", str(path), "--resamples", "0", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert [r["acc_strict"] for r in d["rows"]] == [0.25, 0.75]
    assert [r["acc_strict"] for r in d["heldout"]["rows"]] == [0.75, 0.0]
    assert d["heldout"]["resamples"] == 0 and d["heldout"]["rows"][0]["gap_lo"] is None


def test_the_study_report_carries_the_heldout_rounds(
        heldout: tuple[Params, dict[str, list[str]]], tmp_path: Path) -> None:
    from gvstore.report import build, views
    from gvstore.store import Store

    params, _ = heldout
    rep = build(Store(params.base.store), params, tmp_path / "reports")
    rounds = rep.metrics["rounds"]
    assert [r["acc_strict"] for r in rounds["rows"]] == [0.25, 0.75]
    assert [r["acc_strict"] for r in rounds["heldout"]["rows"]] == [0.75, 0.0]
    names = {p.name for p in rep.files}
    assert {"rounds-heldout.csv", "rounds-heldout-passk.csv", "rounds.png"} <= names
    assert any(isinstance(v, str) and v.startswith("first to last round (held-out)")
               for v in views(rep.metrics))
