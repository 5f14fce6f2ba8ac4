"""Segments: the files of the store, their names and bytes, and how one is written or read.

A segment is ``<sha256 hex of the file's bytes>.jsonl.zst``: zstd-compressed JSON lines, one
record a line. It is written whole under a hidden temporary name, fsynced and renamed (see
``gvstore.io.atomic_path``), then journalled (``gvstore.journal``), so a crash never leaves a
partial segment under a real name; its name is the digest of its bytes, so every read checks
it cheaply. Failed writes (disk full, read-only store) are ``GvstoreError``s naming the path
and what to do (``io_error``). The buffered writer over these is ``gvstore.writer.Writer``.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import msgspec
import zstandard

from gvstore import journal, lock
from gvstore import projcache as _projcache
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import write_atomic
from gvstore.records import Record, decoder

SEGMENT_SUFFIX = ".jsonl.zst"
TMP_SUFFIX = ".part"

_WHAT_TO_DO = {
    errno.ENOSPC: "the disk is full: free space (or point --store / GVSTORE_STORE at another "
                  "disk) and rerun; what was already written is kept and the run resumes",
    errno.EDQUOT: "the disk quota is exceeded: free space and rerun; what was already written "
                  "is kept and the run resumes",
    errno.EFBIG: "the file size limit (ulimit -f) was reached: raise it and rerun",
    errno.EROFS: "the store is on a read-only file system: write to a writable copy "
                 "(--store / GVSTORE_STORE) or remount it read-write",
    errno.EACCES: "permission denied: make the store writable by this user or use another "
                  "--store",
    errno.EPERM: "permission denied: make the store writable by this user or use another "
                 "--store",
}


def io_error(exc: OSError, path: Path, doing: str) -> GvstoreError:
    """A ``GvstoreError`` for a failed store write: what failed, where, and what to do."""
    hint = _WHAT_TO_DO.get(exc.errno or 0, "check the disk and the permissions, then rerun")
    return GvstoreError(f"cannot {doing} {path}: {exc.strerror or exc}; {hint}")


def recover(folder: Path) -> str | None:
    """Tidy a folder whose lock was just taken: no other writer is active in it now.

    Removes temporary files of earlier (dead) writers, finishes or undoes an interrupted
    compaction (``gvstore.compact_intent.settle``: before adoption, so that the segments it replaces
    are never adopted back), cuts a torn last journal line, and adopts segments the journal
    does not list (a writer killed between renaming a segment and journalling it) so that the
    journal again names every segment present. Returns what was done about a compaction.
    """
    from gvstore.compact_intent import settle  # it imports this module

    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return None
    me = os.getpid()
    for n in names:
        if n.endswith(TMP_SUFFIX) and _projcache.part_pid(n) != me:
            (folder / n).unlink(missing_ok=True)
    settled = settle(folder)
    if settled is not None:
        names = os.listdir(folder)
    present = [n for n in names if n.endswith(SEGMENT_SUFFIX) and not n.startswith(".")]
    j = journal.read_journal(folder)
    if j is None:
        if present:  # a folder from before journals: adopt what is there
            journal.rewrite(folder, sorted(present))
        return settled
    if j.torn:
        journal.truncate_torn(j)
    listed = set(j.names)
    for n in sorted(present):
        if n not in listed:
            journal.append(folder, n)
    return settled


def write_segment(folder: Path, data: bytes) -> Path:
    """Atomically place compressed segment bytes under their digest name in ``folder`` and
    journal it, holding the folder's lock (shared with this process's open ``Writer``).

    A failed write (disk full, read-only, permissions) removes its temporary file and raises
    a ``GvstoreError`` naming the path; a segment is journalled only once it is in place."""
    name = hashlib.sha256(data).hexdigest() + SEGMENT_SUFFIX
    final = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fresh = lock.acquire(folder)
    except OSError as exc:
        raise io_error(exc, folder, "open the store folder") from exc
    try:
        if fresh:
            recover(folder)
        try:
            write_atomic(final, data)  # temporary file, fsync, rename, folder fsync
        except OSError as exc:
            raise io_error(exc, final, "write segment") from exc
        try:
            journal.append(folder, name, sync=fresh)  # a Writer syncs it once, on close
        except OSError as exc:
            # The segment is whole and in place; the next writer adopts it into the journal.
            raise io_error(exc, journal.journal_path(folder), "append to journal") from exc
    except OSError as exc:
        raise io_error(exc, folder, "tidy the store folder") from exc
    finally:
        lock.release(folder)
    return final


def read_segment(path: Path) -> bytes:
    """The decompressed lines of a segment, after checking its bytes against its name."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DamagedSegment(path, f"cannot read: {exc.strerror}") from exc
    expect = path.name[: -len(SEGMENT_SUFFIX)]
    got = hashlib.sha256(raw).hexdigest()
    if got != expect:
        raise DamagedSegment(path, f"content digest {got[:12]} does not match its name")
    try:
        if zstandard.frame_content_size(raw) > 0:
            # One-shot decompression releases the GIL (the streaming object does not), so
            # the read-ahead thread of Store.checked_segments really runs beside the decoder.
            return zstandard.ZstdDecompressor().decompress(raw)
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except zstandard.ZstdError as exc:
        raise DamagedSegment(path, f"not valid zstd: {exc}") from exc


def decode_segment(path: Path) -> list[Record]:
    """Every record of one segment (digest-checked, decoded; duplicates not yet dropped)."""
    data = read_segment(path)
    try:
        return decoder.decode_lines(data)
    except msgspec.DecodeError as exc:
        raise DamagedSegment(path, f"bad record: {exc}") from exc
