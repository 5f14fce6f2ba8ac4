"""The intent file of a compaction (``<folder>/.compact``) and how an interrupted one is settled.

A compaction (``gvstore.compact``) writes the intent, whole, before it writes a group's new
segment: ``gvstore-compact 1``, then ``new <name>`` (absent if every record of the group was
written by an earlier group), then one ``old <name>`` per segment the new one replaces. It
deletes the intent once the journal names the new segment and the old ones are gone.

``settle`` (run first by ``segments.recover``: every writer taking the folder's lock, and
``store verify --fix``) finishes a commit whose new segment is on disk, or undoes one whose new
segment is not. Before it deletes an old segment it checks that each of that segment's records
is held by the new one or by another segment of the folder, so an intent that names the wrong
segments (edited by hand) never deletes a record: such a commit is undone instead, and every
segment still there is adopted into the journal (duplicates, dropped on read; nothing lost).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gvstore import journal
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import fsync_dir, write_atomic
from gvstore.segments import SEGMENT_SUFFIX, read_segment

INTENT_NAME = ".compact"
INTENT_HEADER = "gvstore-compact 1"
_NAME = re.compile(r"[0-9a-f]{64}\.jsonl\.zst")


def _checkpoint(step: str) -> None:
    """Called after each durable step of a commit (a seam for the kill tests)."""


class _IdView(msgspec.Struct, gc=False):
    id: str


id_decoder = msgspec.json.Decoder(_IdView)


def segment_ids(path: Path) -> set[str]:
    """The record ids of one segment (``DamagedSegment`` if it cannot be read)."""
    try:
        return {v.id for v in id_decoder.decode_lines(read_segment(path))}
    except msgspec.DecodeError as exc:
        raise DamagedSegment(path, f"bad record: {exc}") from exc


@dataclass
class Intent:
    """What ``.compact`` holds: the new segment (None: every record was written by an earlier
    group, so none) that replaces the old ones."""

    new: str | None
    old: list[str]


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
        elif word == "old" and name != new and name not in old:
            old.append(name)
        else:
            ok = False
    if not ok or not old:
        raise GvstoreError(f"damaged compaction intent {path}: not a {INTENT_HEADER!r} file; "
                           "`gvstore store verify --fix` deletes it (nothing is lost)")
    return Intent(new, old)


def write_intent(folder: Path, intent: Intent) -> None:
    """Step 1 of a commit: the intent, whole (temporary file, fsync, rename, folder fsync)."""
    lines = [INTENT_HEADER] + ([f"new {intent.new}"] if intent.new else [])
    lines += [f"old {n}" for n in intent.old]
    write_atomic(intent_path(folder), "\n".join(lines) + "\n")


def _present(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder)
                  if n.endswith(SEGMENT_SUFFIX) and not n.startswith("."))


def finish(folder: Path, intent: Intent) -> None:
    """Steps 3 to 5 of a commit (idempotent): journal, old segments, intent."""
    j = journal.read_journal(folder)
    old = set(intent.old)
    kept: list[str] = []
    for n in j.names if j is not None else _present(folder):
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


def _roll_back(folder: Path, intent: Intent, drop_new: bool) -> None:
    """Delete the intent (and, if ``drop_new``, the new segment and its journal line); the
    old segments still there are adopted again by ``recover``."""
    if drop_new and intent.new is not None:
        j = journal.read_journal(folder)
        if j is not None and intent.new in j.names:
            journal.rewrite(folder, [n for n in j.names if n != intent.new])
        (folder / intent.new).unlink(missing_ok=True)
    intent_path(folder).unlink(missing_ok=True)
    fsync_dir(folder)


def _covered(folder: Path, intent: Intent, remaining: list[str], new_ids: set[str]) -> bool:
    """Is every record of the remaining old segments held by the new segment or by another
    segment of the folder? (An old segment that cannot be read: no.)"""
    need: set[str] = set()
    try:
        for n in remaining:
            need |= segment_ids(folder / n)
    except DamagedSegment:
        return False
    need -= new_ids
    skip = {*intent.old, intent.new}
    for n in _present(folder):
        if not need:
            break
        if n not in skip:
            try:
                need -= segment_ids(folder / n)
            except DamagedSegment:
                continue
    return not need


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
    what = f"rolled back an interrupted compaction in {folder}"
    if intent.new is not None and not (folder / intent.new).exists():
        _roll_back(folder, intent, drop_new=False)
        return f"{what} (its new segment was not written; the old segments are kept)"
    remaining = [n for n in intent.old if (folder / n).exists()]
    if remaining:
        try:
            new_ids = segment_ids(folder / intent.new) if intent.new else set()
        except DamagedSegment:
            _roll_back(folder, intent, drop_new=True)
            return f"{what} (its new segment was damaged and is deleted; the old ones are kept)"
        if not _covered(folder, intent, remaining, new_ids):
            _roll_back(folder, intent, drop_new=False)
            return (f"{what} (the segments it replaces hold records found nowhere else: they "
                    "are kept)")
    finish(folder, intent)
    return (f"finished an interrupted compaction in {folder} ({len(intent.old)} segments "
            "merged)")
