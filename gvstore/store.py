"""The record store: append-only, content-addressed segments of zstd-compressed JSON lines.

Layout: ``<root>/<folder>/<sha256 hex of the file's bytes>.jsonl.zst``. Each stage writes into
its own folder (its DVC output). A segment is written to a hidden temporary name, fsynced and
renamed, so a crash never leaves a partial segment under a real name; a segment's name is the
digest of its bytes, so every read can check it cheaply. Hidden folders (``.cache``) and
temporary files are not segments.
"""

from __future__ import annotations

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

from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.records import Record, check, decoder, encoder, kind_of, seal

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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        data = self._compressor.compress(b"\n".join(self._lines) + b"\n")
        self._lines = []
        path = write_segment(self.folder, data)
        self.written.append(path)
        return path

    def close(self) -> None:
        self.flush()

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
    """Atomically place compressed segment bytes under their digest name in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(data).hexdigest() + SEGMENT_SUFFIX
    final = folder / name
    tmp = folder / f".{name}.{os.getpid()}{TMP_SUFFIX}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(folder)
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
    """What ``Store.verify`` found. ``ok`` is False if anything is damaged."""

    segments: int = 0
    records: int = 0
    duplicates: int = 0
    damaged_segments: list[tuple[str, str]] = field(default_factory=list)
    bad_records: list[tuple[str, int, str]] = field(default_factory=list)
    leftover_tmp: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged_segments and not self.bad_records


SkipCallback = Callable[[DamagedSegment], None]


class Store:
    """A store root holding segment folders. Reading never changes anything."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache"

    def writer(self, folder: str = "misc", **kwargs: float | int) -> Writer:
        """A writer into ``<root>/<folder>`` (``folder`` may nest: ``verify/mc-arith``; see
        ``Writer`` for the flush options)."""
        parts = folder.split("/")
        if not folder or "\\" in folder or any(not p or p.startswith(".") for p in parts):
            raise GvstoreError(f"bad store folder name {folder!r} (relative, like verify/mc)")
        return Writer(self.root / folder, **kwargs)  # type: ignore[arg-type]

    def segments(self) -> list[Path]:
        """Every segment under the root, sorted by path (hidden folders skipped)."""
        if not self.root.exists():
            return []
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            base = Path(dirpath)
            found.extend(
                base / f for f in filenames
                if f.endswith(SEGMENT_SUFFIX) and not f.startswith(".")
            )
        return sorted(found)

    def leftover_tmp(self) -> list[Path]:
        """Temporary files left by a writer that was killed mid-flush (never real segments)."""
        if not self.root.exists():
            return []
        return sorted(
            p for p in self.root.rglob("*" + TMP_SUFFIX)
            if ".cache" not in p.relative_to(self.root).parts
        )

    def _checked(
        self, skip_damaged: bool, on_skip: SkipCallback | None
    ) -> Iterator[tuple[Path, bytes]]:
        """(path, decompressed bytes) of each checked segment, reading segments ahead.

        Reading, hashing and decompressing release the GIL, so a helper thread does them for
        the next segment while the caller decodes this one.
        """
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
        skip_damaged: bool = False,
        on_skip: SkipCallback | None = None,
    ) -> Iterator[list[Record]]:
        """Every record once (duplicates by id dropped), one list per segment.

        A damaged segment raises ``DamagedSegment`` naming the file, unless ``skip_damaged``,
        in which case ``on_skip`` is told about each skipped segment.
        """
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
        skip_damaged: bool = False,
        on_skip: SkipCallback | None = None,
    ) -> Iterator[Record]:
        """Every record once (duplicates by id dropped); see ``iter_batches``."""
        for batch in self.iter_batches(kinds, skip_damaged=skip_damaged, on_skip=on_skip):
            yield from batch

    def records(
        self,
        kinds: Iterable[str] | None = None,
        *,
        skip_damaged: bool = False,
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
        for path, data in self._checked(False, None):
            try:
                views = _key_decoder.decode_lines(data)
            except msgspec.DecodeError as exc:
                raise DamagedSegment(path, f"bad record: {exc}") from exc
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

    def verify(self) -> VerifyReport:
        """Re-check every segment's digest and every record's key and id."""
        rep = VerifyReport()
        seen: set[str] = set()
        rep.leftover_tmp = [str(p) for p in self.leftover_tmp()]
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
        return rep


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
    for path, data in store._checked(False, None):
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
