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

This module is the reading side (``Store``) and ``stats``; the rest of the store lives in
``gvstore.segments`` (segment names, bytes, one segment written or read), ``gvstore.writer``
(the buffered ``Writer``) and ``gvstore.store_check`` (``store verify`` and ``--fix``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gvstore import journal
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.journal import FolderJournal
from gvstore.records import Record, decoder, kind_of
from gvstore.segments import SEGMENT_SUFFIX, TMP_SUFFIX, read_segment
from gvstore.store_check import VerifyReport
from gvstore.store_check import verify as _verify
from gvstore.writer import Writer

DEFAULT_ROOT = Path("data/store")
ENV_VAR = "GVSTORE_STORE"
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

    def checked_segments(
        self, skip_damaged: bool | None, on_skip: SkipCallback | None, *, journals: bool = True
    ) -> Iterator[tuple[Path, bytes]]:
        """(path, decompressed bytes) of each checked segment, reading segments ahead; first
        the journals are checked (unless ``journals`` is False: the caller did).

        Reading, hashing and decompressing release the GIL, so a helper thread does them for
        the next segment while the caller decodes this one. A segment that is gone by the
        time it is read and that its folder's journal no longer lists was compacted away (or
        forgotten by ``store verify --fix``) meanwhile: it is passed over, and the segments
        that appeared since the scan (the merged ones, holding its records) are read after
        the others, so a read that overlaps a compaction still sees every record.
        """
        skip_damaged = self.skip_damaged if skip_damaged is None else skip_damaged
        on_skip = on_skip if on_skip is not None else self.on_skip
        if journals:
            self.check_journals(skip_damaged, on_skip)
        paths, seen = self.segments(), set()
        while paths:
            vanished = False
            for path, data in self._read_ahead(paths, skip_damaged, on_skip):
                if data is None:
                    vanished = True
                else:
                    yield path, data
            seen.update(paths)
            paths = [q for q in self.segments() if q not in seen] if vanished else []

    def _read_ahead(self, paths: list[Path], skip_damaged: bool, on_skip: SkipCallback | None
                    ) -> Iterator[tuple[Path, bytes | None]]:
        """``checked_segments`` over ``paths``; None for a segment compacted away."""
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
                    if not path.exists() and not _journalled(path):
                        yield path, None
                        continue
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
        for path, data in self.checked_segments(skip_damaged, on_skip):
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
        for path, data in self.checked_segments(None, None):
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
        return _verify(self, fix=fix)


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


def _journalled(path: Path) -> bool:
    """Whether the journal of ``path``'s folder lists it (True if the journal is unreadable:
    then a missing segment stays an error)."""
    try:
        j = journal.read_journal(path.parent)
    except DamagedSegment:
        return True
    return j is not None and path.name in j.names


def _bump(d: dict[str, int], k: str | None) -> None:
    if k is not None:
        d[k] = d.get(k, 0) + 1


def stats(store: Store) -> StoreStats:
    """Record counts by kind, model (generations), task, method and verifier, and sizes."""
    st = StoreStats(root=str(store.root))
    seen: set[str] = set()
    for path, data in store.checked_segments(None, None):
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
