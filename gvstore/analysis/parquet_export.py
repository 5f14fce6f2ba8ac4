"""``gvstore export parquet``: the store's projections as Hive-partitioned Parquet, incrementally.

Each store segment is exported once, into part files ``DIR/kind=<frame>/task=<task>/
model=<model>/<part>.parquet`` (layout and names: ``gvstore.analysis.parquet_layout``; what
each frame holds and how to query it: docs/scale.md, "Parquet export and warehouse queries").
The frames are those of ``gvstore.replay`` (same decoding: ``replay``'s NDJSON schema and
projection), plus ``id``, the full record id, and with ``texts`` the long texts (``text`` of
prompts and generations, ``raw`` of verifications and comparisons). ``task`` and ``model``
are the partition columns: a prompt's task (model null); a generation's task and model; for
grades, verifications and weights those of their generation, for comparisons those of
generation ``a`` (null, null where that generation is not in the store: an *orphan*, exported
again once a later export brings new generations).

Incremental: the manifest (``DIR/_gvstore_export.json``) maps each exported segment (its path
relative to the store root; a segment's bytes never change under its name) to its parts. An
export reads only the segments the manifest lacks, and removes the parts of segments no longer
in the store (compaction, ``store verify --fix``), so the export mirrors the store's segment
set. A record held by two segments is exported twice, with the same ``id``: queries drop
duplicates by ``id``, as replay does. Parts are written whole (temporary file, fsync, rename),
the manifest after them (also every ``CHECKPOINT_S`` seconds of a long export, naming the
segments done so far) and before any part is removed, so a killed export never leaves a
manifest naming a missing or partial file, and resumes from its last manifest; the next
export removes parts no manifest lists.
One export per folder at a time (an ``flock`` on ``DIR/.gvstore_export.lock``).
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gvstore.analysis.parquet_layout import (
    FORMAT,
    Entry,
    Manifest,
    Part,
    locked,
    open_folder,
    part_path,
    start,
    tidy,
)
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.io import write_atomic
from gvstore.names import inside
from gvstore.replay import FRAMES, KIND_OF, PROJECTION_VERSION
from gvstore.segments import read_segment
from gvstore.store import Store

if TYPE_CHECKING:
    import polars as pl

TEXTS = {"prompts": "text", "generations": "text", "verifications": "raw", "comparisons": "raw"}
REFERS = {"grades": "gen", "verifications": "gen", "weights": "gen", "comparisons": "a"}
"""Frames partitioned by the task and model of a generation, and the column naming it."""
CHECKPOINT_S = 30.0
"""A long export saves its manifest this often (seconds), so a killed one resumes."""


@dataclass
class ExportSummary:
    """What one export did (``as_dict`` is what ``--json`` prints)."""

    folder: str
    store: str
    texts: bool
    segments: int
    exported: int = 0
    skipped: int = 0
    removed: int = 0
    retried: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FRAMES, 0))
    total_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FRAMES, 0))
    parts_written: int = 0
    bytes_written: int = 0
    total_bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _version() -> str:
    return f"{FORMAT}/{PROJECTION_VERSION}"


def _read_frames(path: Path, texts: bool) -> dict[str, pl.DataFrame]:
    """The frames of one segment (replay's decoding) with ``id`` (and the texts)."""
    import polars as pl

    from gvstore.replay import _line_schema, _split  # the one projection of a line

    schema = dict(_line_schema())
    if texts:
        schema.update(text=pl.String, raw=pl.String)
    data = read_segment(path)
    try:
        lines = pl.read_ndjson(io.BytesIO(data), schema=schema)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise DamagedSegment(path, f"bad record: {exc}") from None
    lines = lines.unique(subset="id", keep="first", maintain_order=True)
    frames = _split(lines)  # rows keep the order of ``lines`` within each kind
    out = {}
    for name in FRAMES:
        extra = ["id"] + ([TEXTS[name]] if texts and name in TEXTS else [])
        more = lines.filter(pl.col("kind") == KIND_OF[name]).select(extra)
        out[name] = pl.concat([frames[name], more], how="horizontal")
    return out


class _GenMap:
    """generation handle -> (task, model): of the parts already exported (read when first
    needed) and of the generations exported by this run."""

    def __init__(self, folder: Path, kept: dict[str, Entry]) -> None:
        self.folder, self.kept = folder, kept
        self.chunks: list[pl.DataFrame] = []
        self.frame: pl.DataFrame | None = None
        self.stale = True

    def add(self, gens: pl.DataFrame) -> None:
        self.chunks.append(gens)
        self.stale = True

    def get(self) -> pl.DataFrame:
        import polars as pl

        if self.frame is None:  # first use: the generations exported before
            for e in self.kept.values():
                for p in e.parts:
                    if p.frame == "generations":
                        got = pl.read_parquet(self.folder / p.path, columns=["gen"])
                        self.chunks.append(got.with_columns(
                            _task=pl.lit(p.task, pl.String), _model=pl.lit(p.model, pl.String)))
        if self.stale or self.frame is None:
            empty = pl.DataFrame(schema={"gen": pl.UInt64, "_task": pl.String,
                                         "_model": pl.String})
            have = [self.frame] if self.frame is not None else []
            self.frame = pl.concat([empty, *have, *self.chunks])
            self.chunks, self.stale = [], False
        assert self.frame is not None
        return self.frame


def _resolve(frame: pl.DataFrame, col: str, gens: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``_task``/``_model`` of its generation (column ``col``) where
    ``gens`` (``gen, _task, _model``) has it."""
    if "_task" in frame.columns:
        frame = frame.drop("_task", "_model")
    right = gens.unique(subset="gen").rename({"gen": col})
    return frame.join(right, on=col, how="left", maintain_order="left")


class _Run:
    """One export: writes the parts of each segment and collects its manifest entry."""

    def __init__(self, folder: Path, texts: bool, gmap: _GenMap, summary: ExportSummary):
        self.folder, self.texts, self.gmap, self.summary = folder, texts, gmap, summary
        self.entries: dict[str, Entry] = {}
        self.pending: list[tuple[str, str, pl.DataFrame]] = []
        self.new_gens: list[pl.Series] = []
        self.saved = time.monotonic()
        self._dirs: set[Path] = set()

    def segment(self, name: str, path: Path) -> None:
        import polars as pl

        frames = self._partitioned(_read_frames(path, self.texts))
        entry = self.entries[name] = Entry()
        own = frames["generations"].select("gen", "_task", "_model")
        if own.height:
            self.gmap.add(own)
            self.new_gens.append(own["gen"])
        for fname, df in frames.items():
            if fname in REFERS and df.height:
                df = _resolve(df, REFERS[fname], own)
                lost = df.filter(pl.col("_task").is_null())
                if lost.height:  # generations of other segments: those exported so far
                    lost = _resolve(lost, REFERS[fname], self.gmap.get())
                    missing = lost.filter(pl.col("_task").is_null())
                    if missing.height:
                        self.pending.append((name, fname, missing))
                    df = pl.concat([df.filter(pl.col("_task").is_not_null()),
                                    lost.filter(pl.col("_task").is_not_null())])
            self._write(name, entry, fname, df)

    def adopts(self, entry: Entry) -> bool:
        """Whether generations of this run are those of some orphan rows of ``entry``."""
        import polars as pl

        if not self.new_gens:
            return False
        new = pl.concat(self.new_gens)
        for p in entry.parts:
            if p.task is None and p.frame in REFERS:
                col = pl.read_parquet(self.folder / p.path, columns=[REFERS[p.frame]])
                if col[REFERS[p.frame]].is_in(new.implode()).any():
                    return True
        return False

    def finish(self) -> None:
        """Rows whose generation came later in this run; the rest are orphans."""
        for name, fname, df in self.pending:
            df = _resolve(df, REFERS[fname], self.gmap.get())
            self.entries[name].orphans += int(df["_task"].null_count())
            self._write(name, self.entries[name], fname, df, late=True)
        self.pending = []

    def _partitioned(self, frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
        import polars as pl

        null = pl.lit(None, pl.String)
        frames["prompts"] = frames["prompts"].with_columns(
            _task=pl.col("task"), _model=null).drop("task")
        frames["generations"] = frames["generations"].with_columns(
            _task=pl.col("task"), _model=pl.col("model")).drop("task", "model")
        return frames

    def _write(self, name: str, entry: Entry, fname: str, df: pl.DataFrame,
               late: bool = False) -> None:
        """Write a segment's rows of one frame, one part per (task, model); ``late``: rows
        resolved at the end of the run, in parts of their own (``part_path``)."""
        if df.height == 0:
            return
        for (task, model), part in df.partition_by(
                "_task", "_model", as_dict=True, maintain_order=True).items():
            rel = part_path(fname, task, model, name, late=late)
            raw = self._bytes(part.drop("_task", "_model"))
            target = self.folder / rel
            self._check_dir(target.parent)
            write_atomic(target, raw)
            entry.parts.append(Part(rel, fname, task, model, part.height,
                                    len(raw)))
            self.summary.rows[fname] += part.height
            self.summary.parts_written += 1
            self.summary.bytes_written += len(raw)

    @staticmethod
    def _bytes(df: pl.DataFrame) -> bytes:
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd")
        return buf.getvalue()

    def _check_dir(self, d: Path) -> None:
        """Never write outside the export folder (a partition folder that is a link out)."""
        if d in self._dirs:
            return
        top = d
        while not top.exists() and top != self.folder:
            top = top.parent  # the deepest folder that exists: it must not lead out
        if top.is_symlink() or not (inside(top, self.folder) or top == self.folder):
            raise GvstoreError(f"refusing to write {d}: {top} resolves to {top.resolve()}, "
                               f"outside the export folder {self.folder.resolve()}")
        d.mkdir(parents=True, exist_ok=True)
        if not inside(d, self.folder):
            raise GvstoreError(f"refusing to write {d}: it resolves to {d.resolve()}, outside "
                               f"the export folder {self.folder.resolve()}")
        self._dirs.add(d)


def _segments(store: Store) -> dict[str, Path]:
    store.check_journals()  # a journalled segment that is missing: an error, as for replay
    return {p.relative_to(store.root).as_posix(): p for p in store.segments()}


def _checkpoint(run: _Run, man: Manifest) -> None:
    """Save the manifest with the segments exported so far whose rows are all written (a
    killed long export then resumes from here); the parts it names are all in place."""
    waiting = {name for name, _, _ in run.pending}
    saved = Manifest(man.version, man.texts, dict(man.segments))
    saved.segments.update({n: e for n, e in run.entries.items() if n not in waiting})
    saved.save(run.folder)
    run.saved = time.monotonic()


def _read_all(run: _Run, store: Store, names: list[str], current: dict[str, Path],
              man: Manifest | None = None) -> list[str]:
    """Export each segment of ``names`` (checkpointing ``man`` every ``CHECKPOINT_S``);
    damaged ones are skipped (and not recorded) only with the store's ``skip_damaged``.
    Returns the names exported."""
    done = []
    for name in names:
        if man is not None and time.monotonic() - run.saved >= CHECKPOINT_S:
            _checkpoint(run, man)
        try:
            run.segment(name, current[name])
        except DamagedSegment as exc:
            run.entries.pop(name, None)
            if not store.skip_damaged:
                raise
            if store.on_skip is not None:
                store.on_skip(exc)
            continue
        done.append(name)
    return done


def export_parquet(store: Store, folder: Path | str, *, texts: bool = False) -> ExportSummary:
    """Export the store's segments not yet in ``folder`` (see the module doc). A failed
    write (disk full, read-only) is a ``GvstoreError``; what was written before is kept."""
    folder = Path(folder)
    try:
        return _export(store, folder, texts)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise GvstoreError(f"cannot write the export in {folder}{where}: "
                           f"{exc.strerror or exc}; free space or fix the permissions and "
                           "rerun (the export resumes)") from None


def _export(store: Store, folder: Path, texts: bool) -> ExportSummary:
    t0 = time.perf_counter()
    open_folder(folder, store)
    with locked(folder):
        found, man = start(folder, _version(), texts)
        tidy(folder, {p.path for p in found.parts()})
        current = _segments(store)
        summary = ExportSummary(str(folder), str(store.root), texts, len(current))
        gone = [n for n in found.segments if n not in current]
        for n in gone:
            man.segments.pop(n, None)
        summary.removed = len(gone)
        todo = [n for n in sorted(current) if n not in man.segments]
        summary.skipped = len(current) - len(todo)
        run = _Run(folder, texts, _GenMap(folder, man.segments), summary)
        summary.exported = len(_read_all(run, store, todo, current, man))
        retry = [n for n, e in man.segments.items() if e.orphans and n not in run.entries
                 and run.adopts(e)]  # orphans whose generation this run exported
        if retry:
            summary.retried = len(_read_all(run, store, retry, current))
        run.finish()
        man.segments.update(run.entries)
        man.save(folder)  # the new parts are in place: name them, then drop the old
        keep = {p.path for p in man.parts()}
        for p in found.parts():
            old = folder / p.path
            if p.path not in keep and inside(old.parent, folder) and not old.is_symlink():
                old.unlink(missing_ok=True)  # (never through a link out of the folder)
        tidy(folder, keep)
    for p in man.parts():
        summary.total_rows[p.frame] += p.rows
        summary.total_bytes += p.bytes
    summary.seconds = time.perf_counter() - t0
    return summary
