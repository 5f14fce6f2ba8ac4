"""The segment store: replay, idempotence, crash safety, damage detection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard
from writer_child import records as child_records

from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.records import Grade, encoder, seal
from gvstore.segments import SEGMENT_SUFFIX, decode_segment, read_segment, write_segment
from gvstore.store import Store, default_root
from gvstore.synth import SynthConfig, generate

HERE = Path(__file__).parent


def _synth(store: Store, **kw: object) -> list:
    recs = list(generate(SynthConfig(**kw)))  # type: ignore[arg-type]
    with store.writer("synth", flush_records=37) as w:
        for r in recs:
            w.add(r)
    return recs


def test_default_root_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GVSTORE_STORE", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x"
    monkeypatch.delenv("GVSTORE_STORE")
    assert default_root() == Path("data/store")


def test_replay_returns_exactly_what_was_written(tmp_path: Path) -> None:
    store = Store(tmp_path)
    written = _synth(store, prompts=20, samples=4,
                     methods=("mc", "cot_score", "cot_binary", "tournament"))
    assert len(store.segments()) > 1
    back = store.records()
    assert sorted(r.id for r in back) == sorted(r.id for r in written)
    by_id = {r.id: r for r in written}
    assert all(by_id[r.id] == r for r in back)
    kinds = {type(r).__name__ for r in back}
    assert kinds == {"Prompt", "Generation", "Grade", "Verification", "Comparison"}
    assert all(isinstance(r, Grade) for r in store.records(["grade"]))


def test_segment_name_is_digest_of_bytes_and_no_temp_left(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _synth(store, prompts=3, samples=2)
    for seg in store.segments():
        read_segment(seg)  # raises if name and bytes disagree
        assert seg.name.endswith(SEGMENT_SUFFIX)
    assert store.leftover_tmp() == []


def test_duplicates_are_dropped_on_replay(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = _synth(store, prompts=5, samples=2)
    with store.writer("again") as w:  # the same records again, in another folder
        w.extend(first)
    assert len(store.records()) == len(first)
    assert store.verify().duplicates == len(first)


def test_missing_keys(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = child_records(30)
    with store.writer("gen") as w:
        w.extend(recs[:20])
    keys = [r.key for r in recs]
    assert store.missing(keys) == keys[20:]
    assert store.missing(keys, kind="generation") == keys[20:]
    assert store.missing(keys, kind="grade") == keys
    assert store.missing(keys[25:] + keys[25:]) == keys[25:]  # no repeats, order kept
    assert Store(tmp_path / "empty").missing(keys[:3]) == keys[:3]


def test_writer_flushes_by_count_and_time(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = child_records(10)
    w = store.writer("gen", flush_records=4, flush_seconds=3600)
    w.extend(recs)
    assert len(w.written) == 2  # 4 + 4 flushed, 2 buffered
    assert len(store.records()) == 8
    w.close()
    assert len(store.records()) == 10
    w2 = store.writer("gen2", flush_records=10**6, flush_seconds=0.0)
    w2.add(recs[0])  # T = 0 s: every add flushes
    assert len(w2.written) == 1


def test_writer_flushes_on_exception(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = child_records(5)
    with pytest.raises(RuntimeError), store.writer("gen") as w:
        w.extend(recs)
        raise RuntimeError("boom")
    assert len(store.records()) == 5


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_flipped_byte_and_truncation_are_reported_by_name(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = _synth(store, prompts=10, samples=4)
    segs = store.segments()
    assert len(segs) >= 3
    lost = {r.id for seg in segs[:2] for r in decode_segment(seg)}  # read before the damage
    _flip_byte(segs[0], len(segs[0].read_bytes()) // 2)
    segs[1].write_bytes(segs[1].read_bytes()[:-7])
    rep = store.verify()
    assert not rep.ok
    assert sorted(p for p, _ in rep.damaged_segments) == sorted([str(segs[0]), str(segs[1])])
    # Reading fails, naming the file, unless asked to skip; skipping reports what it skipped.
    with pytest.raises(DamagedSegment) as info:
        store.records()
    assert str(segs[0]) in str(info.value) or str(segs[1]) in str(info.value)
    skipped: list[DamagedSegment] = []
    got = store.records(skip_damaged=True, on_skip=skipped.append)
    assert sorted(str(e.path) for e in skipped) == sorted([str(segs[0]), str(segs[1])])
    assert lost and len(got) == len(recs) - len(lost)
    assert {r.id for r in got} == {r.id for r in recs} - lost


def test_a_tampered_record_in_a_renamed_segment_is_found_by_verify(tmp_path: Path) -> None:
    # A segment rewritten with consistent name but a changed record: only the record-level
    # check (store verify) can see it.
    store = Store(tmp_path)
    rec = seal(Grade(generation_id="sha256:" + "0" * 64, grader="g", strict=1.0, flexible=1.0))
    bad = encoder.encode(rec).replace(b'"strict":1.0', b'"strict":0.0')
    write_segment(tmp_path / "x", zstandard.ZstdCompressor().compress(bad + b"\n"))
    rep = store.verify()
    assert not rep.ok and "id mismatch" in rep.bad_records[0][2]


def test_leftover_temporary_files_are_not_segments(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _synth(store, prompts=2, samples=2)
    stale = tmp_path / "synth" / (".deadbeef" + SEGMENT_SUFFIX + ".123.part")
    stale.write_bytes(b"partial garbage")
    assert stale not in store.segments()
    assert store.leftover_tmp() == [stale]
    assert store.verify().ok


def test_nested_folders_are_segments_too(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.writer("verify/mc-arith") as w:
        w.extend(child_records(3))
    assert len(store.records()) == 3
    assert store.segments()[0].parent == tmp_path / "verify" / "mc-arith"


def test_get_by_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = child_records(5)
    with store.writer("gen") as w:
        w.extend(recs)
    assert store.get(recs[2].id[7:20]) == recs[2]
    assert store.get(recs[3].key) == recs[3]
    with pytest.raises(GvstoreError, match="no record"):
        store.get("ffffffffffffffff0")


def test_bad_folder_names_are_refused(tmp_path: Path) -> None:
    for bad in ("", ".cache", "a/.b", "/abs", "a//b", "../up"):
        with pytest.raises(GvstoreError):
            Store(tmp_path).writer(bad)


def _run_child(root: Path, n: int, flush: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, str(HERE / "writer_child.py"), str(root), str(n), str(flush)],
        stdout=subprocess.PIPE, text=True, env=env,
    )


def test_writer_killed_with_sigkill_loses_only_the_unflushed_batch(tmp_path: Path) -> None:
    n, flush = 20_000, 500
    kills = 0
    for delay_flushes in (3, 9):
        child = _run_child(tmp_path, n, flush)
        assert child.stdout is not None
        seen = 0
        for line in child.stdout:
            if line.strip() == "done":
                break
            seen += 1
            if seen == delay_flushes:
                time.sleep(0.003 * delay_flushes)  # land somewhere inside a later batch
                child.send_signal(signal.SIGKILL)
                kills += 1
                break
        child.wait()
        assert child.returncode == -signal.SIGKILL
        store = Store(tmp_path)
        # Nothing partial under a real name: every segment checks, and holds whole batches.
        rep = store.verify()
        assert rep.ok and rep.duplicates == 0
        assert rep.records % flush == 0 and rep.records >= seen * flush
    assert kills == 2
    # The rerun completes: everything present once, nothing lost, nothing twice.
    child = _run_child(tmp_path, n, flush)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip().endswith("done")
    store = Store(tmp_path)
    rep = store.verify()
    assert rep.ok and rep.duplicates == 0 and rep.records == n
    want = {r.id for r in child_records(n)}
    assert {r.id for r in store.records()} == want
    # A further rerun writes nothing.
    child = _run_child(tmp_path, n, flush)
    out, _ = child.communicate(timeout=120)
    assert out.strip() == "done"
    assert len(store.segments()) == len(Store(tmp_path).segments())
