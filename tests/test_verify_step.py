"""The verify step with a fake back end: keys, idempotence, repeats, templates, null scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FakeBackend, StoreBuilder

from gvstore.backends.base import Sample
from gvstore.digest import digest
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Prompt, Sampling, Verification, seal
from gvstore.steps.verify import VerifySpec, run, select
from gvstore.store import Store
from gvstore.tasks.registry import get_task
from gvstore.verifiers import get_template
from gvstore.verifiers.common import problem_text
from gvstore.verifiers.mc import mc_answers
from gvstore.verifiers.registry import get_method, method_names
from gvstore.verifiers.templates import FAMILIES, Template

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ["Looks right.\nCorrectness: correct\nScore: 9", "Correctness: incorrect\nScore: 2",
           "I am not sure.", "Score: 12"]


def canned() -> FakeBackend:
    """Sample outputs cycle through OUTPUTS by seed; ``loglik`` is fixed."""
    return FakeBackend(
        on_sample=lambda r: Sample(OUTPUTS[r.seed % len(OUTPUTS)], 9, "stop"),
        on_loglik=lambda r: (-0.5, 1) if r.continuation == "Correct" else (-1.5, 2))


def build(store: Store, prompts: int = 3, n: int = 4) -> list[Generation]:
    task = get_task("arith")
    b = StoreBuilder(store, "arith")
    gens = []
    for item in task.items()[:prompts]:
        p = b.add(task.prompt_record(item))
        gens += b.gens(p, n, model="gen", text=" The answer is {i}. ")
    b.write("generate")
    return gens


def spec(method: str, **kw: object) -> VerifySpec:
    return VerifySpec(method=method, verifier="judge", verifier_digest="sha256:judge",  # type: ignore[arg-type]
                      backend="fake", sampling=Sampling(temperature=0.7, max_tokens=32),
                      batch_size=5, **kw)


def verifications(store: Store) -> list[Verification]:
    return [v for v in store.records(["verification"]) if isinstance(v, Verification)]


@pytest.mark.parametrize("method", ["mc", "cot_binary", "cot_score"])
def test_idempotent_second_run_calls_nothing(tmp_path: Path, method: str) -> None:
    store = Store(tmp_path)
    build(store)
    fake = canned()
    s1 = run(store, "verify", select(store, "arith"), spec(method), fake.factory)
    per = 2 if method == "mc" else 1  # mc: one loglik request per answer
    assert (s1.made, s1.requested, fake.calls) == (12, 12, 12 * per)
    s2 = run(store, "verify", select(store, "arith"), spec(method), fake.factory)
    assert (s2.made, s2.present, fake.calls, fake.factory_calls) == (0, 12, 12 * per, 1)
    assert s2.statuses == s1.statuses and s2.histogram == s1.histogram
    assert len(verifications(store)) == 12 and store.verify().ok


def test_mc_records_both_probabilities(tmp_path: Path) -> None:
    store = Store(tmp_path)
    build(store, prompts=1, n=2)
    run(store, "verify", select(store, "arith"), spec("mc"), canned().factory)
    for v in verifications(store):
        assert v.sampling is None and v.seed == 0 and v.sample_index == 0
        assert v.p_correct == pytest.approx(0.6065306597) and v.p_incorrect == pytest.approx(
            0.2231301601)
        assert v.score == pytest.approx(v.p_correct / (v.p_correct + v.p_incorrect))
        raw = json.loads(v.raw)
        assert raw["correct"] == {"continuation": "Correct", "loglik": -0.5, "tokens": 1}
        assert raw["incorrect"]["tokens"] == 2
        assert v.template == digest(get_template("mc", "arith").text)


def test_mc_refuses_repeats() -> None:
    with pytest.raises(GvstoreError, match="deterministic"):
        spec("mc", repeats=3).check()


def test_cot_records_unparseable_outputs_with_null_scores(tmp_path: Path) -> None:
    store = Store(tmp_path)
    build(store, prompts=2, n=4)
    fake = canned()
    s = run(store, "verify", select(store, "arith"), spec("cot_score", repeats=3), fake.factory)
    recs = verifications(store)
    assert len(recs) == s.made == 2 * 4 * 3  # m = 3 repeats, none dropped
    assert {v.sample_index for v in recs} == {0, 1, 2}
    assert len({v.seed for v in recs}) == len(recs)
    by_status: dict[str, set[float | None]] = {}
    for v in recs:
        by_status.setdefault(v.parse_status, set()).add(v.score)
        assert v.raw in OUTPUTS and v.sampling == Sampling(temperature=0.7, max_tokens=32)
    assert by_status.get("ok", {9.0, 2.0}) <= {9.0, 2.0}
    for status in ("no_verdict", "out_of_range"):
        assert by_status.get(status, {None}) == {None}
    assert s.parse_failure_rate == pytest.approx(
        sum(v.score is None for v in recs) / len(recs))
    assert sum(s.histogram.values()) == sum(v.score is not None for v in recs)


def test_prompt_shows_the_question_without_exemplars(tmp_path: Path) -> None:
    store = Store(tmp_path)
    gens = build(store, prompts=1, n=1)
    fake = canned()
    run(store, "verify", select(store, "arith"), spec("cot_binary"), fake.factory)
    (text,) = fake.prompts
    question = get_task("arith").items()[0].question
    assert f"Arithmetic problem:\n{question}\n\nSolution:\n{gens[0].text.strip()}" in text
    assert text.count("What is") == 1  # the k-shot exemplars are not shown
    assert "Correctness: correct" in text


@pytest.mark.parametrize("task", ["arith", "gsm8k", "math", "nq_open", "sudoku"])
def test_problem_text_cuts_the_question_of_every_task(task: str) -> None:
    t = get_task(task)
    p = Prompt(task=task, item_id="x", text=t.instruction + "\n\n" + t.question_format.format(
        question="THE QUESTION"), reference="r")
    assert problem_text(p) == "THE QUESTION"
    assert problem_text(Prompt(task="unknown", item_id="x", text=" raw ", reference="")) == "raw"


def test_templates_differ_by_method_family_and_kind() -> None:
    templates = [t for m in method_names() for t in get_method(m).templates.values()]
    digests = {t.digest for t in templates}
    assert len(digests) == len(method_names()) * len(FAMILIES)
    assert get_template("mc", "gsm8k") is get_template("mc", "math")
    assert get_template("mc", "arith", "base").digest != get_template("mc", "arith").digest
    assert get_template("mc", "arith", "base").text.endswith("Verdict:")
    assert mc_answers("base") == (" Correct", " Incorrect")
    assert get_template("cot_score", "unknown-task").family == "generic"
    assert "Sudoku" in get_template("cot_binary", "sudoku").text
    for t in templates:
        fields = ("{solution_a}", "{solution_b}") if t.method == "tournament" else (
            "{solution}",)
        assert "{problem}" in t.text and all(f in t.text for f in fields)
    with pytest.raises(GvstoreError, match="unknown verification method"):
        get_template("vote", "arith")


def test_a_changed_template_verifies_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    build(store, prompts=1, n=2)
    fake = canned()
    run(store, "verify", select(store, "arith"), spec("cot_binary"), fake.factory)
    old = get_method("cot_binary").templates["arith"]
    monkeypatch.setitem(get_method("cot_binary").templates, "arith",
                        Template(old.method, old.family, old.text + "\nBe brief."))
    s = run(store, "verify", select(store, "arith"), spec("cot_binary"), fake.factory)
    assert s.made == 2 and len({v.template for v in verifications(store)}) == 2


def test_cross_verifiers_are_kept_apart(tmp_path: Path) -> None:
    store = Store(tmp_path)
    build(store, prompts=1, n=2)
    run(store, "verify", select(store, "arith"), spec("cot_binary"), canned().factory)
    other = VerifySpec(method="cot_binary", verifier="judge2", verifier_digest="sha256:j2",
                       backend="fake", sampling=Sampling(temperature=0.7, max_tokens=32))
    s = run(store, "verify", select(store, "arith"), other, canned().factory)
    assert s.made == 2
    assert {(v.verifier, v.verifier_digest) for v in verifications(store)} == {
        ("judge", "sha256:judge"), ("judge2", "sha256:j2")}


def test_selection_filters_and_orders(tmp_path: Path) -> None:
    store = Store(tmp_path)
    build(store, prompts=2, n=3)
    with store.writer("other") as w:  # a generation whose prompt is not in the store
        w.add(seal(Generation(prompt_id="sha256:none", task="arith", model="gen",
                              sample_index=0, seed=0, text="x")))
    sel = select(store, "arith")
    assert len(sel.generations) == 6 and sel.no_prompt == 1
    items = [sel.prompts[g.prompt_id].item_id for g in sel.generations]
    assert items == sorted(items)
    assert select(store, "arith", generator="nobody").generations == []
    assert select(store, "arith", round_=1).generations == []


def test_histograms() -> None:
    assert get_method("cot_binary").histogram([1.0, 0.0, None, 1.0]) == {"0": 1, "1": 2}
    h = get_method("cot_score").histogram([8.5, 8.0, 10.0, None])
    assert h["8"] == 2 and h["10"] == 1 and sum(h.values()) == 3
    h = get_method("mc").histogram([0.0, 0.05, 0.95, 1.0])
    assert h["0.0-0.1"] == 2 and h["0.9-1.0"] == 2


def test_stage_reports_missing_generations_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["base"]["store"] = str(tmp_path / "store")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    spec_ = importlib.util.spec_from_file_location("stage_verify", REPO / "stages/verify.py")
    assert spec_ is not None and spec_.loader is not None
    stage = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(stage)
    code = stage.main(["--method", "mc", "--task", "arith", "--params",
                       str(tmp_path / "params.yaml"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "no generations of task 'arith'" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        stage.main(["--method", "vote", "--task", "arith"])
