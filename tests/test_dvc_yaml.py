"""dvc.yaml: one chain for every round, deps that say what each stage reads, plots under
``base.reports``, and adding a round reruns nothing of the earlier rounds (real DVC, no model:
the stages are marked as run with ``dvc commit``, never run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
M0, M1, M2 = "smollm2-135m-instruct", "smollm2-135m-instruct-r1", "smollm2-135m-instruct-r2"
ROUND_STAGES = ("round-generate", "round-grade", "round-verify", "round-filter",
                "round-finetune")


def _folders(*chain: str, models: str = "data/models", rounds: str = "data/rounds") -> dict[
        str, str]:
    return {m: f"{models}/{m}" if i == 0 else f"{rounds}/models/{m}" for i, m in enumerate(chain)}


def _rounds(*chain: str) -> dict[str, Any]:
    return {"start": [chain[0]], "steps": dict(zip(chain[1:], chain[:-1], strict=True)),
            "folders": _folders(*chain)}


def _project(root: Path, rounds: dict[str, Any], base: dict[str, Any] | None = None) -> Path:
    """dvc.yaml and rounds-arith.yaml (``rounds`` and ``base`` over it) in a fresh git + DVC
    repository; stage scripts and gvstore are stand-in files (nothing runs)."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    raw = yaml.safe_load((REPO / "configs" / "rounds-arith.yaml").read_text())
    raw["rounds"].update(rounds)
    raw["base"].update(base or {})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for script in (REPO / "stages").glob("*.py"):
        (root / "stages").mkdir(exist_ok=True)
        (root / "stages" / script.name).write_text(f"# {script.name}\n")
    (root / "gvstore").mkdir()
    (root / "gvstore" / "__init__.py").write_text("# stand-in\n")
    _dvc(root, "git", "init", "-q")
    _dvc(root, "dvc", "init", "-q")
    return root


def _dvc(root: Path, *cmd: str) -> str:
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(root.parent)}
    out = subprocess.run(list(cmd), cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stdout}{out.stderr}"
    return out.stdout


def _stages(root: Path) -> list[Any]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.index.stages)


def _mark_run(root: Path) -> None:
    """Every stage's outs made by hand (one file each), then ``dvc commit``: DVC records the
    stages as run with the current deps and params."""
    for s in _stages(root):
        for out in s.outs:
            path = root / str(out.def_path)
            if path.suffix == ".jsonl" or path.name.endswith(".json") or path.suffix == ".png":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{s.name}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "made-by").write_text(f"{s.name}\n")
    _dvc(root, "dvc", "commit", "-f", "-q")


def _changed(root: Path) -> set[str]:
    """The stages ``dvc status`` lists (changed deps, params or outs, or never run)."""
    out = _dvc(root, "dvc", "status", "--json")
    import json

    return set(json.loads(out))


# ---- static: what dvc.yaml declares ---------------------------------------------------------

def _raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_round_step_is_one_loop_and_round_zero_is_in_it() -> None:
    stages = _raw()["stages"]
    assert not [n for n in stages if n.startswith("r0-")]
    for name in ("round-generate", "round-grade", "round-verify"):
        assert stages[name]["foreach"] == "${rounds.folders}", name
    for name in ("round-filter", "round-finetune"):
        assert stages[name]["foreach"] == "${rounds.steps}", name


def test_every_stage_depends_on_its_script_common_and_gvstore() -> None:
    for name, stage in _raw()["stages"].items():
        body = stage.get("do", stage)
        script = body["cmd"].split()[1]
        deps = body["deps"]
        assert script in deps and "stages/common.py" in deps and "gvstore" in deps, name
        assert not [d for d in deps if d.startswith("gvstore/")], f"{name}: {deps}"


def test_no_round_stage_reads_the_whole_rounds_section() -> None:
    stages = _raw()["stages"]
    for name in ROUND_STAGES:
        params = stages[name]["do"].get("params", [])
        assert "rounds" not in params, name
        assert not [p for p in params if p in ("rounds.steps", "rounds.start", "rounds.folders")]


def test_plots_and_report_outs_follow_base_reports(tmp_path: Path) -> None:
    from dvc.parsing import DataResolver
    from dvc.repo import Repo

    root = _project(tmp_path / "p", _rounds(M0, M1), {"reports": "elsewhere/out"})
    with Repo(str(root)) as repo:
        report = next(s for s in repo.index.stages if s.name == "report")
        outs = {str(o.def_path) for o in report.outs}
        plots = DataResolver(repo, str(root), _raw()).resolve_plots()
    assert outs == {"elsewhere/out/metrics.json", "elsewhere/out/plots",
                    "elsewhere/out/passk.png"}
    ys = [path for p in plots for d in p.values() for path in d["y"]]
    assert len(ys) == 4 and all(y.startswith("elsewhere/out/plots/") for y in ys), ys


@pytest.mark.parametrize("config", ["params.yaml", "configs/rounds-arith.yaml",
                                    "configs/rounds-gsm8k-qwen2.5.yaml"])
def test_stage_list_and_dag_run_clean(config: str, tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / config, root / "params.yaml")
    _dvc(root, "git", "init", "-q")
    _dvc(root, "dvc", "init", "-q")
    names = _dvc(root, "dvc", "stage", "list", "--name-only").split()
    _dvc(root, "dvc", "dag")
    raw = yaml.safe_load((REPO / config).read_text())["rounds"]
    chain = [*raw["start"], *raw["steps"]]
    assert list(raw["folders"]) == chain
    for m in chain:
        for step in ("generate", "grade", "verify"):
            assert f"round-{step}@{m}" in names
    assert sum(n.startswith("round-") for n in names) == 3 * len(chain) + 2 * len(raw["steps"])


# ---- real DVC: adding a round ---------------------------------------------------------------

def test_adding_a_round_reruns_nothing_of_the_earlier_rounds(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", _rounds(M0, M1))
    _mark_run(root)
    assert _changed(root) == set()
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["rounds"].update(_rounds(M0, M1, M2))
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    changed = _changed(root)
    new = {f"{s}@{M2}" for s in ROUND_STAGES}
    # The new round's stages (never run) and the report (it covers every round), nothing else.
    assert changed == new | {"report"}, changed


# ---- rounds.folders: the old form still loads, an inconsistent one is an error -------------

def test_rounds_folders_is_derived_when_not_written_and_checked_when_written(
        tmp_path: Path) -> None:
    from gvstore.errors import GvstoreError
    from gvstore.params import load, validate

    raw = yaml.safe_load((REPO / "configs" / "rounds-arith.yaml").read_text())
    path = tmp_path / "params.yaml"
    del raw["rounds"]["folders"]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load(path)
    assert params.round_folders() == _folders(M0, M1, M2)
    assert any("rounds.folders is not written" in n for n in validate(params, check_data=False))
    for wrong in (_folders(M0, M2, M1), _folders(M0, M1), _folders(M0, M1, M2, rounds="x")):
        raw["rounds"]["folders"] = wrong
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        with pytest.raises(GvstoreError, match=r"rounds\.folders must list"):
            validate(load(path), check_data=False)
    raw["rounds"]["folders"] = {m: f"./{f}/" for m, f in _folders(M0, M1, M2).items()}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    validate(load(path), check_data=False)  # the same folders, spelled otherwise
