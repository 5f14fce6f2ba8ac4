"""The shared test helpers themselves: the store builder and the fake back end."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FakeBackend, StoreBuilder

from gvstore.backends.base import LoglikRequest, Sample, SampleRequest
from gvstore.records import Grade, Sampling, Verification
from gvstore.steps.verify import VerifySpec, run, select
from gvstore.tasks.registry import get_task


def test_fake_backend_answers_its_queue_in_order_then_its_responder() -> None:
    fake = FakeBackend().enqueue("first", Sample("second", 2, "length"), (-1.0, 3))
    req = SampleRequest("p", Sampling(), seed=0)
    assert fake.factory() is fake and fake.factory_calls == 1
    assert [s.text for s in fake.sample([req, req])] == ["first", "second"]
    assert fake.loglik([LoglikRequest("p", " x")]) == [(-1.0, 3)]
    with pytest.raises(AssertionError, match="no output queued"):
        fake.sample([req])
    with pytest.raises(AssertionError, match="no loglik queued"):
        fake.loglik([LoglikRequest("p", " x")])
    fake.on_sample = lambda r: f"seed {r.seed}"
    assert fake.sample([SampleRequest("q", Sampling(), seed=4)]) == [Sample("seed 4", 2, "stop")]
    assert fake.calls == 6 and fake.prompts == ["p", "p", "p", "q"]
    fake.close()
    assert fake.closed == 1 and fake.model.name == "fake"


def test_the_verify_step_takes_enqueued_verdicts(tmp_path: Path) -> None:
    task = get_task("arith")
    b = StoreBuilder(tmp_path, "arith")
    b.gens(b.add(task.prompt_record(task.items()[0])), 2, model="gen")
    store = b.write("generate")
    fake = FakeBackend().enqueue("Correctness: correct", "Correctness: incorrect")
    spec = VerifySpec(method="cot_binary", verifier="judge", verifier_digest="sha256:judge",
                      backend="fake", sampling=Sampling(max_tokens=8))
    s = run(store, "verify", select(store, "arith"), spec, fake.factory)
    assert s.made == 2 and fake.calls == 2 and not fake.samples
    got = [v.score for v in store.records(["verification"]) if isinstance(v, Verification)]
    assert sorted(x for x in got if x is not None) == [0.0, 1.0]


def test_store_builder_records(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    p = b.prompt("a")
    assert b.prompt("a") is p and b.recs == [p]  # asked again: not queued twice
    g = b.gens(p, [1.0, (0.0, 1.0), (0.0, 0.0, "7"), None], flexible=[0.5, 9, 9, 9])
    assert [(x.sample_index, x.seed, x.text) for x in g] == [
        (i, i, f"answer a/g/{i}") for i in range(4)]
    grades = [r for r in b.recs if isinstance(r, Grade)]
    assert [(x.strict, x.flexible, x.extracted, x.grader) for x in grades] == [
        (1.0, 0.5, None, "t"), (0.0, 1.0, None, "t"), (0.0, 0.0, "7", "t")]
    b.scores(g[:2], "mc", [0.5, None])
    b.repeats(g[:1], "cot_binary", [[None, 1.0]], status="ok")
    v = [r for r in b.recs if isinstance(r, Verification)]
    assert [(x.method, x.sample_index, x.parse_status) for x in v] == [
        ("mc", 0, "ok"), ("mc", 0, "no_verdict"), ("cot_binary", 0, "ok"), ("cot_binary", 1, "ok")]
    m = b.match(p, g[0], g[1], None, 0)
    assert m.winner is None and m.parse_status == "no_verdict"
    proj = b.projections()
    assert b.recs == [] and len(b.store.records()) == 1 + 4 + 3 + 4 + 1
    assert proj.generations.height == 4
