"""Disk full and read-only stores: one error line naming the path and what to do (exit 1, never
70), no temporary file left, and analysis of a read-only store still works.

Real conditions where the machine allows them: a full tmpfs and a read-only bind mount inside a
private mount namespace (``unshare -m``, needs root or user namespaces; skipped otherwise, with
the reason), a file size limit (``RLIMIT_FSIZE``) in a child process (works anywhere). In-process
tests inject the errors with monkeypatch so the mapping is tested on every machine.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from writer_child import records as child_records

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.replay import Projections
from gvstore.segments import TMP_SUFFIX
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate

runner = CliRunner()
HERE = Path(__file__).parent
GVSTORE = Path(sys.executable).parent / "gvstore"


def _parts(root: Path) -> list[Path]:
    return sorted(root.rglob("*" + TMP_SUFFIX))


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def _namespaces_work() -> str | None:
    """None if ``unshare -m`` can mount here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount in a namespace: {probe.stderr}"


NO_NS = _namespaces_work()
needs_ns = pytest.mark.skipif(NO_NS is not None, reason=f"needs unshare -m: {NO_NS}")


def _in_namespace(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)


def _synth_cmd(root: Path, prompts: int) -> str:
    return (f"{shlex.quote(str(GVSTORE))} store synth {shlex.quote(str(root))} --prompts "
            f"{prompts} --samples 8 --methods mc -q")


# --- disk full -------------------------------------------------------------------------------

def test_fsync_failing_with_enospc_is_one_error_and_keeps_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    recs = child_records(10)
    w = store.writer("gen", flush_records=100)
    w.extend(recs)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(GvstoreError) as info:
        w.flush()
    msg = str(info.value)
    assert msg.startswith(f"cannot write segment {tmp_path / 'gen'}/")
    assert "No space left on device" in msg and "free space" in msg
    assert _parts(tmp_path) == [] and store.segments() == []
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: nothing was lost
    w.close()
    assert sorted(r.id for r in store.records()) == sorted(r.id for r in recs)


def test_cli_synth_on_a_full_disk_is_exit_1_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    res = runner.invoke(app, ["store", "synth", str(tmp_path), "--prompts", "5", "-q"])
    assert res.exit_code == 1, res.output
    line = _one_error_line(res.stderr)
    assert f"cannot write segment {tmp_path / 'synth'}/" in line and "disk is full" in line
    assert _parts(tmp_path) == []


def test_file_size_limit_in_a_real_child_is_exit_1_and_no_part_file(tmp_path: Path) -> None:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = subprocess.run([str(GVSTORE), "store", "synth", str(tmp_path / "s"), "--prompts",
                          "300", "--samples", "8", "-q"], capture_output=True, text=True,
                         preexec_fn=limit, timeout=300)
    assert out.returncode == 1, out.stderr
    line = _one_error_line(out.stderr)
    assert f"cannot write segment {tmp_path / 's' / 'synth'}/" in line
    assert "ulimit -f" in line
    assert _parts(tmp_path) == [] and Store(tmp_path / "s").segments() == []


@needs_ns
def test_real_full_tmpfs_synth_then_analysis(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    xdg = tmp_path / "xdg"
    q = shlex.quote
    script = f"""
mount -t tmpfs -o size=256k tmpfs {q(str(mnt))} || exit 99
{_synth_cmd(mnt / 'big', 400)} 2> {q(str(tmp_path / 'big.err'))}
echo "big=$?"
find {q(str(mnt / 'big'))} -name '*{TMP_SUFFIX}' | sed 's/^/part=/'
{_synth_cmd(mnt / 'small', 10)} 2> {q(str(tmp_path / 'small.err'))}
echo "small=$?"
dd if=/dev/zero of={q(str(mnt / 'fill'))} bs=4k 2>/dev/null
XDG_CACHE_HOME={q(str(xdg))} {q(str(GVSTORE))} --store {q(str(mnt / 'small'))} \\
    gap mc:quantile=0.8 --json > {q(str(tmp_path / 'gap.json'))} \\
    2> {q(str(tmp_path / 'gap.err'))}
echo "gap=$?"
"""
    out = _in_namespace(script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert "big=1" in lines and not [x for x in lines if x.startswith("part=")], out.stdout
    line = _one_error_line((tmp_path / "big.err").read_text())
    assert f"cannot write segment {mnt / 'big' / 'synth'}/" in line
    assert "No space left on device" in line and "disk is full" in line
    assert "small=0" in lines and "gap=0" in lines, (tmp_path / "gap.err").read_text()
    data = json.loads((tmp_path / "gap.json").read_text())
    assert data["results"][0]["prompts"] == 10
    assert list(xdg.rglob("*.manifest.json"))  # the cache went to $XDG_CACHE_HOME


# --- read-only store -------------------------------------------------------------------------

def _readonly_run(root: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``args`` with ``root`` read-only: a read-only bind mount when root (chmod does not
    stop root), else chmod -w on the tree."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return out.returncode, out.stdout, out.stderr
    if NO_NS is not None:
        pytest.skip(f"root, and no read-only bind mount possible: {NO_NS}")
    r = shlex.quote(str(root))
    script = (f"mount --bind {r} {r} && mount -o remount,bind,ro {r} || exit 99\n"
              f"exec {shlex.join(args)}")
    out = _in_namespace(script, env)
    assert out.returncode != 99, out.stderr
    return out.returncode, out.stdout, out.stderr


def test_real_read_only_store(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    res = runner.invoke(app, ["store", "synth", str(root), "--prompts", "12", "--samples",
                              "4", "--methods", "mc", "-q"])
    assert res.exit_code == 0, res.output
    with Store(root).writer("gen") as w:
        w.extend(child_records(20))
    want = runner.invoke(app, ["--store", str(root), "gap", "mc:quantile=0.8", "--json"])
    assert want.exit_code == 0, want.output
    shutil.rmtree(root / ".cache")  # so the read-only run has to build (and place) the cache
    xdg = tmp_path / "xdg"
    env = dict(os.environ, XDG_CACHE_HOME=str(xdg),
               PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Analysis works and gives the same numbers; the cache lands under $XDG_CACHE_HOME.
    rc, out, err = _readonly_run(root, [str(GVSTORE), "--store", str(root), "gap",
                                        "mc:quantile=0.8", "--json"], env)
    assert rc == 0, err
    assert json.loads(out) == json.loads(want.stdout)
    assert len(list(xdg.rglob("*.parquet"))) == 6 and not (root / ".cache").exists()
    rc, out, err = _readonly_run(root, [str(GVSTORE), "--store", str(root), "store", "verify"],
                                 env)
    assert rc == 0 and out.splitlines()[-1].startswith("ok"), out + err
    # A stage with nothing to do succeeds; one with something to write is one error line.
    rc, out, err = _readonly_run(root, [sys.executable, str(HERE / "writer_child.py"),
                                        str(root), "20", "10"], env)
    assert rc == 0 and out.strip() == "done", err
    rc, out, err = _readonly_run(root, [sys.executable, str(HERE / "writer_child.py"),
                                        str(root), "30", "10"], env)
    assert rc == 1, err
    line = _one_error_line(err)
    assert f"{root / 'gen'}" in line and ("read-only" in line or "permission" in line)
    rc, out, err = _readonly_run(root, [str(GVSTORE), "store", "synth", str(root), "--prompts",
                                        "13", "-q"], env)
    assert rc == 1
    line = _one_error_line(err)
    assert str(root / "synth") in line and ("read-only" in line or "permission" in line)
    assert _parts(root) == [] and len(Store(root).records(["generation"])) == 48 + 20


def test_projection_cache_falls_back_to_xdg_then_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "s")
    with store.writer("synth", flush_records=50) as w:
        w.extend(generate(SynthConfig(prompts=6, samples=4)))
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    real = Projections._write_cache
    refuse: set[Path] = {store.root / ".cache" / "proj"}

    def write(self: Projections, folder: Path, key: str, frames: dict) -> None:
        if folder in refuse:
            raise OSError(errno.EROFS, "Read-only file system")
        real(self, folder, key, frames)

    monkeypatch.setattr(Projections, "_write_cache", write)
    p = Projections(store)
    gens = p.load()["generations"]
    assert gens.height == 24 and p.cache_dir is not None and p.cache_dir.is_relative_to(xdg)
    again = Projections(store)
    assert again.load()["generations"].equals(gens) and not again.rebuilt  # from $XDG cache
    shutil.rmtree(xdg)
    refuse.add(again.cache_dir)  # type: ignore[arg-type]
    mem = Projections(store)
    assert mem.load()["generations"].equals(gens) and mem.cache_dir is None and mem.rebuilt
