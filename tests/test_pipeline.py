"""The study as users run it: real `dvc repro` on a small configuration with the real model.

A copy of the project (dvc.yaml, stages/, gvstore/, a small params.yaml) is made in a temp
folder, with the embedded model already prepared. Checked: a full run leaves metrics and
plots; a second `dvc repro` does nothing; a run killed with SIGKILL during `generate` or
`verify` and started again ends with the same metrics as the uninterrupted run, no duplicate
records, and a clean `store verify`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gvstore.store import Store

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

SMALL = {
    "study": {"tasks": ["arith"], "methods": ["mc", "cot_binary", "tournament"]},
    "tasks": {"arith": {"split": "test", "prompts": 3}},
    "sample": {"n": 4, "max_tokens": 24, "batch_size": 4},
    "verify": {"max_tokens": 24, "batch_size": 4, "tournament_rounds": 2},
    "report": {"specs": ["mc:quantile=0.5", "tournament:rounds=2"], "sweeps": ["mc:quantile"],
               "passk": [1, 2, 4], "resamples": 200},
}


def _merge(base: dict, over: dict) -> dict:  # type: ignore[type-arg]
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env["GVSTORE_NO_PROGRESS"] = "1"
    env.pop("GVSTORE_STORE", None)
    return env


def make_project(root: Path, prepared_models: Path,
                 extra: dict | None = None) -> Path:  # type: ignore[type-arg]
    """A copy of the project with the SMALL params (and ``extra`` over them)."""
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("stages", "gvstore"):
        shutil.copytree(REPO / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), SMALL)
    params = _merge(params, extra or {})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(prepared_models, root / "data" / "models")
    run = {"cwd": root, "env": _env(), "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["dvc", "init", "-q"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "-A"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "p"],
                   **run)  # type: ignore[call-overload]
    return root


def repro(root: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dvc", "repro"], cwd=root, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def repro_killed_when(root: Path, folder: str, timeout: float = 600) -> None:
    """Start `dvc repro`, SIGKILL its whole process group once ``folder`` holds a segment."""
    proc = subprocess.Popen(["dvc", "repro"], cwd=root, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    target = root / "data" / "store" / folder
    try:
        while time.monotonic() < deadline:
            if target.is_dir() and any(p.suffix == ".zst" for p in target.iterdir()):
                break
            if proc.poll() is not None:
                pytest.fail(f"dvc repro ended ({proc.returncode}) before {folder} appeared")
            time.sleep(0.2)
        else:
            pytest.fail(f"{folder} never appeared")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # DVC's lock of the killed run is stale; DVC detects that on the next run.


def metrics(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((root / "reports" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, prepared_models: Path) -> Path:
    root = make_project(tmp_path_factory.mktemp("pipe") / "baseline", prepared_models)
    out = repro(root)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


def test_full_run_leaves_metrics_and_plots_and_a_rerun_does_nothing(baseline: Path) -> None:
    m = metrics(baseline)
    gap = m["gap"]["arith"]["smollm2-135m-instruct"]["smollm2-135m-instruct"]["round0"]
    assert set(gap) == {"mc:quantile=0.5", "tournament:rounds=2"}
    assert 0.0 <= gap["mc:quantile=0.5"]["base"] <= 1.0
    assert m["passk"]["arith"]["smollm2-135m-instruct"]["round0"]["pass@4"] is not None
    for png in ("passk.png", "sweep-mc_quantile.png"):
        assert (baseline / "reports" / png).stat().st_size > 1000
    rep = Store(baseline / "data" / "store").verify()
    assert rep.ok and rep.duplicates == 0
    again = repro(baseline)
    assert again.returncode == 0
    assert "Data and pipelines are up to date" in again.stdout + again.stderr


@pytest.mark.parametrize("folder", ["generate/arith", "verify/cot_binary-arith"])
def test_killed_run_resumes_to_the_same_metrics(folder: str, baseline: Path, tmp_path: Path,
                                                prepared_models: Path) -> None:
    root = make_project(tmp_path / "p", prepared_models)
    repro_killed_when(root, folder)
    out = repro(root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert metrics(root) == metrics(baseline)
    store = Store(root / "data" / "store")
    rep = store.verify()
    assert rep.ok and rep.duplicates == 0, rep
    want = {r.id for r in Store(baseline / "data" / "store").records()}
    assert {r.id for r in store.records()} == want
