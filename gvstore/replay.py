"""Projections: polars frames of the numbers analysis needs, replayed from the store.

Long texts are left out (the NDJSON reader of polars skips them). Records are joined by
64-bit handles (the first 16 hex digits of a record id, as ``UInt64``) instead of
71-character id strings, which keeps frames small and joins fast; a handle collision among
the records of one store is detected on build and is an error (the odds of one are about
1 in 37 million for a million records, 1 in 370,000 for ten million), never a silent mix-up.

Frames are cached as Parquet under ``<root>/.cache/proj/``, keyed by the digest of the set of
segment names (segments are immutable, so the set identifies the content). A new or removed
segment changes the key and the frames are rebuilt from the segments; the cache can always be
deleted. Each cached set has a manifest of its files' SHA-256; a file that does not match is
never used (the frames are rebuilt). A store that cannot be written (read-only, disk full)
keeps its cache under ``$XDG_CACHE_HOME/gvstore`` instead, or in memory (``gvstore.projcache``).
Before anything is loaded, the folders' journals are checked: a journalled segment that is
missing is an error (``MissingSegment``) unless ``skip_damaged``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore import projcache
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import write_atomic
from gvstore.store import Store

if TYPE_CHECKING:
    import polars as pl

PROJECTION_VERSION = "3"  # 3: grades carry ``extracted``
FRAMES = ("prompts", "generations", "grades", "verifications", "comparisons", "weights")


def handle(record_id: str) -> int:
    """The 64-bit join handle of a record id (``sha256:`` + hex)."""
    return int(record_id[7:23], 16)


@cache
def schemas() -> dict[str, dict[str, pl.DataType | type[pl.DataType]]]:
    """The columns of each projection (a stable interface for the analysis modules; also
    ``replay.SCHEMAS``). Polars is imported here, not with the module: a warm analysis call
    reads the group cache (``gvstore.analysis.groupcache``) and never loads polars."""
    import polars as pl

    return {
        "prompts": {"prompt": pl.UInt64, "task": pl.String, "item_id": pl.String,
                    "split": pl.String, "reference": pl.String},
        "generations": {"gen": pl.UInt64, "prompt": pl.UInt64, "task": pl.String,
                        "model": pl.String, "round": pl.Int32, "sample_index": pl.Int32,
                        "n_tokens": pl.Int32, "finish_reason": pl.String,
                        "temperature": pl.Float64},
        "grades": {"gen": pl.UInt64, "grader": pl.String, "grader_version": pl.String,
                   "strict": pl.Float64, "flexible": pl.Float64, "extracted": pl.String},
        "verifications": {"gen": pl.UInt64, "verifier": pl.String, "method": pl.String,
                          "template": pl.String, "sample_index": pl.Int32, "score": pl.Float64,
                          "parse_status": pl.String, "p_correct": pl.Float64,
                          "p_incorrect": pl.Float64},
        "comparisons": {"prompt": pl.UInt64, "a": pl.UInt64, "b": pl.UInt64, "winner": pl.UInt64,
                        "verifier": pl.String, "method": pl.String, "bracket": pl.Int32,
                        "bracket_round": pl.Int32, "sample_index": pl.Int32,
                        "parse_status": pl.String},
        "weights": {"gen": pl.UInt64, "spec": pl.String, "weight": pl.Float64},
    }


def __getattr__(name: str) -> Any:
    if name == "SCHEMAS":
        return schemas()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _line_schema() -> dict[str, pl.DataType | type[pl.DataType]]:
    """Every field any projection reads, across kinds; the NDJSON reader skips all other
    fields (texts, raw outputs) without building them. Absent fields read as null."""
    import polars as pl

    return {
        "kind": pl.String, "id": pl.String,
        # prompt
        "item_id": pl.String, "split": pl.String, "reference": pl.String,
        # generation
        "prompt_id": pl.String, "task": pl.String, "model": pl.String, "round": pl.Int32,
        "sample_index": pl.Int32, "n_tokens": pl.Int32, "finish_reason": pl.String,
        "sampling": pl.Struct({"temperature": pl.Float64}),
        # grade, verification, weight
        "generation_id": pl.String, "grader": pl.String, "grader_version": pl.String,
        "strict": pl.Float64, "flexible": pl.Float64, "extracted": pl.String,
        "verifier": pl.String, "method": pl.String,
        "template": pl.String, "score": pl.Float64, "parse_status": pl.String,
        "p_correct": pl.Float64, "p_incorrect": pl.Float64, "spec": pl.String,
        "weight": pl.Float64,
        # comparison
        "generation_a": pl.String, "generation_b": pl.String, "winner": pl.String,
        "bracket": pl.Int32, "bracket_round": pl.Int32,
    }


def _h(col: str) -> pl.Expr:
    """The UInt64 handle of an id column (null stays null)."""
    import polars as pl

    return pl.col(col).str.slice(7, 16).str.to_integer(base=16, dtype=pl.UInt64)


def _defaults(df: pl.DataFrame, values: dict[str, object]) -> pl.DataFrame:
    """Fill nulls that mean "field left at its default" in the stored line."""
    import polars as pl

    return df.with_columns(
        pl.col(c).fill_null(pl.lit(v, dtype=df.schema[c])) for c, v in values.items()
    )


KIND_OF = {"prompts": "prompt", "generations": "generation", "grades": "grade",
           "verifications": "verification", "comparisons": "comparison", "weights": "weight"}


def _split(lines: pl.DataFrame, keep: tuple[str, ...] = ()) -> dict[str, pl.DataFrame]:
    """The frames of ``lines`` (each with the columns ``keep`` of its lines, too)."""
    import polars as pl

    by_kind = {k: lines.filter(pl.col("kind") == k) for k in KIND_OF.values()}
    frames = {
        "prompts": _defaults(by_kind["prompt"], {"split": "test"}).select(
            _h("id").alias("prompt"), "task", "item_id", "split", "reference", *keep),
        "generations": _defaults(by_kind["generation"], {
            "round": 0, "n_tokens": 0, "finish_reason": ""}).select(
            _h("id").alias("gen"), _h("prompt_id").alias("prompt"), "task", "model", "round",
            "sample_index", "n_tokens", "finish_reason",
            pl.col("sampling").struct.field("temperature").fill_null(1.0).alias("temperature"),
            *keep),
        "grades": _defaults(by_kind["grade"], {"grader_version": "1"}).select(
            _h("generation_id").alias("gen"), "grader", "grader_version", "strict", "flexible",
            "extracted", *keep),
        "verifications": _defaults(by_kind["verification"], {
            "template": "", "sample_index": 0, "parse_status": "ok"}).select(
            _h("generation_id").alias("gen"), "verifier", "method", "template", "sample_index",
            "score", "parse_status", "p_correct", "p_incorrect", *keep),
        "comparisons": _defaults(by_kind["comparison"], {
            "method": "tournament", "bracket": 0, "bracket_round": 0, "sample_index": 0,
            "parse_status": "ok"}).select(
            _h("prompt_id").alias("prompt"), _h("generation_a").alias("a"),
            _h("generation_b").alias("b"), _h("winner").alias("winner"), "verifier", "method",
            "bracket", "bracket_round", "sample_index", "parse_status", *keep),
        "weights": by_kind["weight"].select(
            _h("generation_id").alias("gen"), "spec", "weight", *keep),
    }
    return {name: frames[name].cast(schemas()[name])  # type: ignore[arg-type]
            for name in FRAMES}


CHUNK_ROWS = 100_000
"""Lines projected at a time: the record fields of a chunk are held only while it is
projected, so a cold build peaks at about the frames' size, not the lines' (ids as text)."""


def _project(parts: list[pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The frames of some lines, each row with ``_h1``, ``_h2``: the first 128 bits of its
    record id, on which duplicates are dropped across chunks."""
    import polars as pl

    lines = pl.concat(parts).with_columns(
        pl.col("id").str.slice(7, 16).str.to_integer(base=16, dtype=pl.UInt64).alias("_h1"),
        pl.col("id").str.slice(23, 16).str.to_integer(base=16, dtype=pl.UInt64).alias("_h2"))
    return _split(lines, keep=("_h1", "_h2"))


def _build(
    store: Store, skip_damaged: bool, on_skip: Callable[[DamagedSegment], None] | None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, pl.DataFrame]:
    import polars as pl

    chunks: list[dict[str, pl.DataFrame]] = []
    parts: list[pl.DataFrame] = []
    rows = 0
    for path, data in store.checked_segments(skip_damaged, on_skip, journals=False):
        try:
            parts.append(pl.read_ndjson(io.BytesIO(data), schema=_line_schema()))
        except (pl.exceptions.PolarsError, ValueError) as exc:
            err = DamagedSegment(path, f"bad record: {exc}")
            if not skip_damaged:
                raise err from None
            if on_skip is not None:
                on_skip(err)
            continue
        rows += parts[-1].height
        if rows >= chunk_rows:
            chunks.append(_project(parts))
            parts, rows = [], 0
    if parts or not chunks:
        chunks.append(_project(parts or [pl.DataFrame(schema=_line_schema())]))
    frames = {name: pl.concat([c[name] for c in chunks])
              .unique(subset=["_h1", "_h2"], keep="first", maintain_order=True)
              .drop("_h1", "_h2") for name in FRAMES}
    for name, col in (("prompts", "prompt"), ("generations", "gen")):
        if frames[name][col].n_unique() != frames[name].height:
            raise GvstoreError(
                f"two {name} share a 64-bit handle in {store.root}; "
                "this is astronomically unlikely: please report it"
            )
    return frames


def _key_of(segment_names: set[str]) -> str:
    """The cache key of a set of segment names (segments are immutable: the set names the
    content)."""
    h = hashlib.sha256(f"projection v{PROJECTION_VERSION}\n".encode())
    for name in sorted(segment_names):
        h.update(name.encode() + b"\n")
    return h.hexdigest()[:32]


class Projections:
    """The analysis frames of one store, cached as Parquet and rebuilt when segments change.

    ``skip_damaged`` and ``on_skip`` default to the store's own (``Store(skip_damaged=...)``).
    After ``load``, ``cache_dir`` is where the frames were read from or written to (None:
    kept in memory only, because no cache folder could be written).
    """

    def __init__(
        self,
        store: Store,
        *,
        skip_damaged: bool | None = None,
        on_skip: Callable[[DamagedSegment], None] | None = None,
        cache: bool = True,
    ) -> None:
        self.store = store
        self.skip_damaged = store.skip_damaged if skip_damaged is None else skip_damaged
        self.on_skip = on_skip if on_skip is not None else store.on_skip
        self.cache = cache
        self._frames: dict[str, pl.DataFrame] | None = None
        self.rebuilt = False
        self.cache_dir: Path | None = None
        self.loaded_key: str | None = None
        """After ``load``: the key of the segments the frames are of (None if a damaged
        segment was skipped); a group cache is saved only under this key."""

    def cache_key(self) -> str:
        return _key_of({p.name for p in self.store.segments()})

    def warm_key(self) -> str | None:
        """The key of the cached frames (and of the group caches built from them) if caches
        may be used now, else None: caching is on, the journals check out (a journalled
        segment that is missing is an error, as for ``load``) and no damaged segment is
        skipped. Reads no frame and imports no polars."""
        if not self.cache:
            return None
        folders = self.store.journals()  # one scan of the store for both
        for fj in folders:
            if fj.damage():  # as ``Store.check_journals``
                if not self.skip_damaged:
                    raise fj.damage()[0]
                return None
        return _key_of({n for fj in folders for n in fj.present})

    def _cache_dir(self) -> Path:
        return projcache.store_cache_dir(self.store.root)

    def _read_cached(self, folder: Path, key: str) -> dict[str, pl.DataFrame] | None:
        """The frames of a cached set whose every file matches its manifest, else None."""
        import polars as pl

        files = projcache.read_manifest(projcache.manifest_path(folder, key))
        if files is None:
            return None
        frames: dict[str, pl.DataFrame] = {}
        for name in FRAMES:
            fname = f"{key}-{name}.parquet"
            try:
                raw = (folder / fname).read_bytes()
            except OSError:
                return None
            if files.get(fname) != hashlib.sha256(raw).hexdigest():
                return None  # tampered or torn: rebuild (``store verify`` reports it)
            try:
                frames[name] = pl.read_parquet(io.BytesIO(raw))
            except (pl.exceptions.PolarsError, OSError, ValueError):
                return None
        return frames

    def _write_cache(self, folder: Path, key: str, frames: dict[str, pl.DataFrame]) -> None:
        """Write one cached set (files, then the manifest); raises OSError on failure."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            pid = projcache.part_pid(old.name)
            stale = pid is not None and not projcache.pid_alive(pid)
            if stale or (old.is_file() and pid is None and not old.name.startswith(key)):
                old.unlink(missing_ok=True)
        digests: dict[str, str] = {}
        for name in FRAMES:
            buf = io.BytesIO()
            frames[name].write_parquet(buf, compression="lz4", statistics=False)
            raw = buf.getvalue()
            p = folder / f"{key}-{name}.parquet"
            write_atomic(p, raw, durable=False)  # a cache: rebuilt if lost
            digests[p.name] = hashlib.sha256(raw).hexdigest()
        projcache.write_manifest(folder, key, digests)

    def load(self) -> dict[str, pl.DataFrame]:
        """All frames: from a Parquet cache if it matches the segments, else rebuilt."""
        if self._frames is not None:
            return self._frames
        skipped: list[DamagedSegment] = []

        def note(exc: DamagedSegment) -> None:
            skipped.append(exc)
            if self.on_skip is not None:
                self.on_skip(exc)

        self.store.check_journals(self.skip_damaged, note)  # a deleted segment: an error
        key = self.cache_key()
        self.loaded_key = None if skipped else key
        dirs = projcache.cache_dirs(self.store.root)
        if self.cache and not skipped:
            for folder in dirs:
                cached = self._read_cached(folder, key)
                if cached is not None:
                    self._frames, self.cache_dir = cached, folder
                    return cached
        frames = _build(self.store, self.skip_damaged, note)
        self.rebuilt = True
        # A build that skipped damaged segments is not what the key names: never cache it.
        if self.cache and not skipped and self.store.root.exists():
            for folder in dirs:
                try:
                    self._write_cache(folder, key, frames)
                except OSError:
                    continue  # read-only or full: try the next place, else keep in memory
                self.cache_dir = folder
                break
        self._frames = frames
        return frames

    def frame(self, name: str) -> pl.DataFrame:
        if name not in FRAMES:
            raise GvstoreError(f"unknown projection {name!r}; choose from {', '.join(FRAMES)}")
        return self.load()[name]

    @property
    def prompts(self) -> pl.DataFrame:
        return self.frame("prompts")

    @property
    def generations(self) -> pl.DataFrame:
        return self.frame("generations")

    @property
    def grades(self) -> pl.DataFrame:
        return self.frame("grades")

    @property
    def verifications(self) -> pl.DataFrame:
        return self.frame("verifications")

    @property
    def comparisons(self) -> pl.DataFrame:
        return self.frame("comparisons")

    @property
    def weights(self) -> pl.DataFrame:
        return self.frame("weights")
