"""One writer per store folder: real processes contend for the lock, a SIGKILLed holder's lock
is recovered, and a second stage on a busy folder is one error line naming the holder's pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from writer_child import records as child_records

from gvstore.lock import LOCK_NAME, StoreLocked
from gvstore.segments import SEGMENT_SUFFIX
from gvstore.store import Store

HERE = Path(__file__).parent
GVSTORE = Path(sys.executable).parent / "gvstore"


def _child(root: Path, n: int, flush: int, go: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, str(HERE / "writer_child.py"), str(root), str(n), str(flush)]
    return subprocess.Popen(args + ([str(go)] if go else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _first_line(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    return child.stdout.readline().strip()


def test_two_concurrent_writers_one_fails_naming_the_holder(tmp_path: Path) -> None:
    n, flush = 3000, 500
    go = tmp_path / "go"
    a = _child(tmp_path, n, flush, go)
    assert _first_line(a) == "500"  # A has flushed once and waits, holding the lock
    assert (tmp_path / "gen" / LOCK_NAME).read_text().strip() == str(a.pid)
    b = _child(tmp_path, n, flush)
    out_b, err_b = b.communicate(timeout=120)
    assert b.returncode == 1, err_b
    lines = [ln for ln in err_b.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: store folder")
    assert f"pid {a.pid}" in lines[0] and str(tmp_path / "gen") in lines[0]
    assert "done" not in out_b
    go.touch()
    out_a, _ = a.communicate(timeout=120)
    assert a.returncode == 0 and out_a.strip().endswith("done")
    rep = Store(tmp_path).verify()
    assert rep.ok and rep.records == n and rep.duplicates == 0  # every record written once
    assert not (tmp_path / "gen" / LOCK_NAME).exists()  # released (and removed) on exit


def test_sigkilled_holder_is_recovered_and_its_temporary_file_removed(tmp_path: Path) -> None:
    n, flush = 2000, 500
    a = _child(tmp_path, n, flush, tmp_path / "never")
    assert _first_line(a) == "500"
    folder = tmp_path / "gen"
    # What a kill in the middle of a flush leaves: a temporary file named with A's pid.
    stale = folder / f".{'ab' * 32}{SEGMENT_SUFFIX}.{a.pid}.part"
    stale.write_bytes(b"half a segment")
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=60)
    assert a.returncode == -signal.SIGKILL
    assert (folder / LOCK_NAME).read_text().strip() == str(a.pid)  # stale file, no lock held
    store = Store(tmp_path)
    assert stale not in store.segments() and store.leftover_tmp() == [stale]
    rep = store.verify()
    assert rep.ok and rep.records == 500 and rep.leftover_tmp == [str(stale)]
    b = _child(tmp_path, n, flush)
    out_b, err_b = b.communicate(timeout=120)
    assert b.returncode == 0, err_b
    assert out_b.split() == ["500", "1000", "1500", "done"]  # resumes: 1500 left to write
    assert not stale.exists()
    rep = Store(tmp_path).verify()
    assert rep.ok and rep.records == n and rep.duplicates == 0 and rep.leftover_tmp == []
    assert not (folder / LOCK_NAME).exists()


def test_cli_stage_on_a_locked_folder_is_one_line_naming_the_pid(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.writer("synth") as w:  # this process holds <root>/synth
        w.extend(child_records(3))
        out = subprocess.run([str(GVSTORE), "store", "synth", str(tmp_path), "--prompts", "5",
                              "-q"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: store folder") and f"pid {os.getpid()}" in lines[0]
    assert "Traceback" not in out.stderr
    assert len(store.records()) == 3  # the refused run wrote nothing
    out = subprocess.run([str(GVSTORE), "store", "synth", str(tmp_path), "--prompts", "5",
                          "-q"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr  # released when the writer closed


def test_lock_is_shared_within_a_process_and_released_by_the_last_holder(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    w1 = store.writer("gen")
    w2 = store.writer("gen")  # same process: no self-deadlock
    w1.close()
    assert (tmp_path / "gen" / LOCK_NAME).exists()
    w2.add(child_records(1)[0])
    w2.close()
    assert not (tmp_path / "gen" / LOCK_NAME).exists()
    assert len(store.records()) == 1


def test_locked_error_type_and_empty_folder_left_tidy(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.writer("nothing").close()
    assert not (tmp_path / "nothing").exists()  # a writer that wrote nothing leaves nothing
    if sys.platform != "linux":
        pytest.skip("flock semantics checked on Linux only")
    code = ("import sys; from gvstore.store import Store; from gvstore.lock import StoreLocked\n"
            "try:\n Store(sys.argv[1]).writer('gen')\nexcept StoreLocked as e:\n"
            " print(e.pid)\n")
    with store.writer("gen"):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                             text=True, timeout=60)
    assert out.stdout.strip() == str(os.getpid()), out.stderr
    assert StoreLocked.__mro__[1].__name__ == "GvstoreError"
