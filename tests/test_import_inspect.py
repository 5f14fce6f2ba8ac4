"""``gvstore import inspect``: logs Inspect itself wrote (tests/data/inspect), through the app.

The committed logs are two runs of make_logs.py's task (6 samples x 3 epochs, mockllm with
fixed answers), one per log format. Scorers: ``match`` (the grade), ``includes`` (C/I: a
cot_binary verifier) and ``reward`` (a number: an mc verifier). ``boom`` errs in epoch 2
(skipped, counted); ``silent`` has no output (imported empty, graded wrong, as Inspect does).
By hand, per prompt (match; reward >= 0.5 kept): 4: 2/3, kept 2 right -> +1/3; add-1: 2/3,
kept 2 right -> +1/3; boom: 1/2, kept 1 right -> +1/2; mul-2: 1/3, kept 1 of 2 right ->
+1/6; silent: 0, nothing kept -> 0; sub-3: 1/3, all kept -> 0. Base 5/12 (Inspect's own
accuracy), gap (4/3)/6 = 2/9. ``hand`` recomputes it from the log's samples.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gvstore.cli.app import app as gvstore_app
from gvstore.records import Generation, Grade, Prompt, Verification
from gvstore.store import Store

DATA = Path(__file__).parent / "data" / "inspect"
(EVAL,) = sorted((DATA / "eval").glob("*.eval"))
(JSON,) = sorted((DATA / "json").glob("*.json"))
HAS_INSPECT = importlib.util.find_spec("inspect_ai") is not None
needs_inspect = pytest.mark.skipif(not HAS_INSPECT, reason="needs the inspect extra")
LETTER = {"C": 1.0, "I": 0.0}


def raw_samples(path: Path) -> list[dict[str, Any]]:
    """The log's samples as plain dicts: the JSON log with json, the .eval with Inspect."""
    if path.suffix == ".json":
        got: list[dict[str, Any]] = json.loads(path.read_text())["samples"]
        return got
    from inspect_ai.log import read_eval_log

    return [s.model_dump() for s in read_eval_log(str(path)).samples or []]


def hand(path: Path, verifier: str, tau: float) -> tuple[float, float, int]:
    """(base, gap, samples) of ``<verifier>:tau=`` computed from the log's samples alone."""
    by: dict[str, list[tuple[float, float]]] = {}
    for s in raw_samples(path):
        if s.get("error"):
            continue
        v = s["scores"][verifier]["value"]
        score = LETTER[v] if isinstance(v, str) else float(v)
        by.setdefault(str(s["id"]), []).append((LETTER[s["scores"]["match"]["value"]], score))
    accs, diffs = [], []
    for pairs in by.values():
        acc = sum(u for u, _ in pairs) / len(pairs)
        kept = [u for u, s in pairs if s >= tau]
        accs.append(acc)
        diffs.append(sum(kept) / len(kept) - acc if kept else 0.0)
    n = sum(len(p) for p in by.values())
    return sum(accs) / len(accs), sum(diffs) / len(diffs), n


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return gvstore_app


def run(app: typer.Typer, store: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["--store", str(store), *args])
    return res.exit_code, res.output


def imported(app: typer.Typer, store: Path, path: Path, *extra: str) -> dict[str, Any]:
    code, out = run(app, store, "import", "inspect", str(path), "--json", *extra)
    assert code == 0, out
    got: dict[str, Any] = json.loads(out)
    return got


def gap(app: typer.Typer, store: Path, spec: str) -> list[dict[str, Any]]:
    code, out = run(app, store, "gap", spec, "--json", "--resamples", "20")
    assert code == 0, out
    results: list[dict[str, Any]] = json.loads(out)["results"]
    return results


def n_records(store: Path) -> int:
    return len(Store(store).records()) if store.exists() else 0


def kinds(store: Path) -> tuple[dict[str, Prompt], dict[str, Generation], dict[str, Grade],
                               list[Verification]]:
    """The store's prompts and generations by id, grades by generation id, verifications."""
    recs = Store(store).records()
    return ({r.id: r for r in recs if isinstance(r, Prompt)},
            {r.id: r for r in recs if isinstance(r, Generation)},
            {r.generation_id: r for r in recs if isinstance(r, Grade)},
            [r for r in recs if isinstance(r, Verification)])


def make_logs() -> Any:
    spec = importlib.util.spec_from_file_location("make_inspect_logs", DATA / "make_logs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_figures(app: typer.Typer, store: Path, log: Path) -> list[dict[str, Any]]:
    """The imported store's gaps equal the hand computation on ``log``; returns them."""
    out = []
    for verifier, spec in (("reward", "mc:tau=0.5"), ("includes", "cot_binary:tau=0.5")):
        (r,) = gap(app, store, spec)
        base, g, n = hand(log, verifier, 0.5)
        assert (r["verifier"], r["prompts"], r["generations"]) == (verifier, 6, n)
        assert r["base"] == pytest.approx(base) and r["gap"] == pytest.approx(g)
        out.append(r)
    return out


@needs_inspect
@pytest.mark.parametrize("log", [EVAL, JSON], ids=["eval", "json"])
def test_gap_equals_hand_computation(app: typer.Typer, tmp_path: Path, log: Path) -> None:
    got = imported(app, tmp_path / "st", log)
    assert (got["rows"], got["errored"], got["unscored"], got["bad"]) == (18, 1, 0, 0)
    assert (got["prompts"], got["samples"], got["no_output"], got["epochs"]) == (6, 17, 3,
                                                                                 [1, 2, 3])
    assert got["skipped_at"] == [f"{log} sample 'boom' epoch 2"]
    assert (got["task"], got["generator"], got["grade"]) == ("arith_mock", "mockllm-model",
                                                             "match")
    assert got["verifiers"] == {"includes": "cot_binary", "reward": "mc"}
    assert got["added"] == {"prompt": 6, "generation": 17, "grade": 17, "verification": 34}
    reward, _ = check_figures(app, tmp_path / "st", log)
    assert reward["base"] == pytest.approx(5 / 12) and reward["gap"] == pytest.approx(2 / 9)
    # the base is Inspect's own accuracy of the grade scorer
    header = json.loads(JSON.read_text())["results"]["scores"] if log == JSON else None
    if header is not None:
        (match,) = [s for s in header if s["name"] == "match"]
        assert reward["base"] == pytest.approx(match["metrics"]["accuracy"]["value"])


@needs_inspect
def test_strict_grades_epochs_and_text(app: typer.Typer, tmp_path: Path) -> None:
    store = tmp_path / "st"
    imported(app, store, JSON)
    prompts, gens, grades, vers = kinds(store)
    by_slot = {(prompts[g.prompt_id].item_id, g.sample_index): g for g in gens.values()}
    for s in raw_samples(JSON):
        slot = (str(s["id"]), s["epoch"] - 1)
        if s.get("error"):
            assert slot not in by_slot
            continue
        g = by_slot[slot]
        assert g.text == s["output"]["completion"] and g.backend == "import-inspect"
        m = s["scores"]["match"]
        assert grades[g.id].strict == LETTER[m["value"]] == grades[g.id].flexible
        assert grades[g.id].extracted == m["answer"]
        (rw,) = [v for v in vers if v.generation_id == g.id and v.verifier == "reward"]
        assert (rw.score, rw.raw) == (s["scores"]["reward"]["value"],
                                      s["scores"]["reward"]["explanation"])
    # a wrong answer grades 0; epochs are sample indices 0..2 (boom lost its epoch 2)
    assert by_slot["add-1", 1].text == "The answer is 6"
    assert grades[by_slot["add-1", 1].id].strict == 0.0
    assert grades[by_slot["add-1", 0].id].strict == 1.0
    assert sorted(i for item, i in by_slot if item == "add-1") == [0, 1, 2]
    assert sorted(i for item, i in by_slot if item == "boom") == [0, 2]
    # chat input as role: text paragraphs; several targets as a JSON list
    texts = {p.item_id: (p.text, p.reference) for p in prompts.values()}
    assert texts["sub-3"] == ("system: Answer with a number.\n\nuser: What is 10 - 4?", "6")
    assert texts["4"] == ("What is 9 + 8?", '["17", "seventeen"]')
    # the hostile completions stay literal text
    assert by_slot["sub-3", 0].text == "6 <script>alert(1)</script>"
    assert by_slot["sub-3", 1].text == "\x1b[31m6\x1b[0m"
    assert {g.model_digest for g in gens.values()} == {v.verifier_digest for v in vers}


@needs_inspect
def test_reimport_adds_nothing_and_formats_agree(app: typer.Typer, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    imported(app, a, EVAL)
    before = n_records(a)
    again = imported(app, a, EVAL)
    assert (again["written"], again["already"], n_records(a)) == (0, before, before)
    # the folder: the one log in it, nothing new
    assert imported(app, a, DATA / "eval")["imports"][0]["written"] == 0
    imported(app, b, JSON)
    assert n_records(b) == before
    keys = ("base", "reweighted", "gap", "kept", "empty_prompts", "prompts", "generations")
    for spec in ("mc:tau=0.5", "cot_binary:tau=0.5", "mc:quantile=0.5"):
        (ra,), (rb,) = gap(app, a, spec), gap(app, b, spec)
        assert {k: ra[k] for k in keys} == {k: rb[k] for k in keys}
    # both runs in one folder under one generator would count every sample twice: refused
    code, out = run(app, tmp_path / "c", "import", "inspect", str(DATA))
    assert code == 1 and "import them one at a time" in out and n_records(tmp_path / "c") == 0
    # and the other run into a store that holds the first: the slot guard of common.py
    code, out = run(app, a, "import", "inspect", str(JSON))
    assert code == 1 and "another --generator" in out and n_records(a) == before
    assert imported(app, a, JSON, "--generator", "run2")["written"] == before - 6


@needs_inspect
@pytest.mark.parametrize("damage", ["truncated", "junk-json", "not-a-log", "empty", "txt"])
def test_damaged_file_is_one_line_and_writes_nothing(app: typer.Typer, tmp_path: Path,
                                                     damage: str) -> None:
    path, data = {
        "truncated": ("t.eval", EVAL.read_bytes()[: EVAL.stat().st_size // 2]),
        "junk-json": ("j.json", JSON.read_bytes()[:5000]),
        "not-a-log": ("n.json", b'{"samples": [1, 2]}'),
        "empty": ("e.eval", b""),
        "txt": ("log.txt", JSON.read_bytes()),
    }[damage]
    (tmp_path / path).write_bytes(data)
    store = tmp_path / "st"
    code, out = run(app, store, "import", "inspect", str(tmp_path / path))
    assert code == 1 and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1 and str(tmp_path / path) in out
    assert n_records(store) == 0 and not store.exists()


def edited_log(tmp_path: Path, name: str, edit: Any) -> Path:
    """The committed .eval log, changed by ``edit(log)``, written back by Inspect."""
    from inspect_ai.log import read_eval_log, write_eval_log

    log = read_eval_log(str(EVAL))
    edit(log)
    out = tmp_path / name
    write_eval_log(log, str(out))
    return out


@needs_inspect
def test_hostile_names_are_refused(app: typer.Typer, tmp_path: Path) -> None:
    def rename(log: Any) -> None:
        log.eval.task = "../x"

    bad = edited_log(tmp_path / "logs", "bad.eval", rename)
    store = tmp_path / "st"
    code, out = run(app, store, "import", "inspect", str(bad))
    assert code == 1 and "task name '../x' is not a usable name" in out and "--task" in out
    assert n_records(store) == 0 and not (tmp_path / "x").exists()
    assert imported(app, store, bad, "--task", "arith2")["folder"] == \
        "import/arith2/mockllm-model"
    for args in (["--task", "../x"], ["--generator", "a/../../b"], ["--task", ".hidden"]):
        code, out = run(app, tmp_path / "st2", "import", "inspect", str(EVAL), *args)
        assert code == 1 and "not a usable folder name" in out, out
    assert n_records(tmp_path / "st2") == 0


@needs_inspect
def test_grade_and_verify_options(app: typer.Typer, tmp_path: Path) -> None:
    got = imported(app, tmp_path / "a", EVAL, "--grade", "includes", "--verify", "reward")
    assert got["verifiers"] == {"reward": "mc"} and got["added"]["verification"] == 17
    (r,) = gap(app, tmp_path / "a", "mc:tau=0.5")
    # includes: 4 2/3, add-1 2/3, boom 1/2, mul-2 2/3, silent 0, sub-3 1
    assert r["base"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2 + 2 / 3 + 0 + 1) / 6)
    got = imported(app, tmp_path / "b", EVAL, "--verify", "reward=cot_binary", "--verify",
                   "includes=mc")
    assert got["verifiers"] == {"reward": "cot_binary", "includes": "mc"}
    got = imported(app, tmp_path / "c", EVAL, "--no-verify")
    assert got["verifiers"] == {} and "verification" not in got["added"]
    for args, message in (
            (["--grade", "nope"], "no scorer 'nope' to grade by; the log's scorers: match, "
                                  "includes, reward"),
            (["--verify", "match"], "scorer 'match' is the grade"),
            (["--verify", "reward=tournament"], "method 'tournament' is not a score method"),
            (["--verify", "reward=cot_score"], "outside the range [1, 10] of method"),
            (["--verify", "nope"], "no scorer 'nope' to verify with")):
        code, out = run(app, tmp_path / "d", "import", "inspect", str(EVAL), *args)
        assert code == 1 and message in out and len(out.strip().splitlines()) == 1, out
    assert n_records(tmp_path / "d") == 0


@needs_inspect
def test_value_conventions_and_bad_values(app: typer.Typer, tmp_path: Path) -> None:
    from inspect_ai.scorer import Score

    def partial(log: Any) -> None:
        for s in log.samples:
            if s.id == "add-1" and s.epoch == 2:
                s.scores["match"] = Score(value="P")
                s.scores["includes"] = Score(value="N")
            if s.id == "mul-2" and s.epoch == 3:
                s.scores["match"] = Score(value=True)
                s.scores["includes"] = Score(value=False)
            if s.id == 4 and s.epoch == 3:
                s.scores.pop("match")

    log = edited_log(tmp_path / "logs", "p.eval", partial)
    store = tmp_path / "st"
    got = imported(app, store, log)
    assert (got["unscored"], got["samples"]) == (1, 16)
    prompts, gens, grades, vers = kinds(store)
    slot = {g.id: (prompts[g.prompt_id].item_id, g.sample_index) for g in gens.values()}
    strict = {slot[k]: r.strict for k, r in grades.items()}
    assert (strict["add-1", 1], strict["mul-2", 2], strict["mul-2", 0]) == (0.5, 1.0, 1.0)
    assert ("4", 2) not in strict and ("4", 2) not in slot.values()
    includes = {slot[r.generation_id]: (r.score, r.parse_status) for r in vers
                if r.verifier == "includes"}
    assert includes["add-1", 1] == (None, "no_verdict")
    assert includes["mul-2", 2] == (0.0, "ok") and includes["mul-2", 0] == (1.0, "ok")

    def maybe(log: Any) -> None:
        for s in log.samples:
            if s.id == "mul-2" and s.epoch == 1:
                s.scores["match"] = Score(value="maybe")
            if s.id == "sub-3" and s.epoch == 1:
                s.scores["reward"] = Score(value={"a": 1})

    bad = edited_log(tmp_path / "logs", "m.eval", maybe)
    code, out = run(app, tmp_path / "st2", "import", "inspect", str(bad))
    assert code == 1 and f"{bad} sample 'mul-2' epoch 1: scorer 'match': value 'maybe' is " \
        "not a score" in out and n_records(tmp_path / "st2") == 0
    got = imported(app, tmp_path / "st2", bad, "--skip-bad")
    assert (got["bad"], got["skipped"], got["samples"]) == (2, 3, 15)


def test_missing_extra_is_one_line(app: typer.Typer, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # import raises ImportError
    code, out = run(app, tmp_path / "st", "import", "inspect", str(EVAL))
    assert code == 1 and "pip install 'gvstore[inspect]'" in out
    assert len(out.strip().splitlines()) == 1 and n_records(tmp_path / "st") == 0


@needs_inspect
def test_a_live_inspect_run_imports_the_same(app: typer.Typer, tmp_path: Path) -> None:
    """Inspect (the installed version) runs the task with mockllm now; its log imports to
    the hand-computed figures, the same as the committed logs."""
    t0 = time.perf_counter()
    log = make_logs().run(tmp_path / "logs", "eval")
    took = time.perf_counter() - t0
    assert log.suffix == ".eval" and took < 20, took
    got = imported(app, tmp_path / "st", log)
    assert (got["rows"], got["errored"], got["samples"]) == (18, 1, 17)
    reward, includes = check_figures(app, tmp_path / "st", log)
    assert reward["gap"] == pytest.approx(2 / 9) and reward["base"] == pytest.approx(5 / 12)
    assert hand(log, "includes", 0.5) == hand(EVAL, "includes", 0.5)
