"""Every DVC stage writes into the store its params name (``base.store``), where dvc.yaml
declares its outs, whatever the default store or ``$GVSTORE_STORE`` say.

Static: every stage's command passes the params file, and no stage script opens a store but
through ``stages/common.py``'s ``stage_store``. The grade stage on a hand-made store. And one
real ``dvc repro`` of every stage (rounds included) with a non-default ``base.store``.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from helpers import StoreBuilder, make_project, merge, repro

from gvstore.records import Grade
from gvstore.store import Store
from gvstore.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
M0, M1 = "smollm2-135m-instruct", "smollm2-135m-instruct-r1"
STORE = "elsewhere/records"  # not data/store
FOLDERS = {M0: f"data/models/{M0}", M1: f"data/rounds/models/{M1}"}  # rounds.folders


def _stage(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _params(root: Path, over: dict[str, Any]) -> Path:
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), over)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# ---- static: the commands and the scripts ---------------------------------------------------

def test_every_stage_command_passes_the_params_file_and_its_outs_are_in_base_store(
        tmp_path: Path) -> None:
    from dvc.repo import Repo

    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    _params(root, {"base": {"store": STORE},
                   "rounds": {"start": [M0], "steps": {M1: M0}, "folders": FOLDERS}})
    (root / ".dvc").mkdir()
    (root / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
    stages = Repo(str(root)).index.stages
    names = {s.name.split("@")[0] for s in stages}
    assert names == {"prepare-model", "generate", "grade", "verify", "weights", "round-filter",
                     "round-finetune", "round-generate", "round-grade", "round-verify", "report"}
    in_store = 0
    for s in stages:
        script, *args = s.cmd.split()[1:]
        assert script.startswith("stages/") and (REPO / script).is_file(), s.cmd
        assert "--params params.yaml" in " ".join(args), f"{s.name}: {s.cmd}"
        for out in s.outs:
            path = str(out.def_path)
            assert not path.startswith("data/store"), f"{s.name}: {path}"
            in_store += path.startswith(STORE + "/")
    assert in_store == sum(1 for s in stages if s.name.split("@")[0] not in
                           ("prepare-model", "round-filter", "round-finetune", "report"))


def test_no_stage_script_opens_a_store_but_through_stage_store() -> None:
    for script in sorted((REPO / "stages").glob("*.py")):
        if script.name == "common.py":
            continue
        tree = ast.parse(script.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
                assert name not in ("Store", "default_root"), \
                    f"{script.name}:{node.lineno} opens a store itself"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert "GVSTORE_STORE" not in node.value, f"{script.name}:{node.lineno}"


def test_stage_store_is_base_store_not_the_environment(tmp_path: Path,
                                                      _isolated_store: Path) -> None:
    import os

    from gvstore.params import load

    common = _stage("common")
    params = load(_params(tmp_path, {"base": {"store": str(tmp_path / "s")}}))
    assert os.environ["GVSTORE_STORE"] == str(_isolated_store)
    assert common.stage_store(params).root == tmp_path / "s"
    assert common.stage_store(params, tmp_path / "by-hand").root == tmp_path / "by-hand"
    assert common.stage_store(None, tmp_path / "by-hand").root == tmp_path / "by-hand"


# ---- the grade stage ------------------------------------------------------------------------

def test_grade_stage_writes_into_base_store(tmp_path: Path, _isolated_store: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _params(tmp_path, {"base": {"store": STORE}})
    arith = get_task("arith")
    expected = []
    b = StoreBuilder(tmp_path / STORE, "arith")
    for i, item in enumerate(arith.items()[:2]):
        p = b.add(arith.prompt_record(item))
        for j, (text, strict) in enumerate([(f"The answer is {item.reference}.", 1.0),
                                             ("The answer is 123456.", 0.0)]):
            b.generation(p, j, text, model="m", seed=i)
            expected.append(strict)
    b.write("generate/arith")
    grade = _stage("grade")
    assert grade.main(["--params", "params.yaml", "--task", "arith"]) == 0
    store = Store(tmp_path / STORE)
    grades = [r for r in store.records(kinds=("grade",)) if isinstance(r, Grade)]
    assert sorted(g.strict for g in grades) == sorted(expected) == [0.0, 0.0, 1.0, 1.0]
    assert list((tmp_path / STORE / "grade" / "arith").glob("*.zst"))
    assert not _isolated_store.exists() and not (tmp_path / "data").exists()
    # The default (no --params) is params.yaml of the working folder; a re-run writes nothing.
    assert grade.main(["--task", "arith"]) == 0
    assert len(store.records(kinds=("grade",))) == 4
    # No params file and no --store: one line naming the file, exit status 1.
    (tmp_path / "params.yaml").unlink()
    assert grade.main(["--task", "arith"]) == 1


# ---- one real dvc repro of every stage ------------------------------------------------------

SMALL_ALL = {
    "base": {"store": STORE},
    "study": {"tasks": ["arith"], "methods": ["mc", "tournament"]},
    "tasks": {"arith": {"split": "test", "prompts": 2}},
    "sample": {"n": 2, "max_tokens": 16, "batch_size": 4},
    "verify": {"max_tokens": 16, "batch_size": 4, "tournament_rounds": 1},
    "weights": {"specs": ["mc:quantile=0.5"]},
    "report": {"specs": ["mc:quantile=0.5", "tournament:rounds=1"], "sweeps": ["mc:quantile"],
               "passk": [1, 2], "resamples": 50},
    "rounds": {
        "start": [M0], "steps": {M1: M0}, "folders": FOLDERS, "verifier": "self",
        "filter": "mc:quantile=0.5",
        "update": "sft", "preset": "cpu", "threads": 1,
        "hyperparameters": {"steps": 2, "batch_size": 2, "micro_batch_size": 2,
                            "max_length": 256, "learning_rate": 1.0e-4},
    },
}


@pytest.mark.slow
def test_every_stage_writes_its_declared_outs_with_a_non_default_store(
        tmp_path: Path, prepared_models: Path) -> None:
    from dvc.repo import Repo

    decoy = tmp_path / "decoy-store"
    root = make_project(tmp_path / "p", prepared_models, SMALL_ALL)
    out = repro(root, env={"GVSTORE_STORE": str(decoy)})  # the stages must not follow it
    assert out.returncode == 0, out.stdout + out.stderr
    stages = Repo(str(root)).index.stages
    assert len(stages) == 15  # 1+1+1+2+1, round 0 x3, round 1 x5, report
    for s in stages:
        for o in s.outs:
            assert (root / str(o.def_path)).exists(), f"{s.name}: {o.def_path} missing"
    store = root / STORE
    for folder in ("generate/arith", "grade/arith", "verify/mc-arith",
                   "verify/tournament-arith", "weights", f"rounds/{M1}/generate",
                   f"rounds/{M1}/grade", f"rounds/{M1}/verify"):
        assert list((store / folder).rglob("*.zst")), folder
    assert not (root / "data" / "store").exists() and not decoy.exists()
    rep = Store(store).verify()
    assert rep.ok and rep.duplicates == 0
    grades = Store(store).records(kinds=("grade",))
    assert len(grades) == 2 * 2 * 2  # 2 prompts x n=2, round 0 and round 1
