"""Segment compaction: merge a store folder's small segments into large ones, crash-safely.

Long runs write one segment per batch and DVC pays per file. ``compact_folder`` rewrites a
folder's small segments as few of about ``target`` compressed bytes (default 64 MiB):

- **The rule.** A segment of ``target / 2`` compressed bytes or more is left alone. The small
  ones, in journal order, are cut into groups, each closed by the segment that brings it to
  ``target``; every group of two or more becomes one segment: its lines concatenated, each
  record id once (first line kept; also dropped: ids an earlier group of the pass wrote).
  Passes repeat until fewer than two small segments remain, so a second call does nothing.
- **The commit of a group**, under the folder's lock, each step durable before the next:
  (1) the intent ``.compact`` (new name, old names) written atomically; (2) the new segment
  written atomically; (3) the journal rewritten atomically with the new name in place of the
  old ones; (4) the old segments deleted, folder fsync; (5) the intent deleted, folder fsync.
- **A kill at any point** reads the same records (readers accept unjournalled segments and
  drop duplicate ids; after (3) the journal lists only what is there), and ``settle``, run
  first by ``segments.recover`` (every writer taking the lock; ``store verify --fix``), rolls
  forward (steps 3 to 5, idempotent) if the new segment is there, else back
  (``gvstore.compact_intent``), so old segments are never adopted back as duplicates.

A read in another process while segments are deleted can fail with a missing-segment error
(rerun it); the store is never damaged. See docs/store.md, "Compaction".
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard

from gvstore import compact_intent as ci
from gvstore import journal, lock
from gvstore.compact_intent import INTENT_NAME, Intent, finish, id_decoder, write_intent
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import write_atomic
from gvstore.segments import SEGMENT_SUFFIX, io_error, read_segment, recover

DEFAULT_TARGET = 64 << 20
"""The compressed size compaction aims at: 64 MiB."""
MIN_TARGET = 4096
AUTO_MIN_SEGMENTS = 64
"""Auto-compaction (end of a generate or verify run) runs when a folder holds at least this
many segments smaller than ``target / AUTO_SMALL_DIVISOR``."""
AUTO_SMALL_DIVISOR = 8
LEVEL = 6  # as gvstore.writer.DEFAULT_LEVEL

ProgressFn = Callable[[int, int], None]
"""Called as ``(bytes done, bytes to do)`` of small segments read."""


@dataclass
class FolderResult:
    """What compacting one folder did."""

    folder: str
    segments_before: int = 0
    segments_after: int = 0
    merged: int = 0  # old segments replaced
    written: int = 0  # new segments
    records: int = 0  # records in the new segments
    duplicates: int = 0  # lines dropped because their id was already written
    bytes_before: int = 0  # of the merged segments
    bytes_after: int = 0  # of the new segments
    seconds: float = 0.0
    settled: str | None = None  # what was done about an earlier, interrupted compaction

    def as_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "seconds": round(self.seconds, 3)}


def check_target(target: int) -> int:
    if not isinstance(target, int) or isinstance(target, bool) or target < MIN_TARGET:
        raise GvstoreError(f"compaction target size must be at least {MIN_TARGET} bytes, "
                           f"got {target!r}")
    return target



def _ordered(folder: Path) -> list[str]:
    """The folder's segments, journal order first, then any it does not list (sorted)."""
    present = {n for n in os.listdir(folder)
               if n.endswith(SEGMENT_SUFFIX) and not n.startswith(".")}
    j = journal.read_journal(folder)
    listed = [n for n in (j.names if j else []) if n in present]
    return listed + sorted(present - set(listed))


def plan(sizes: Sequence[tuple[str, int]], target: int) -> list[list[str]]:
    """The groups of two or more small segments to merge (see the module's doc for the rule);
    ``sizes`` are (name, compressed bytes) in journal order."""
    groups: list[list[str]] = []
    group: list[str] = []
    total = 0
    for name, size in sizes:
        if size >= target // 2:
            continue
        group.append(name)
        total += size
        if total >= target:
            groups.append(group)
            group, total = [], 0
    groups.append(group)
    return [g for g in groups if len(g) >= 2]


def small_segments(folder: Path, target: int = DEFAULT_TARGET) -> int:
    """How many segments of ``folder`` are smaller than ``target / AUTO_SMALL_DIVISOR``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    limit = target // AUTO_SMALL_DIVISOR
    n = 0
    for name in names:
        if name.endswith(SEGMENT_SUFFIX) and not name.startswith("."):
            try:
                n += (folder / name).stat().st_size < limit
            except OSError:
                continue
    return n


def needs_compaction(folder: Path, target: int = DEFAULT_TARGET) -> bool:
    """The auto-compaction rule: at least ``AUTO_MIN_SEGMENTS`` segments smaller than
    ``target / AUTO_SMALL_DIVISOR``."""
    return small_segments(folder, target) >= AUTO_MIN_SEGMENTS



def _kept_lines(path: Path, seen: set[str], res: FolderResult) -> bytes:
    """The lines of one old segment whose ids are not in ``seen`` (which they join)."""
    data = read_segment(path)
    try:
        ids = [v.id for v in id_decoder.decode_lines(data)]
    except msgspec.DecodeError as exc:
        raise DamagedSegment(path, f"bad record: {exc}") from exc
    lines = [line for line in data.split(b"\n") if line.strip()]
    if len(lines) != len(ids):
        raise DamagedSegment(path, "lines and records do not line up")
    if len(set(ids)) == len(ids) and seen.isdisjoint(ids):
        seen.update(ids)
        res.records += len(ids)
        return b"".join(line + b"\n" for line in lines)
    out = []
    for rid, line in zip(ids, lines, strict=True):
        if rid in seen:
            res.duplicates += 1
            continue
        seen.add(rid)
        out.append(line + b"\n")
    res.records += len(out)
    return b"".join(out)


class _Ticker:
    """Bytes of small segments read so far, told to ``on_progress``."""

    def __init__(self, on_progress: ProgressFn | None) -> None:
        self.on_progress, self.done, self.todo = on_progress, 0, 0

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        if self.on_progress is not None:
            self.on_progress(self.done, self.todo)


def _merge_group(folder: Path, group: list[str], seen: set[str], res: FolderResult,
                 tick: _Ticker) -> None:
    """Merge and commit one group (the five steps of the module's doc)."""
    chunks: list[bytes] = []
    for name in group:
        chunks.append(_kept_lines(folder / name, seen, res))
        tick.add((folder / name).stat().st_size)
    raw = sum(len(c) for c in chunks)
    new: str | None = None
    data = b""
    if raw:
        cobj = zstandard.ZstdCompressor(level=LEVEL).compressobj(size=raw)
        data = b"".join([cobj.compress(c) for c in chunks] + [cobj.flush()])
        new = hashlib.sha256(data).hexdigest() + SEGMENT_SUFFIX
    res.bytes_before += sum((folder / n).stat().st_size for n in group)
    intent = Intent(new, list(group))
    write_intent(folder, intent)
    ci._checkpoint("intent")
    if new is not None:
        write_atomic(folder / new, data)
        ci._checkpoint("segment")
        res.written += 1
        res.bytes_after += len(data)
    finish(folder, intent)
    res.merged += len(group)


def _passes(folder: Path, target: int, res: FolderResult, on_progress: ProgressFn | None
            ) -> None:
    """Plan and merge until fewer than two small segments remain."""
    tick = _Ticker(on_progress)
    while True:
        sizes = [(n, (folder / n).stat().st_size) for n in _ordered(folder)]
        groups = plan(sizes, target)
        if not groups:
            return
        size_of = dict(sizes)
        tick.todo = tick.done + sum(size_of[n] for g in groups for n in g)
        seen: set[str] = set()  # ids written by this pass (its new segments hold them)
        for group in groups:
            _merge_group(folder, group, seen, res, tick)


def compact_folder(folder: Path, *, target: int = DEFAULT_TARGET, name: str | None = None,
                   on_progress: ProgressFn | None = None) -> FolderResult:
    """Merge ``folder``'s small segments (the rule and the commit: the module's doc), holding
    the folder's lock. A folder with a damaged or missing segment is an error (nothing of it
    is changed past the groups already committed); so is one this process is writing."""
    check_target(target)
    res = FolderResult(folder=name if name is not None else str(folder))
    t0 = time.monotonic()
    if not (folder / INTENT_NAME).exists() and not _groups(folder, target):
        res.segments_before = res.segments_after = len(_ordered(folder))
        return res  # nothing to do: no lock taken (a read-only store is fine)
    try:
        fresh = lock.acquire(folder)
    except OSError as exc:
        raise io_error(exc, folder, "lock the store folder") from exc
    try:
        if not fresh:
            raise GvstoreError(f"cannot compact {folder}: this process has a writer open on "
                               "it; close the writer first")
        _locked(folder, target, res, on_progress)
    finally:
        lock.release(folder)
    res.seconds = time.monotonic() - t0
    return res


def _groups(folder: Path, target: int) -> list[list[str]]:
    try:
        return plan([(n, (folder / n).stat().st_size) for n in _ordered(folder)], target)
    except OSError:
        return []


def _locked(folder: Path, target: int, res: FolderResult, on_progress: ProgressFn | None
            ) -> None:
    """``compact_folder`` once the lock is held. A failed write (disk full) undoes the group
    it was committing at once (``settle``), then raises."""
    try:
        res.settled = recover(folder)
        fj = journal.FolderJournal(folder, set(_ordered(folder)), journal.read_journal(folder))
        for err in fj.damage():
            raise err
        res.segments_before = len(fj.present)
        _passes(folder, target, res, on_progress)
        res.segments_after = len(_ordered(folder))
    except OSError as exc:
        with contextlib.suppress(OSError):
            ci.settle(folder)
        raise io_error(exc, folder, "compact the store folder") from exc


def store_folders(root: Path, names: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(name, path) of the folders to compact: every folder of the store, or under each of
    ``names`` (safe relative folders inside ``root``; a trailing ``/`` is dropped), that holds
    segments, a journal or a compaction intent (hidden folders such as ``.cache`` skipped);
    a named folder that holds none of these is listed itself."""
    from gvstore.names import check_folder, inside

    if not names:
        return _walk(root, root)
    out: list[tuple[str, Path]] = []
    for given in names:
        name = given.rstrip("/") if given.strip("/") else given
        check_folder(name, "store folder")
        path = root / name
        if not inside(path, root):
            raise GvstoreError(f"store folder {name!r} resolves to {path.resolve()}, "
                               f"outside the store {root}")
        if not path.is_dir():
            raise GvstoreError(f"no store folder {name!r} in {root}")
        found = _walk(root, path) or [(name, path)]
        out.extend(f for f in found if f not in out)
    return out


def _walk(root: Path, top: Path) -> list[tuple[str, Path]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if any(f.endswith(SEGMENT_SUFFIX) or f in (journal.JOURNAL_NAME, INTENT_NAME)
               for f in filenames):
            path = Path(dirpath)
            found.append((path.relative_to(root).as_posix(), path))
    return found
