"""A study leaves the checkout tidy: what a run writes (every out, metric and plot of dvc.yaml,
dvc.lock, `dvc plots show`'s folder) is ignored by git, and `make study` prints the report
once, through DVC's quiet mode (real DVC and git; no model runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers import M0, M1, dvc_stages, mark_run, round_chain, run_in, standin_project

REPO = Path(__file__).resolve().parents[1]


def _git(root: Path, *args: str) -> str:
    return run_in(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)


def test_a_run_leaves_git_status_clean(tmp_path: Path) -> None:
    root = standin_project(tmp_path / "p", round_chain(M0, M1))
    for name in (".gitignore", ".dvcignore", ".dvc/config"):
        shutil.copy(REPO / name, root / name)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "the project")
    outs = [str(o.def_path) for s in dvc_stages(root) for o in s.outs]
    assert any(o.endswith("report.json") for o in outs) and len(outs) > 20
    mark_run(root)  # every out, metric and plot written, dvc.lock written
    run_in(root, "dvc", "plots", "show", "-q")
    assert (root / "dvc.lock").is_file() and (root / "dvc_plots").is_dir()
    assert _git(root, "status", "--porcelain", "--untracked-files=all") == ""


def test_dvc_lock_is_not_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files", "dvc.lock", "dvc_plots"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    assert tracked == ""


def test_make_study_prints_the_report_once_and_quietly() -> None:
    plan = subprocess.run(["make", "-n", "study", "STAMP=Makefile"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    assert "dvc repro -q" in plan and plan.count("gvstore report") == 1
    # the report stage builds the report and leaves showing it to `gvstore report`
    assert "show(" not in (REPO / "stages" / "report.py").read_text()


def test_make_test_gpu_fails_without_cuda() -> None:
    # not as a sub-make of `make test` (CI): no "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    plan = subprocess.run(["make", "--no-print-directory", "-n", "test-gpu",
                           "GPU_STAMP=Makefile"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True).stdout
    check, run = plan.strip().splitlines()[-2:]
    assert "torch.cuda.is_available()" in check and "exit 1" in check
    assert ".venv-gpu/bin/python -m pytest -m gpu" in run
