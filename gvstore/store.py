"""The record store: append-only, content-addressed segments of zstd-compressed JSON lines.

Layout: ``<root>/<folder>/<sha256 hex of the file's bytes>.jsonl.zst``. Each stage writes into
its own folder (its DVC output). A segment is written to a hidden temporary name, fsynced and
renamed, so a crash never leaves a partial segment under a real name; a segment's name is the
digest of its bytes, so every read can check it cheaply. Hidden folders (``.cache``) and
temporary files are not segments.

Each folder also holds ``.journal`` (the names of the segments committed there, see
``gvstore.journal``), so a deleted segment is noticed, and, while a writer is open, ``.lock``
(one writer per folder, see ``gvstore.lock``). A writer that opens a folder removes the
temporary files of dead writers and adopts segments a crash left out of the journal. Failed
writes (disk full, read-only store) are ``GvstoreError``s naming the path and what to do.
See docs/store.md for what is checked when.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import msgspec
import zstandard

from gvstore import journal, lock
from gvstore import projcache as _projcache
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.journal import DamagedJournal, MissingSegment
from gvstore.lock import StoreLocked
from gvstore.records import Record, check, decoder, encoder, kind_of, seal

__all__ = ["DamagedJournal", "MissingSegment", "StoreLocked"]

SEGMENT_SUFFIX = ".jsonl.zst"
TMP_SUFFIX = ".part"
DEFAULT_ROOT = Path("data/store")
ENV_VAR = "GVSTORE_STORE"
DEFAULT_FLUSH_RECORDS = 4096
DEFAULT_FLUSH_SECONDS = 30.0
DEFAULT_LEVEL = 6
READ_AHEAD = 2  # segments read, checked and decompressed ahead of the decoder


def default_root() -> Path:
    """The store root: ``$GVSTORE_STORE`` if set, else ``data/store``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_ROOT


class _KeyView(msgspec.Struct, gc=False):
    """Decodes only the kind, key and id of a line; msgspec skips the rest cheaply."""

    kind: str
    key: str
    id: str


_key_decoder = msgspec.json.Decoder(_KeyView)


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


def _recover(folder: Path) -> None:
    """Tidy a folder whose lock was just taken: no other writer is active in it now.

    Removes temporary files of earlier (dead) writers, cuts a torn last journal line, and
    adopts segments the journal does not list (a writer killed between renaming a segment and
    journalling it) so that the journal again names every segment present.
    """
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    me = os.getpid()
    for n in names:
        if n.endswith(TMP_SUFFIX) and _projcache.part_pid(n) != me:
            (folder / n).unlink(missing_ok=True)
    present = [n for n in names if n.endswith(SEGMENT_SUFFIX) and not n.startswith(".")]
    j = journal.read_journal(folder)
    if j is None:
        if present:  # a folder from before journals: adopt what is there
            journal.rewrite(folder, sorted(present))
        return
    if j.torn:
        journal.truncate_torn(j)
    listed = set(j.names)
    for n in sorted(present):
        if n not in listed:
            journal.append(folder, n)


class Writer:
    """Buffers records and writes them as segments into one store folder.

    A segment is flushed every ``flush_records`` records or ``flush_seconds`` seconds (checked
    on each ``add``), and on ``close``; a crash loses at most the unflushed batch. Leaving the
    ``with`` block flushes too, even on an exception: every buffered record is whole.
    """

    def __init__(
        self,
        folder: Path,
        *,
        flush_records: int = DEFAULT_FLUSH_RECORDS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        level: int = DEFAULT_LEVEL,
    ) -> None:
        if flush_records < 1:
            raise GvstoreError(f"flush_records must be >= 1, got {flush_records}")
        self.folder = folder
        self.flush_records = flush_records
        self.flush_seconds = flush_seconds
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._lines: list[bytes] = []
        self._last_flush = time.monotonic()
        self.written: list[Path] = []
        self.count = 0
        self._locked = False
        self._made_folder = False
        self._open_error: GvstoreError | None = None
        self._open()

    def _open(self) -> None:
        """Create the folder and take its lock. Another live writer is an error at once; a
        folder that cannot be written (read-only store) is an error only if there is
        something to write, so a run with nothing to do still works on a read-only store."""
        try:
            if not self.folder.is_dir():
                self.folder.mkdir(parents=True, exist_ok=True)
                self._made_folder = True
            fresh = lock.acquire(self.folder)
        except StoreLocked:
            raise
        except OSError as exc:
            self._open_error = io_error(exc, self.folder, "open the store folder")
            return
        self._locked = True
        self._open_error = None
        if fresh:
            try:
                _recover(self.folder)
            except OSError as exc:
                self._release()
                raise io_error(exc, self.folder, "tidy the store folder") from exc

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            lock.release(self.folder)
            if self._made_folder:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()  # only if nothing was written into it

    def add(self, rec: Record) -> Record:
        """Append one record (sealed here if its key or id is empty); returns it sealed."""
        if not rec.id or not rec.key:
            rec = seal(rec)
        self._lines.append(encoder.encode(rec))
        self.count += 1
        if (
            len(self._lines) >= self.flush_records
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()
        return rec

    def extend(self, recs: Iterable[Record]) -> None:
        for rec in recs:
            self.add(rec)

    def add_batch(self, recs: Iterable[Record]) -> list[Record]:
        """Append records that belong together (one model batch): they land in one segment,
        so a crash keeps all of them or none. Returns them sealed."""
        sealed = [r if (r.id and r.key) else seal(r) for r in recs]
        self._lines.extend(encoder.encode(r) for r in sealed)
        self.count += len(sealed)
        if (
            len(self._lines) >= self.flush_records
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()
        return sealed

    def flush(self) -> Path | None:
        """Write the buffered records as one segment; returns its path (None if empty)."""
        self._last_flush = time.monotonic()
        if not self._lines:
            return None
        if not self._locked:
            self._open()
            if self._open_error is not None:
                raise self._open_error
        data = self._compressor.compress(b"\n".join(self._lines) + b"\n")
        path = write_segment(self.folder, data)  # raises GvstoreError; the lines stay buffered
        self._lines = []
        self.written.append(path)
        return path

    def close(self) -> None:
        """Flush, make the journal durable, and give the folder's lock back (also if the flush
        fails)."""
        try:
            self.flush()
            if self.written and self._locked:
                try:
                    journal.sync(self.folder)
                except OSError as exc:
                    raise io_error(exc, journal.journal_path(self.folder), "sync") from exc
        finally:
            self._lines = []
            self._release()

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_segment(folder: Path, data: bytes) -> Path:
    """Atomically place compressed segment bytes under their digest name in ``folder`` and
    journal it, holding the folder's lock (shared with this process's open ``Writer``).

    A failed write (disk full, read-only, permissions) removes its temporary file and raises
    a ``GvstoreError`` naming the path; a segment is journalled only once it is in place."""
    name = hashlib.sha256(data).hexdigest() + SEGMENT_SUFFIX
    final = folder / name
    tmp = folder / f".{name}.{os.getpid()}{TMP_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fresh = lock.acquire(folder)
    except OSError as exc:
        raise io_error(exc, folder, "open the store folder") from exc
    try:
        if fresh:
            _recover(folder)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            journal.fsync_dir(folder)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
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
            # the read-ahead thread of Store._checked really runs beside the decoder.
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


@dataclass
class VerifyReport:
    """What ``Store.verify`` found. ``ok`` is False if anything is damaged.

    Damage: ``damaged_segments`` (bytes do not match the name, not zstd, unreadable),
    ``missing_segments`` (journalled, not on disk), ``bad_records``, ``damaged_journals`` and
    ``damaged_cache``. Notes (not damage): ``leftover_tmp`` (temporary files of killed
    writers), ``unjournalled`` (segments a journal does not list yet), ``no_journal`` (folders
    from before journals), ``torn_journals``, ``unlisted_cache``. ``fixed``: what ``fix=True``
    did.
    """

    segments: int = 0
    records: int = 0
    duplicates: int = 0
    damaged_segments: list[tuple[str, str]] = field(default_factory=list)
    missing_segments: list[tuple[str, str]] = field(default_factory=list)
    bad_records: list[tuple[str, int, str]] = field(default_factory=list)
    damaged_journals: list[tuple[str, str]] = field(default_factory=list)
    damaged_cache: list[tuple[str, str]] = field(default_factory=list)
    cache_files: int = 0
    leftover_tmp: list[str] = field(default_factory=list)
    unjournalled: list[str] = field(default_factory=list)
    no_journal: list[str] = field(default_factory=list)
    torn_journals: list[str] = field(default_factory=list)
    unlisted_cache: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.damaged_segments or self.missing_segments or self.bad_records
                    or self.damaged_journals or self.damaged_cache)


@dataclass
class FolderJournal:
    """One folder's segments against its journal (``journal`` None: the folder has none)."""

    folder: Path
    present: set[str]
    journal: journal.Journal | None

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


SkipCallback = Callable[[DamagedSegment], None]


class Store:
    """A store root holding segment folders. Reading never changes anything."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        skip_damaged: bool = False,
        on_skip: SkipCallback | None = None,
    ) -> None:
        """``skip_damaged`` / ``on_skip``: the default for every read of this store (and of
        ``Projections`` over it): skip damaged or missing segments, telling ``on_skip``."""
        self.root = Path(root) if root is not None else default_root()
        self.skip_damaged = skip_damaged
        self.on_skip = on_skip

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache"

    def writer(self, folder: str = "misc", **kwargs: float | int) -> Writer:
        """A writer into ``<root>/<folder>`` (``folder`` may nest: ``verify/mc-arith``; see
        ``Writer`` for the flush options)."""
        from gvstore.names import check_folder  # the safe-name rule, each part (names.py)
        check_folder(folder, "store folder name")
        return Writer(self.root / folder, **kwargs)  # type: ignore[arg-type]

    def _scan(self) -> tuple[list[Path], dict[Path, set[str]]]:
        """Every segment (sorted), and folder -> segment names for every folder that has
        segments or a journal (hidden folders skipped)."""
        if not self.root.exists():
            return [], {}
        found: list[Path] = []
        folders: dict[Path, set[str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            base = Path(dirpath)
            names = {f for f in filenames if f.endswith(SEGMENT_SUFFIX) and not f.startswith(".")}
            if names or journal.JOURNAL_NAME in filenames:
                folders[base] = names
            found.extend(base / f for f in names)
        return sorted(found), folders

    def segments(self) -> list[Path]:
        """Every segment under the root, sorted by path (hidden folders skipped)."""
        return self._scan()[0]

    def journals(self) -> list[FolderJournal]:
        """Each folder's segments against its journal, by folder."""
        _, folders = self._scan()
        return [FolderJournal(f, names, journal.read_journal(f))
                for f, names in sorted(folders.items())]

    def check_journals(
        self, skip_damaged: bool | None = None, on_skip: SkipCallback | None = None
    ) -> list[DamagedSegment]:
        """Raise ``MissingSegment`` for a journalled segment that is not on disk (or
        ``DamagedJournal``), unless ``skip_damaged``: then tell ``on_skip`` and return them.
        Segments a journal does not list are accepted (see ``gvstore.journal``)."""
        skip = self.skip_damaged if skip_damaged is None else skip_damaged
        cb = on_skip if on_skip is not None else self.on_skip
        found: list[DamagedSegment] = []
        for fj in self.journals():
            for err in fj.damage():
                if not skip:
                    raise err
                found.append(err)
                if cb is not None:
                    cb(err)
        return found

    def leftover_tmp(self) -> list[Path]:
        """Temporary files left by a writer that was killed mid-flush (never real segments)."""
        if not self.root.exists():
            return []
        return sorted(
            p for p in self.root.rglob("*" + TMP_SUFFIX)
            if ".cache" not in p.relative_to(self.root).parts
        )

    def _checked(
        self, skip_damaged: bool | None, on_skip: SkipCallback | None, *, journals: bool = True
    ) -> Iterator[tuple[Path, bytes]]:
        """(path, decompressed bytes) of each checked segment, reading segments ahead; first
        the journals are checked (unless ``journals`` is False: the caller did).

        Reading, hashing and decompressing release the GIL, so a helper thread does them for
        the next segment while the caller decodes this one.
        """
        skip_damaged = self.skip_damaged if skip_damaged is None else skip_damaged
        on_skip = on_skip if on_skip is not None else self.on_skip
        if journals:
            self.check_journals(skip_damaged, on_skip)
        paths = self.segments()
        if not paths:
            return
        with ThreadPoolExecutor(max_workers=READ_AHEAD) as pool:
            queue: deque[Future[bytes]] = deque(
                pool.submit(read_segment, p) for p in paths[:READ_AHEAD]
            )
            for i, path in enumerate(paths):
                current = queue.popleft()
                if i + READ_AHEAD < len(paths):
                    queue.append(pool.submit(read_segment, paths[i + READ_AHEAD]))
                try:
                    data = current.result()
                except DamagedSegment as exc:
                    if not skip_damaged:
                        raise
                    if on_skip is not None:
                        on_skip(exc)
                    continue
                yield path, data

    def iter_batches(
        self,
        kinds: Iterable[str] | None = None,
        *,
        skip_damaged: bool | None = None,
        on_skip: SkipCallback | None = None,
    ) -> Iterator[list[Record]]:
        """Every record once (duplicates by id dropped), one list per segment.

        A damaged segment raises ``DamagedSegment`` naming the file (a journalled segment that
        is missing: ``MissingSegment``), unless ``skip_damaged``, in which case ``on_skip`` is
        told about each skipped segment. Both default to the store's own settings.
        """
        skip_damaged = self.skip_damaged if skip_damaged is None else skip_damaged
        on_skip = on_skip if on_skip is not None else self.on_skip
        wanted = set(kinds) if kinds is not None else None
        seen: set[str] = set()
        for path, data in self._checked(skip_damaged, on_skip):
            try:
                recs: list[Record] = decoder.decode_lines(data)
            except msgspec.DecodeError as exc:
                err = DamagedSegment(path, f"bad record: {exc}")
                if not skip_damaged:
                    raise err from exc
                if on_skip is not None:
                    on_skip(err)
                continue
            fresh = {r.id for r in recs}
            if len(fresh) == len(recs) and seen.isdisjoint(fresh):
                seen |= fresh  # the common case: nothing repeated, no per-record work
            else:
                kept = []
                for r in recs:
                    if r.id not in seen:
                        seen.add(r.id)
                        kept.append(r)
                recs = kept
            if wanted is not None:
                recs = [r for r in recs if kind_of(r) in wanted]
            yield recs

    def iter_records(
        self,
        kinds: Iterable[str] | None = None,
        *,
        skip_damaged: bool | None = None,
        on_skip: SkipCallback | None = None,
    ) -> Iterator[Record]:
        """Every record once (duplicates by id dropped); see ``iter_batches``."""
        for batch in self.iter_batches(kinds, skip_damaged=skip_damaged, on_skip=on_skip):
            yield from batch

    def records(
        self,
        kinds: Iterable[str] | None = None,
        *,
        skip_damaged: bool | None = None,
        on_skip: SkipCallback | None = None,
    ) -> list[Record]:
        """Every record once, as a list; see ``iter_batches``."""
        out: list[Record] = []
        for batch in self.iter_batches(kinds, skip_damaged=skip_damaged, on_skip=on_skip):
            out.extend(batch)
        return out

    def keys(self, kind: str | None = None) -> set[str]:
        """The keys present in the store (of one kind, or all)."""
        out: set[str] = set()
        for path, data in self._checked(None, None):
            try:
                views = _key_decoder.decode_lines(data)
            except msgspec.DecodeError as exc:
                err = DamagedSegment(path, f"bad record: {exc}")
                if not self.skip_damaged:
                    raise err from exc
                if self.on_skip is not None:
                    self.on_skip(err)
                continue
            if kind is None:
                out.update(v.key for v in views)
            else:
                out.update(v.key for v in views if v.kind == kind)
        return out

    def missing(self, keys: Iterable[str], kind: str | None = None) -> list[str]:
        """Those of ``keys`` (in their order, without repeats) that no stored record has."""
        have = self.keys(kind)
        out: list[str] = []
        seen: set[str] = set()
        for k in keys:
            if k not in have and k not in seen:
                seen.add(k)
                out.append(k)
        return out

    def get(self, ref: str) -> Record:
        """The record whose id (or key) equals or starts with ``ref`` (``sha256:`` optional)."""
        ref = ref.strip()
        if not ref:
            raise GvstoreError("empty record id")
        full = ref if ref.startswith("sha256:") else "sha256:" + ref
        hits = [r for r in self.iter_records() if r.id.startswith(full)]
        if not hits:
            hits = [r for r in self.iter_records() if r.key.startswith(full)]
        if not hits:
            raise GvstoreError(f"no record with id or key {ref!r} in {self.root}")
        if len(hits) > 1:
            raise GvstoreError(f"{ref!r} matches {len(hits)} records; give more digits")
        return hits[0]

    def verify(self, *, fix: bool = False) -> VerifyReport:
        """Re-check every segment's digest, every record's key and id, each folder's journal
        against its segments, and the projection caches' digests.

        ``fix``: per folder, under its lock, remove temporary files of dead writers, adopt
        unjournalled segments (creating the journal of a folder from before journals), cut a
        torn journal line and forget journalled segments that are missing (their records are
        lost; the stage recomputes them); delete damaged or unlisted cache files. The report
        describes the store as found, ``fixed`` lists what was done.
        """
        rep = VerifyReport()
        seen: set[str] = set()
        rep.leftover_tmp = [str(p) for p in self.leftover_tmp()]
        for fj in self.journals():
            if fj.journal is None:
                rep.no_journal.append(str(fj.folder))
                continue
            for _, reason in fj.journal.bad_lines:
                rep.damaged_journals.append((str(fj.journal.path), reason))
            if fj.journal.torn:
                rep.torn_journals.append(str(fj.journal.path))
            rep.missing_segments.extend(
                (str(fj.folder / n), str(fj.journal.path)) for n in fj.missing)
            rep.unjournalled.extend(str(fj.folder / n) for n in fj.unjournalled)
        for path in self.segments():
            rep.segments += 1
            try:
                data = read_segment(path)
            except DamagedSegment as exc:
                rep.damaged_segments.append((str(path), exc.reason))
                continue
            for lineno, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = decoder.decode(line)
                except msgspec.DecodeError as exc:
                    rep.bad_records.append((str(path), lineno, f"does not decode: {exc}"))
                    continue
                rep.records += 1
                problem = check(rec)
                if problem is not None:
                    rep.bad_records.append((str(path), lineno, problem))
                if rec.id in seen:
                    rep.duplicates += 1
                seen.add(rec.id)
        caches = [(d, _projcache.check(d)) for d in _projcache.cache_dirs(self.root)]
        for _, crep in caches:
            rep.cache_files += crep.checked
            rep.damaged_cache.extend(crep.damaged)
            rep.unlisted_cache.extend(crep.unlisted)
            rep.leftover_tmp.extend(crep.stale_tmp)
        if fix:
            rep.fixed = self._fix(rep)
            for d, crep in caches:
                try:
                    rep.fixed.extend(_projcache.fix(d, crep))
                except OSError as exc:
                    raise io_error(exc, d, "clean the projection cache") from exc
        return rep

    def _fix(self, rep: VerifyReport) -> list[str]:
        done: list[str] = []
        for fj in self.journals():
            folder = fj.folder
            try:
                fresh = lock.acquire(folder)
            except OSError as exc:
                raise io_error(exc, folder, "lock the store folder") from exc
            try:
                before = set(os.listdir(folder))
                had = fj.journal
                if fresh:
                    _recover(folder)  # .part files, torn line, adoption
                    journal.sync(folder)
                after = set(os.listdir(folder))
                done.extend(f"removed temporary file {folder / n}" for n in sorted(before - after))
                if had is None and fj.present:
                    done.append(f"created journal {journal.journal_path(folder)} "
                                f"({len(fj.present)} segments)")
                else:
                    done.extend(f"journalled {folder / n}" for n in fj.unjournalled)
                    if had is not None and had.torn:
                        done.append(f"cut the torn last line of {had.path}")
                j = journal.read_journal(folder)
                if j is not None and (j.bad_lines or any(n not in fj.present for n in j.names)):
                    gone = [n for n in j.names if n not in fj.present]
                    journal.rewrite(folder, [n for n in j.names if n in fj.present])
                    done.extend(f"forgot missing segment {folder / n} (its records are lost; "
                                "rerun the stage to recompute them)" for n in gone)
                    if j.bad_lines:
                        done.append(f"rewrote {j.path} without its bad lines")
            except OSError as exc:
                raise io_error(exc, folder, "fix the store folder") from exc
            finally:
                lock.release(folder)
        return done


class _StatView(msgspec.Struct, gc=False):
    kind: str
    id: str
    task: str | None = None
    model: str | None = None
    method: str | None = None
    verifier: str | None = None


_stat_decoder = msgspec.json.Decoder(_StatView)


@dataclass
class StoreStats:
    """Counts and sizes of a store (duplicates by id counted once)."""

    root: str
    segments: int = 0
    records: int = 0
    duplicates: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    verifiers: dict[str, int] = field(default_factory=dict)
    bytes_on_disk: int = 0
    bytes_raw: int = 0

    @property
    def compression_ratio(self) -> float:
        return self.bytes_raw / self.bytes_on_disk if self.bytes_on_disk else 0.0


def _bump(d: dict[str, int], k: str | None) -> None:
    if k is not None:
        d[k] = d.get(k, 0) + 1


def stats(store: Store) -> StoreStats:
    """Record counts by kind, model (generations), task, method and verifier, and sizes."""
    st = StoreStats(root=str(store.root))
    seen: set[str] = set()
    for path, data in store._checked(None, None):
        st.segments += 1
        st.bytes_on_disk += path.stat().st_size
        st.bytes_raw += len(data)
        try:
            views = _stat_decoder.decode_lines(data)
        except msgspec.DecodeError as exc:
            raise DamagedSegment(path, f"bad record: {exc}") from exc
        for v in views:
            if v.id in seen:
                st.duplicates += 1
                continue
            seen.add(v.id)
            st.records += 1
            _bump(st.by_kind, v.kind)
            if v.kind == "generation":
                _bump(st.models, v.model)
                _bump(st.tasks, v.task)
            elif v.kind in ("verification", "comparison"):
                _bump(st.methods, v.method)
                _bump(st.verifiers, v.verifier)
    return st
