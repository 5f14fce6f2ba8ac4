"""The study as users run it: real `dvc repro` on a small configuration with the real model.

A copy of the project (dvc.yaml, stages/, gvstore/, a small params.yaml) is made in a temp
folder, with the embedded model already prepared. Checked: a full run leaves metrics and
plots; a second `dvc repro` does nothing; a run killed with SIGKILL during `generate` or
`verify` and started again ends with the same metrics as the uninterrupted run, no duplicate
records, and a clean `store verify`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

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


# Hang bounds, not speed bounds: a run is killed only once it has printed nothing and written
# no file of its project for QUIET_S seconds (a machine shared with other work makes a healthy
# run slow, not silent), or after MAX_S in all. GVSTORE_TEST_QUIET_S / GVSTORE_TEST_MAX_S
# override them.
QUIET_S = float(os.environ.get("GVSTORE_TEST_QUIET_S", 900))
MAX_S = float(os.environ.get("GVSTORE_TEST_MAX_S", 4 * 3600))


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env["GVSTORE_NO_PROGRESS"] = "1"
    env.pop("GVSTORE_STORE", None)
    env.update(extra or {})
    return env


def _latest_write(root: Path) -> float:
    """The newest modification time of any file or folder under ``root`` (0 if none)."""
    latest = 0.0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):  # gone between the listing and the stat
                latest = max(latest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return latest


def run_watched(cmd: list[str], root: Path, *, env: dict[str, str] | None = None,
                quiet_s: float = QUIET_S, max_s: float = MAX_S,
                stop: Callable[[], bool] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``root`` to its end, capturing its output; fail the test if it hangs:
    no output and no write under ``root`` for ``quiet_s`` seconds, or ``max_s`` in all.
    ``stop()``, polled, kills its process group early (returncode -9) when it turns true."""
    proc = subprocess.Popen(cmd, cwd=root, env=_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    last = [time.monotonic()]

    def pump(stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)
            last[0] = time.monotonic()

    pumps = [threading.Thread(target=pump, args=(proc.stdout, chunks["out"]), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, chunks["err"]), daemon=True)]
    for t in pumps:
        t.start()
    start, wall_written = time.monotonic(), time.time()
    why = ""
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if stop is not None and stop():
                break
            now = time.monotonic()
            if now - last[0] > quiet_s:
                written = _latest_write(root)
                if written > wall_written:  # a file was written since: progress
                    wall_written = written
                    last[0] = now
                else:
                    why = f"no output and no file written for {quiet_s:.0f} s"
                    break
            if now - start > max_s:
                why = f"still running after {max_s:.0f} s"
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for t in pumps:
            t.join(timeout=10)
    out, err = "".join(chunks["out"]), "".join(chunks["err"])
    if why:
        pytest.fail(f"{' '.join(cmd)} hung ({why}):\n{out}{err}"[-4000:])
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


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


def repro(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`dvc repro` in ``root`` to its end (``env``: variables over the test environment)."""
    return run_watched(["dvc", "repro"], root, env=env)


def repro_killed_when(root: Path, folder: str) -> None:
    """Start `dvc repro`, SIGKILL its whole process group once ``folder`` holds a segment."""
    target = root / "data" / "store" / folder

    def has_segment() -> bool:
        return target.is_dir() and any(p.suffix == ".zst" for p in target.iterdir())

    res = run_watched(["dvc", "repro"], root, stop=has_segment)
    if res.returncode != -signal.SIGKILL:
        pytest.fail(f"dvc repro ended ({res.returncode}) before {folder} appeared:\n"
                    f"{res.stdout}{res.stderr}"[-4000:])
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


@pytest.mark.parametrize("folder", [
    "generate/arith",
    # the same resume machinery, killed inside a verify stage: ~2 min more (`-m slow`)
    pytest.param("verify/cot_binary-arith", marks=pytest.mark.slow),
])
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
