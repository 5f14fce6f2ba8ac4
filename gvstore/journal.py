"""The journal of a store folder: the names of the segments committed there, one a line.

``<folder>/.journal`` starts with the line ``gvstore-journal 1``; each later line is the name of
one segment (``<sha256>.jsonl.zst``), appended after the segment has been renamed into place.
It lets a reader tell a deleted segment from one that was never written.

Why an append and not temp + rename: rewriting the whole journal on every segment costs
O(segments) bytes and two fsyncs (file and folder) per flush; an append of one line costs a
``write``. A crash can tear only the last line (a line without its newline); readers ignore a
torn last line, and the next writer (holding the folder lock) truncates it and re-adds the
segment it named, so a torn line never hides nor invents a segment. Whole rewrites
(``rewrite``, used by ``store verify --fix``) go through a temporary file, fsync and rename.

Order of a commit: segment temp file written and fsynced, renamed, folder fsynced, then the
journal line appended. A crash between the rename and the append leaves a segment the journal
does not list yet: readers accept it (its bytes still match its name, and it is durable), and
the next writer of that folder adopts it into the journal. Because a missing line is harmless
in that way, the journal is ``fdatasync``ed once when a writer closes (and after a lone
``write_segment``), not after every line: a power cut can only lose lines, never keep a line
whose segment is not on disk (the segment's rename is durable before its line is written).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import fsync_dir, write_atomic

JOURNAL_NAME = ".journal"
HEADER = "gvstore-journal 1"
_NAME = re.compile(r"[0-9a-f]{64}\.jsonl\.zst")


class MissingSegment(DamagedSegment):
    """A segment the folder's journal lists but that is not on disk (deleted or lost)."""

    def __init__(self, path: Path, journal: Path) -> None:
        reason = (f"listed in the journal {journal} but missing (deleted?): restore it, or "
                  "accept its loss with `gvstore store verify --fix` (its records are then "
                  "gone and the stage recomputes them); --skip-damaged reads without it")
        GvstoreError.__init__(self, f"missing segment {path}: {reason}")
        self.path = path
        self.reason = reason


class DamagedJournal(DamagedSegment):
    """A journal with a line that is not a segment name (edited or corrupted)."""

    def __init__(self, path: Path, reason: str) -> None:
        GvstoreError.__init__(self, f"damaged journal {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class Journal:
    """What a journal file holds. ``torn``: its last line has no newline (a crash mid-append)."""

    path: Path
    names: list[str] = field(default_factory=list)
    torn: bool = False
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    good_bytes: int = 0  # length of the prefix that ends in a whole line


def journal_path(folder: Path) -> Path:
    return folder / JOURNAL_NAME


def read_journal(folder: Path) -> Journal | None:
    """The folder's journal, or None if it has none (a store from before journals)."""
    path = journal_path(folder)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedJournal(path, f"cannot read: {exc.strerror}") from exc
    j = Journal(path)
    end = raw.rfind(b"\n") + 1
    j.good_bytes = end
    j.torn = end < len(raw)
    seen: set[str] = set()
    for lineno, line in enumerate(raw[:end].split(b"\n")[:-1], 1):
        text = line.decode("utf-8", "replace")
        if lineno == 1:
            if text != HEADER:
                j.bad_lines.append((lineno, f"first line is not {HEADER!r}"))
            continue
        if not _NAME.fullmatch(text):
            j.bad_lines.append((lineno, f"line {lineno} is not a segment name"))
        elif text not in seen:
            seen.add(text)
            j.names.append(text)
    return j


def append(folder: Path, name: str, *, sync: bool = False) -> None:
    """Append one segment name (``fdatasync`` it if ``sync``); creating the journal writes its
    header and fsyncs the file and the folder."""
    path = journal_path(folder)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        created = os.fstat(fd).st_size == 0
        line = (HEADER + "\n" if created else "") + name + "\n"
        os.write(fd, line.encode())  # one write: a crash tears at most this line
        if sync or created:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(folder)


def sync(folder: Path) -> None:
    """``fdatasync`` the folder's journal (once per writer, when it closes)."""
    try:
        fd = os.open(journal_path(folder), os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def truncate_torn(j: Journal) -> None:
    """Cut a torn last line off (only the folder's lock holder may)."""
    fd = os.open(j.path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, j.good_bytes)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    j.torn = False


def rewrite(folder: Path, names: list[str]) -> None:
    """Replace the journal whole: temporary file, fsync, rename, folder fsync."""
    write_atomic(journal_path(folder), HEADER + "\n" + "".join(n + "\n" for n in names))


@dataclass
class FolderJournal:
    """One folder's segments against its journal (``journal`` None: the folder has none)."""

    folder: Path
    present: set[str]
    journal: Journal | None

    @property
    def missing(self) -> list[str]:
        if self.journal is None:
            return []
        return [n for n in self.journal.names if n not in self.present]

    @property
    def unjournalled(self) -> list[str]:
        if self.journal is None:
            return []
        listed = set(self.journal.names)
        return sorted(n for n in self.present if n not in listed)

    def damage(self) -> list[DamagedSegment]:
        """A missing segment or a bad journal line, as the error reading would raise."""
        out: list[DamagedSegment] = []
        if self.journal is None:
            return out
        for _, reason in self.journal.bad_lines:
            out.append(DamagedJournal(self.journal.path, reason))
        out.extend(MissingSegment(self.folder / n, self.journal.path) for n in self.missing)
        return out
