"""The grade step: idempotent grading of a real store, the stage and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Grade
from gvstore.steps.grade import grade_key, grade_store
from gvstore.store import Store
from gvstore.tasks import get_task


def _fill(root: Path) -> dict[str, list[tuple[float, float]]]:
    """Prompts and hand-made generations for arith and sudoku; the expected (strict, flexible)."""
    expected: dict[str, list[tuple[float, float]]] = {}
    b = StoreBuilder(root, "arith")
    arith = get_task("arith")
    for i, item in enumerate(arith.items()[:3]):
        p = b.add(arith.prompt_record(item))
        answers = [(f"The answer is {item.reference}.", (1.0, 1.0)),
                   (f"so {item.reference}", (0.0, 1.0)),
                   ("The answer is 123456.", (0.0, 0.0))]
        for j, (text, exp) in enumerate(answers):
            b.generation(p, j, text, model="m", seed=i)
            expected.setdefault("arith", []).append(exp)
    sudoku = get_task("sudoku")
    item = sudoku.items()[0]
    p = b.add(sudoku.prompt_record(item))
    solution = item.reference.split("|")[1]
    grid = "\n".join(f"{solution[r*4:r*4+2]} {solution[r*4+2:r*4+4]}" for r in range(4))
    b.generation(p, 0, grid, model="m")
    expected["sudoku"] = [(1.0, 1.0)]
    # A generation whose prompt is not in the store, and one of a task nobody grades.
    b.add(Generation(prompt_id="sha256:none", task="arith", model="m", sample_index=0,
                     seed=9, text="The answer is 1."))
    b.add(Generation(prompt_id=p.id, task="poetry", model="m", sample_index=0, seed=0,
                     text="roses"))
    b.write("generate")
    return expected


def test_grade_store_is_idempotent(tmp_path: Path) -> None:
    expected = _fill(tmp_path / "store")
    store = Store(tmp_path / "store")
    calls: list[tuple[str, int, int]] = []
    first = grade_store(store, progress=lambda *a: calls.append(a))
    assert first.written == 10
    assert first.tasks["arith"].graded == 9 and first.tasks["arith"].no_prompt == 1
    assert first.tasks["sudoku"].graded == 1
    assert first.unknown_tasks == {"poetry": 1}
    assert calls[-1] == ("sudoku", 1, 1)
    grades = [r for r in store.iter_records(kinds=["grade"]) if isinstance(r, Grade)]
    gens = {r.id: r for r in store.iter_records(kinds=["generation"])}
    got: dict[str, list[tuple[float, float]]] = {}
    for g in grades:
        gen = gens[g.generation_id]
        assert isinstance(gen, Generation)
        assert g.grader == gen.task and g.grader_version == get_task(gen.task).version
        assert g.key == grade_key(gen.id, get_task(gen.task))
        got.setdefault(gen.task, []).append((g.strict, g.flexible))
    assert sorted(got["arith"]) == sorted(expected["arith"])
    assert got["sudoku"] == expected["sudoku"]
    assert {str(p.parent.relative_to(store.root)) for p in store.segments()} == {
        "generate", "grade/arith", "grade/sudoku"}

    second = grade_store(store)
    assert second.written == 0
    assert second.tasks["arith"].already_graded == 9
    assert len(store.segments()) == 3


def test_new_grader_version_grades_again(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(tmp_path / "store")
    store = Store(tmp_path / "store")
    grade_store(store, "sudoku")
    from gvstore.tasks.sudoku import Sudoku

    monkeypatch.setattr(Sudoku, "version", "2")
    again = grade_store(store, ["sudoku"])
    assert again.written == 1 and again.tasks["sudoku"].grader_version == "2"
    assert "arith" not in again.tasks


def test_unknown_task_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GvstoreError, match="unknown task"):
        grade_store(Store(tmp_path), ["poetry"])


def test_stage_main(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "stage_grade", Path(__file__).resolve().parents[1] / "stages" / "grade.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _fill(tmp_path / "store")
    assert mod.main(["--store", str(tmp_path / "store"), "--task", "arith"]) == 0
    assert mod.main(["--store", str(tmp_path / "store"), "--task", "nope"]) == 1
    assert len(Store(tmp_path / "store").segments()) == 2


def test_cli_grade_json(tmp_path: Path) -> None:
    _fill(tmp_path / "store")
    runner = CliRunner()
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "grade", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["written"] == 10
    assert {t["task"]: t["graded"] for t in out["tasks"]} == {"arith": 9, "sudoku": 1}
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "grade", "--task",
                                 "arith", "--json"])
    assert json.loads(res.stdout)["written"] == 0
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "grade"])
    assert res.exit_code == 0


def test_cli_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["tasks", "list", "--json"])
    assert res.exit_code == 0, res.output
    assert [t["task"] for t in json.loads(res.stdout)] == [
        "arith", "gsm8k", "math", "nq_open", "sudoku"]
    res = runner.invoke(app, ["tasks", "show", "sudoku", "--n", "2", "--json"])
    shown = json.loads(res.stdout)
    assert len(shown) == 2 and shown[0]["text"].endswith("Answer:")
    res = runner.invoke(app, ["tasks", "show", "arith", "--n", "1", "--kshot", "0"])
    assert res.exit_code == 0 and "What is" in res.stdout


@pytest.mark.shared_data("nq_open")
def test_cli_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    root = shared_data
    monkeypatch.delenv("GVSTORE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "list", "--json"])
    assert res.exit_code == 0
    assert not any(r["ok"] for r in json.loads(res.stdout))
    res = runner.invoke(app, ["data", "fetch", "nq_open", "--mirror", root.as_uri(),
                                 "--json"])
    assert res.exit_code == 0, res.output
    assert [f["action"] for f in json.loads(res.stdout)] == ["downloaded", "downloaded"]
    res = runner.invoke(app, ["data", "list", "--json"])
    ok = {(r["dataset"], r["ok"]) for r in json.loads(res.stdout)}
    assert ("nq_open", True) in ok and ("gsm8k", False) in ok
    res = runner.invoke(app, ["tasks", "show", "nq_open", "--n", "1"])
    assert res.exit_code == 0 and "Answer:" in res.stdout
