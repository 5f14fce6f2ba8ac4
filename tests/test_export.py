"""SFT and preference-pair exports, and the idempotent Weight records step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import StoreBuilder

from gvstore.analysis.export import export_pairs, export_sft
from gvstore.analysis.frames import Filters
from gvstore.analysis.specs import parse
from gvstore.errors import GvstoreError
from gvstore.records import Weight
from gvstore.replay import Projections, handle
from gvstore.steps.weights import materialise, weight_records
from gvstore.store import Store


@pytest.fixture
def built(tmp_path: Path) -> tuple[StoreBuilder, dict[str, list[str]]]:
    b = StoreBuilder(tmp_path / "s")
    ids: dict[str, list[str]] = {}
    p = b.prompt("a")
    g = b.gens(p, [1, 0, 0])
    b.scores(g, "mc", [0.9, 0.7, 0.1])
    ids["a"] = [x.id for x in g]
    q = b.prompt("b")
    h = b.gens(q, [0, 1])
    b.scores(h, "mc", [0.2, 0.3])  # nothing passes tau=0.5
    ids["b"] = [x.id for x in h]
    ids["prompts"] = [p.id, q.id]
    b.projections()
    return b, ids


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_sft(built: tuple[StoreBuilder, dict[str, list[str]]], tmp_path: Path) -> None:
    b, ids = built
    out = tmp_path / "sft.jsonl"
    rep = export_sft(b.store, parse("mc:tau=0.5"), out)
    assert (rep.lines, rep.prompts, rep.skipped_prompts, rep.verifier) == (2, 1, 1, "v")
    lines = _lines(out)
    assert [x["generation_id"] for x in lines] == ids["a"][:2]  # highest weight first
    assert lines[0]["messages"] == [
        {"role": "user", "content": "question a"},
        {"role": "assistant", "content": "answer a/g/0"}]
    assert lines[0]["prompt_id"] == ids["prompts"][0] and lines[0]["weight"] == 1.0
    assert not list(tmp_path.glob(".*.part"))


def test_pairs_use_the_verifier_only(built: tuple[StoreBuilder, dict[str, list[str]]],
                                     tmp_path: Path) -> None:
    b, ids = built
    out = tmp_path / "pairs.jsonl"
    rep = export_pairs(b.store, parse("mc:tau=0.5"), out)
    assert (rep.lines, rep.skipped_prompts) == (1, 1)
    (line,) = _lines(out)
    # chosen: kept with the highest weight (ties: lowest sample index); rejected: a w = 0
    # sample (the lowest sample index among them) — never by the ground truth.
    assert line["chosen_id"] == ids["a"][0] and line["rejected_id"] == ids["a"][2]
    assert line["prompt"] == "question a" and line["rejected"] == "answer a/g/2"
    assert (line["chosen_weight"], line["rejected_weight"]) == (1.0, 0.0)
    # exp weights: every sample has a weight; rejected is the lowest-weighted one
    export_pairs(b.store, parse("mc:exp=0.5"), out)
    lines = _lines(out)
    assert len(lines) == 2
    assert lines[0]["rejected_weight"] < lines[0]["chosen_weight"]


def test_export_needs_one_verifier(built: tuple[StoreBuilder, dict[str, list[str]]],
                                   tmp_path: Path) -> None:
    b, _ = built
    g = list(b.store.records(kinds=("generation",)))
    b.scores(g, "mc", [0.5] * len(g), verifier="other")  # type: ignore[arg-type]
    b.projections()
    with pytest.raises(GvstoreError, match="several verifiers"):
        export_sft(b.store, parse("mc:tau=0.5"), tmp_path / "x.jsonl")
    rep = export_sft(b.store, parse("mc:tau=0.5"), tmp_path / "x.jsonl",
                     filters=Filters(verifiers=("other",)))
    assert rep.lines == 5


def test_weights_step_is_idempotent(built: tuple[StoreBuilder, dict[str, list[str]]]) -> None:
    b, ids = built
    specs = [parse("mc:tau=0.5"), parse("mc:quantile=0.5")]
    rep = materialise(b.store, specs)
    assert (rep.computed, rep.written, rep.present) == (10, 10, 0)
    again = materialise(b.store, specs)
    assert (again.computed, again.written, again.present) == (10, 0, 10)
    recs = [r for r in Store(b.store.root).records(kinds=("weight",))]
    assert all(isinstance(r, Weight) for r in recs)
    by = {(r.generation_id, r.spec): r for r in recs}  # type: ignore[union-attr]
    assert by[(ids["a"][1], "mc:tau=0.5")].weight == 1.0
    assert by[(ids["a"][2], "mc:tau=0.5")].weight == 0.0
    assert by[(ids["b"][1], "mc:quantile=0.5")].weight == 1.0
    vers = {handle(v.generation_id): v.id  # type: ignore[union-attr]
            for v in b.store.records(kinds=("verification",))}
    w = by[(ids["a"][0], "mc:tau=0.5")]
    assert w.inputs == (vers[handle(ids["a"][0])],)
    # the projections see them too
    assert Projections(b.store).weights.height == 10


def test_weight_inputs_of_a_tournament(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    p = b.prompt("p")
    g = b.gens(p, [1, 0, 0, 0])
    b.match(p, g[0], g[1], g[0], 0)
    b.match(p, g[2], g[3], g[3], 0)
    b.match(p, g[0], g[3], g[0], 1)
    b.projections()
    recs = weight_records(b.store, [parse("tournament:rounds=1")])
    assert [r.weight for r in recs] == [1.0, 0.0, 0.0, 1.0]
    assert [len(r.inputs) for r in recs] == [1, 1, 1, 1]  # round-0 matches only
    recs = weight_records(b.store, [parse("tournament:rounds=2")])
    assert [len(r.inputs) for r in recs] == [2, 1, 1, 2]


def test_ground_truth_as_verifier(built: tuple[StoreBuilder, dict[str, list[str]]],
                                  tmp_path: Path) -> None:
    # spec None: keep what the grader marks correct (a: sample 0; b: sample 1), whatever the
    # verifier said (b's scores keep nothing under mc:tau=0.5).
    b, ids = built
    rep = export_sft(b.store, None, tmp_path / "sft.jsonl")
    assert (rep.spec, rep.verifier, rep.lines, rep.prompts) == ("ground_truth", "ground_truth",
                                                                2, 2)
    # (lines come in prompt-handle order)
    assert {x["generation_id"] for x in _lines(tmp_path / "sft.jsonl")} == \
        {ids["a"][0], ids["b"][1]}
    export_pairs(b.store, None, tmp_path / "pairs.jsonl")
    pairs = _lines(tmp_path / "pairs.jsonl")
    assert {(x["chosen_id"], x["rejected_id"]) for x in pairs} == \
        {(ids["a"][0], ids["a"][1]), (ids["b"][1], ids["b"][0])}
