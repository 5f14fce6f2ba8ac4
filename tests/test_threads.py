"""CPU threads and OpenMP's wait policy (gvstore/backends/threads.py), and the tests' own
bounds: a subprocess is stopped when it hangs (silent, writing nothing), not when it is slow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gvstore.backends.threads import ENV_THREADS, available_cpus, cpu_threads
from gvstore.errors import GvstoreError

REPO = Path(__file__).resolve().parents[1]


def test_threads_default_to_the_cpus_of_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_THREADS, raising=False)
    assert available_cpus() == len(os.sched_getaffinity(0))
    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_env_and_option_set_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_THREADS, "3")
    assert cpu_threads() == 3
    assert cpu_threads(1) == 1  # the back end's option wins over the environment
    monkeypatch.setenv(ENV_THREADS, " ")
    assert cpu_threads() == available_cpus()


@pytest.mark.parametrize("text", ["two", "0", "-1", "1.5"])
def test_a_bad_gvstore_threads_is_one_line_naming_it(text: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_THREADS, text)
    with pytest.raises(GvstoreError, match=rf"^\$GVSTORE_THREADS must be a whole number >= 1, "
                                           rf"got '{text}'$"):
        cpu_threads()


@pytest.mark.parametrize("bad", [0, -2, True])
def test_a_bad_threads_option_is_an_error(bad: int) -> None:
    with pytest.raises(GvstoreError, match="threads must be a whole number >= 1"):
        cpu_threads(bad)


def _fresh(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its stdout."""
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                         cwd=REPO, check=True)
    return out.stdout.strip()


CHECK = ("import os, sys; print(os.environ.get('OMP_WAIT_POLICY'), "
         "os.environ.get('KMP_BLOCKTIME'), 'torch' in sys.modules)")


@pytest.mark.parametrize("first", ["gvstore.backends.hf", "gvstore.backends", "gvstore.cli.app"])
def test_the_passive_wait_policy_is_set_before_torch_is_imported(first: str) -> None:
    # Importing the back end puts it in the environment before any torch import (OpenMP reads
    # it when torch loads it).
    assert _fresh(f"import {first}; {CHECK}") == "PASSIVE 0 False"


def test_the_stage_scripts_set_it_before_they_import_torch() -> None:
    code = f"import sys; sys.path.insert(0, 'stages'); import common; {CHECK}"
    assert _fresh(code) == "PASSIVE 0 False"


def test_a_wait_policy_of_the_users_own_is_kept() -> None:
    assert _fresh(f"import gvstore.backends; {CHECK}", OMP_WAIT_POLICY="ACTIVE") \
        == "ACTIVE 0 False"


# ---- the tests' subprocess bounds: hangs, not speed -------------------------------------------

def test_a_silent_subprocess_that_writes_nothing_is_a_hang(tmp_path: Path) -> None:
    from helpers import run_watched

    with pytest.raises(pytest.fail.Exception, match="hung .no output and no file written"):
        run_watched([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path,
                    quiet_s=1.5)


def test_a_slow_subprocess_that_makes_progress_runs_to_its_end(tmp_path: Path) -> None:
    from helpers import run_watched

    # Longer in all than the quiet bound, but never quiet that long: printing, then writing.
    code = ("import time, pathlib\n"
            "for i in range(4): print(i, flush=True); time.sleep(0.6)\n"
            "for i in range(4): pathlib.Path(f'f{i}').write_text('x'); time.sleep(0.6)\n")
    res = run_watched([sys.executable, "-c", code], tmp_path, quiet_s=1.5)
    assert res.returncode == 0 and res.stdout.split() == ["0", "1", "2", "3"]
    assert len(list(tmp_path.glob("f*"))) == 4


def test_stop_kills_the_run_early(tmp_path: Path) -> None:
    import signal

    from helpers import run_watched

    code = "import pathlib, time; pathlib.Path('seg.zst').write_text('x'); time.sleep(60)"
    res = run_watched([sys.executable, "-c", code], tmp_path, quiet_s=30,
                      stop=lambda: (tmp_path / "seg.zst").exists())
    assert res.returncode == -signal.SIGKILL
