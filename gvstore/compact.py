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
  forward (steps 3 to 5, idempotent) if the new segment is there, else back (deletes the
  intent), so old segments are never adopted back into the journal as duplicates.

A read in another process while segments are deleted can fail with a missing-segment error
(rerun it); the store is never damaged. See docs/store.md, "Compaction".
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard

from gvstore import journal, lock
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import fsync_dir, write_atomic
from gvstore.segments import SEGMENT_SUFFIX, io_error, read_segment, recover

DEFAULT_TARGET = 64 << 20
"""The compressed size compaction aims at: 64 MiB."""
MIN_TARGET = 4096
AUTO_MIN_SEGMENTS = 64
"""Auto-compaction (end of a generate or verify run) runs when a folder holds at least this
many segments smaller than ``target / AUTO_SMALL_DIVISOR``."""
AUTO_SMALL_DIVISOR = 8
INTENT_NAME = ".compact"
INTENT_HEADER = "gvstore-compact 1"
_NAME = re.compile(r"[0-9a-f]{64}\.jsonl\.zst")
LEVEL = 6  # as gvstore.writer.DEFAULT_LEVEL

ProgressFn = Callable[[int, int], None]
"""Called as ``(bytes done, bytes to do)`` of small segments read."""


def _checkpoint(step: str) -> None:
    """Called after each durable step of a commit (a seam for the kill tests)."""


class _IdView(msgspec.Struct, gc=False):
    id: str


_id_decoder = msgspec.json.Decoder(_IdView)


@dataclass
class Intent:
    """What ``.compact`` holds: the new segment (None: every record was written by an earlier
    group, so none) that replaces the old ones."""

    new: str | None
    old: list[str]


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



def intent_path(folder: Path) -> Path:
    return folder / INTENT_NAME


def read_intent(folder: Path) -> Intent | None:
    """The folder's compaction intent, None if there is none; ``GvstoreError`` if it does not
    parse (it is written whole, so that means someone edited it)."""
    path = intent_path(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise GvstoreError(f"damaged compaction intent {path}: cannot read: {exc}") from exc
    lines = text.split("\n")
    new: str | None = None
    old: list[str] = []
    ok = len(lines) >= 3 and lines[0] == INTENT_HEADER and lines[-1] == ""
    for line in lines[1:-1] if ok else []:
        word, _, name = line.partition(" ")
        if not _NAME.fullmatch(name) or word not in ("new", "old"):
            ok = False
        elif word == "new" and new is None and not old:
            new = name
        elif word == "old" and name != new:
            old.append(name)
        else:
            ok = False
    if not ok or not old:
        raise GvstoreError(f"damaged compaction intent {path}: not a {INTENT_HEADER!r} file; "
                           "`gvstore store verify --fix` deletes it (nothing is lost)")
    return Intent(new, old)


def _write_intent(folder: Path, intent: Intent) -> None:
    lines = [INTENT_HEADER] + ([f"new {intent.new}"] if intent.new else [])
    lines += [f"old {n}" for n in intent.old]
    write_atomic(intent_path(folder), "\n".join(lines) + "\n")


def _finish(folder: Path, intent: Intent) -> None:
    """Steps 3 to 5 of a commit (idempotent): journal, old segments, intent."""
    j = journal.read_journal(folder)
    old = set(intent.old)
    if j is None:
        names = sorted(n for n in os.listdir(folder)
                       if n.endswith(SEGMENT_SUFFIX) and not n.startswith("."))
    else:
        names = j.names
    kept: list[str] = []
    for n in names:
        if n in old or n == intent.new:
            if intent.new and intent.new not in kept:
                kept.append(intent.new)  # where the first old segment was
            continue
        kept.append(n)
    if j is None or kept != j.names or j.torn or j.bad_lines:
        journal.rewrite(folder, kept)
    _checkpoint("journal")
    for n in intent.old:
        (folder / n).unlink(missing_ok=True)
        _checkpoint("unlink")
    fsync_dir(folder)
    intent_path(folder).unlink(missing_ok=True)
    fsync_dir(folder)
    _checkpoint("done")


def settle(folder: Path) -> str | None:
    """Finish or undo an interrupted compaction of ``folder`` (the caller holds its lock);
    what was done, or None if there was nothing. An intent that does not parse is left for
    ``store verify`` to report (nothing is deleted on its word)."""
    try:
        intent = read_intent(folder)
    except GvstoreError:
        return None
    if intent is None:
        return None
    path = intent_path(folder)
    if intent.new is not None and not _whole(folder / intent.new, intent):
        (folder / intent.new).unlink(missing_ok=True)
        path.unlink()
        fsync_dir(folder)
        return (f"rolled back an interrupted compaction in {folder} (its new segment was not "
                "written; the old segments are kept)")
    _finish(folder, intent)
    return (f"finished an interrupted compaction in {folder} ({len(intent.old)} segments "
            "merged)")


def _whole(path: Path, intent: Intent) -> bool:
    """Is the intent's new segment there and, while old segments remain, sound?"""
    if not path.exists():
        return False
    if not any((path.parent / n).exists() for n in intent.old):
        return True  # nothing else holds its records: never delete it
    try:
        read_segment(path)
    except DamagedSegment:
        return False
    return True



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
        ids = [v.id for v in _id_decoder.decode_lines(data)]
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
    _write_intent(folder, intent)
    _checkpoint("intent")
    if new is not None:
        write_atomic(folder / new, data)
        _checkpoint("segment")
        res.written += 1
        res.bytes_after += len(data)
    _finish(folder, intent)
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
    try:
        fresh = lock.acquire(folder)
    except OSError as exc:
        raise io_error(exc, folder, "lock the store folder") from exc
    try:
        if not fresh:
            raise GvstoreError(f"cannot compact {folder}: this process has a writer open on "
                               "it; close the writer first")
        try:
            res.settled = recover(folder)
            fj = journal.FolderJournal(folder, set(_ordered(folder)), journal.read_journal(folder))
            for err in fj.damage():
                raise err
            res.segments_before = len(fj.present)
            _passes(folder, target, res, on_progress)
            res.segments_after = len(_ordered(folder))
        except OSError as exc:
            raise io_error(exc, folder, "compact the store folder") from exc
    finally:
        lock.release(folder)
    res.seconds = time.monotonic() - t0
    return res


def store_folders(root: Path, names: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(name, path) of the folders to compact: ``names`` (each a safe relative folder that
    exists inside ``root``), or every folder of the store that holds segments, a journal or a
    compaction intent (hidden folders such as ``.cache`` skipped)."""
    from gvstore.names import check_folder, inside

    if names:
        out = []
        for name in names:
            check_folder(name, "store folder")
            path = root / name
            if not inside(path, root):
                raise GvstoreError(f"store folder {name!r} resolves to {path.resolve()}, "
                                   f"outside the store {root}")
            if not path.is_dir():
                raise GvstoreError(f"no store folder {name!r} in {root}")
            out.append((name, path))
        return out
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if any(f.endswith(SEGMENT_SUFFIX) or f in (journal.JOURNAL_NAME, INTENT_NAME)
               for f in filenames):
            path = Path(dirpath)
            found.append((path.relative_to(root).as_posix(), path))
    return found
