"""dvc.yaml: one chain for every round, deps that say what each stage reads, plots under
``base.reports``, and adding a round reruns nothing of the earlier rounds (real DVC, no model:
the stages are marked as run with ``dvc commit``, never run)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    M0,
    M1,
    M2,
    ROUND_STAGES,
    dvc_changed,
    mark_run,
    round_chain,
    round_folders,
    run_in,
    standin_project,
)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
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

    root = standin_project(tmp_path / "p", round_chain(M0, M1), {"reports": "elsewhere/out"})
    with Repo(str(root)) as repo:
        report = next(s for s in repo.index.stages if s.name == "report")
        outs = {str(o.def_path) for o in report.outs}
        plots = DataResolver(repo, str(root), _raw()).resolve_plots()
    assert outs == {"elsewhere/out/metrics", "elsewhere/out/report.json",
                    "elsewhere/out/plots", "elsewhere/out/passk.png"}
    ys = [path for p in plots if isinstance(p, dict) for d in p.values() for path in d["y"]]
    assert len(ys) == 4 and all(y.startswith("elsewhere/out/plots/") for y in ys), ys
    images = [p for p in plots if isinstance(p, str)]
    assert images and all(i.startswith("elsewhere/out/") and i.endswith(".png")
                          for i in images), images


@pytest.mark.parametrize("config", ["params.yaml", "configs/rounds-arith.yaml",
                                    "configs/rounds-gsm8k-qwen2.5.yaml"])
def test_stage_list_and_dag_run_clean(config: str, tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / config, root / "params.yaml")
    run_in(root, "git", "init", "-q")
    run_in(root, "dvc", "init", "-q")
    names = run_in(root, "dvc", "stage", "list", "--name-only").split()
    run_in(root, "dvc", "dag")
    raw = yaml.safe_load((REPO / config).read_text())["rounds"]
    chain = [*raw["start"], *raw["steps"]]
    assert list(raw["folders"]) == chain
    for m in chain:
        for step in ("generate", "grade", "verify"):
            assert f"round-{step}@{m}" in names
    assert sum(n.startswith("round-") for n in names) == 3 * len(chain) + 2 * len(raw["steps"])


# ---- real DVC: adding a round ---------------------------------------------------------------

def test_adding_a_round_reruns_nothing_of_the_earlier_rounds(tmp_path: Path) -> None:
    root = standin_project(tmp_path / "p", round_chain(M0, M1))
    mark_run(root)
    assert dvc_changed(root) == set()
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["rounds"].update(round_chain(M0, M1, M2))
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    changed = dvc_changed(root)
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
    assert params.round_folders() == round_folders(M0, M1, M2)
    assert any("rounds.folders is not written" in n for n in validate(params, check_data=False))
    for wrong in (round_folders(M0, M2, M1), round_folders(M0, M1),
                  round_folders(M0, M1, M2, rounds="x")):
        raw["rounds"]["folders"] = wrong
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        with pytest.raises(GvstoreError, match=r"rounds\.folders must list"):
            validate(load(path), check_data=False)
    raw["rounds"]["folders"] = {m: f"./{f}/" for m, f in round_folders(M0, M1, M2).items()}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    validate(load(path), check_data=False)  # the same folders, spelled otherwise
