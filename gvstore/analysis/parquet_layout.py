"""The layout of a Parquet export (``gvstore export parquet``): partition paths, the manifest,
and the export folder (its checks, its lock, tidying what a killed export left).

An export folder ``DIR`` holds one Hive-partitioned table per projection frame::

    DIR/kind=<frame>/task=<task>/model=<model>/<part>.parquet
    DIR/_gvstore_export.json        the manifest: store segment -> its part files
    DIR/.gvstore_export.lock        held (flock) while an export runs

``<part>`` is the first 40 hex digits of the SHA-256 of the segment's path relative to the
store root, so each segment has one part per (frame, task, model), and a second one for rows
whose generation came later in the same export (``part_path(..., late=True)``); a re-export
overwrites a segment's own parts in place. Partition values are the names themselves where they obey
gvstore's safe-name rule (``gvstore.names``); any other name is percent-encoded byte by byte
(every byte of its UTF-8 except ASCII letters, digits and ``-``, so ``.``, ``/``, ``=`` and
``_`` never appear raw), which DuckDB and polars decode back to the name when they read the
path. ``__HIVE_DEFAULT_PARTITION__`` (both read it as null) stands for "no value": the model
of a prompt, the task and model of a record whose generation is not in the store. A name
that cannot round-trip (empty, not encodable as UTF-8, the null marker itself, or over
``MAX_PART`` bytes once encoded) is refused with a ``GvstoreError``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gvstore.errors import GvstoreError
from gvstore.io import write_atomic
from gvstore.names import inside, is_safe_name
from gvstore.replay import FRAMES
from gvstore.store import Store

FORMAT = 1
"""The export's format number; a manifest of another format is re-exported whole."""
MANIFEST = "_gvstore_export.json"
LOCK = ".gvstore_export.lock"
NULL_PART = "__HIVE_DEFAULT_PARTITION__"
MAX_PART = 200
"""The longest partition value (bytes, once encoded): below the 255-byte name limit."""

_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_PART_RE = re.compile(
    r"kind=(?P<frame>[a-z]+)/task=(?P<task>[A-Za-z0-9%._-]+)/model=(?P<model>[A-Za-z0-9%._-]+)"
    r"/(?P<stem>[0-9a-f]{40})\.parquet")


def part_value(name: str | None, what: str) -> str:
    """The partition value of ``name`` (None: the null marker); see the module doc."""
    if name is None:
        return NULL_PART
    if is_safe_name(name):
        return name
    problem = None
    if name == "" or name == NULL_PART:
        problem = "it is empty" if name == "" else "it is Hive's null marker"
    else:
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError:
            problem = "it is not valid Unicode text"
        else:
            out = "".join(chr(b) if b in _KEEP else f"%{b:02X}" for b in raw)
            if len(out) <= MAX_PART:
                return out
            problem = f"it is {len(out)} bytes long once percent-encoded (at most {MAX_PART})"
    shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
    raise GvstoreError(f"{what} {shown} cannot be a Parquet partition value: {problem}")


def part_stem(segment: str) -> str:
    """The part-file stem of a segment (its path relative to the store root, ``/``-joined)."""
    return hashlib.sha256(segment.encode("utf-8")).hexdigest()[:40]


def part_path(frame: str, task: str | None, model: str | None, segment: str,
              *, late: bool = False) -> str:
    """The relative path (``/``-joined) of a segment's part of one partition; ``late``: the
    part of the rows whose generation came later in the same export (another stem)."""
    stem = part_stem(segment + "\n(late)" if late else segment)
    return (f"kind={frame}/task={part_value(task, 'task name')}/"
            f"model={part_value(model, 'model name')}/{stem}.parquet")


def is_part_path(rel: str) -> bool:
    """Whether ``rel`` has the shape of a part file's relative path."""
    return _PART_RE.fullmatch(rel) is not None


@dataclass
class Part:
    """One part file: where it is, what it holds."""

    path: str
    frame: str
    task: str | None
    model: str | None
    rows: int
    bytes: int


@dataclass
class Entry:
    """What one exported segment became: its part files and how many of its rows had no
    generation in the store when they were exported (``orphans``: retried when generations
    are exported later)."""

    parts: list[Part] = field(default_factory=list)
    orphans: int = 0


@dataclass
class Manifest:
    """The export's manifest (``DIR/_gvstore_export.json``)."""

    version: str
    texts: bool
    segments: dict[str, Entry] = field(default_factory=dict)

    def to_json(self) -> str:
        segs = {name: {"orphans": e.orphans, "parts": [p.__dict__ for p in e.parts]}
                for name, e in sorted(self.segments.items())}
        return json.dumps({"format": FORMAT, "version": self.version, "texts": self.texts,
                           "segments": segs}, indent=1, ensure_ascii=True) + "\n"

    def save(self, folder: Path) -> None:
        write_atomic(folder / MANIFEST, self.to_json())

    def parts(self) -> list[Part]:
        return [p for e in self.segments.values() for p in e.parts]


def _damaged(path: Path, why: str) -> GvstoreError:
    return GvstoreError(f"export manifest {path} is damaged ({why}); delete the export "
                        "folder and export again")


def _part(path: Path, obj: Any) -> Part:
    try:
        part = Part(path=obj["path"], frame=obj["frame"], task=obj["task"],
                    model=obj["model"], rows=int(obj["rows"]), bytes=int(obj["bytes"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, f"bad part entry: {exc}") from None
    if not isinstance(part.path, str) or not is_part_path(part.path):
        raise _damaged(path, f"bad part path {part.path!r}")
    if part.frame not in FRAMES or not part.path.startswith(f"kind={part.frame}/"):
        raise _damaged(path, f"part {part.path!r} is not of frame {part.frame!r}")
    return part


def load_manifest(folder: Path) -> Manifest | None:
    """The manifest in ``folder`` (None if there is none); a damaged one is an error."""
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(path, str(exc)) from None
    try:
        obj = json.loads(text)
        segs = obj["segments"]
        man = Manifest(version=str(obj["version"]), texts=bool(obj["texts"]))
        if obj.get("format") != FORMAT:
            man.version = f"format {obj.get('format')}"  # never equal: re-exported whole
        for name, e in segs.items():
            man.segments[str(name)] = Entry(parts=[_part(path, p) for p in e["parts"]],
                                            orphans=int(e["orphans"]))
    except GvstoreError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None
    return man


def open_folder(folder: Path, store: Store) -> None:
    if folder.exists() and not folder.is_dir():
        raise GvstoreError(f"export folder {folder} is a file, not a folder")
    if store.root.exists() and (inside(folder, store.root)
                                or folder.resolve() == store.root.resolve()):
        raise GvstoreError(f"export folder {folder} is inside the store {store.root}: "
                           "export to a folder outside it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GvstoreError(f"cannot create export folder {folder}: {exc.strerror}") from None


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GvstoreError(f"cannot write to export folder {folder}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GvstoreError(f"export folder {folder} is being written by another export; "
                               "wait for it to finish, then rerun") from None
        yield
    finally:
        os.close(fd)


def _whole(folder: Path, part: Part) -> bool:
    try:
        return (folder / part.path).stat().st_size == part.bytes
    except OSError:
        return False


def start(folder: Path, version: str, texts: bool) -> tuple[Manifest, Manifest]:
    """(the manifest found, the one this export builds on). A new export folder must be
    empty; it gets an empty manifest at once, so a killed first export is tidied next time."""
    for p in folder.glob(f".{MANIFEST}.*.part"):  # a killed export's manifest, half-written
        p.unlink(missing_ok=True)
    found = load_manifest(folder)
    if found is None:
        other = sorted(p.name for p in folder.iterdir() if p.name != LOCK)
        if other:
            raise GvstoreError(f"export folder {folder} is not empty and holds no {MANIFEST} "
                               f"(found {', '.join(other[:3])}): choose a new or empty folder")
        found = Manifest(version=version, texts=texts)
        found.save(folder)
    if found.version == version and found.texts == texts:
        # A segment whose part is gone or of another size (deleted, truncated by hand) is
        # exported again.
        whole = {n: e for n, e in found.segments.items() if all(_whole(folder, p) for p in e.parts)}
        return found, Manifest(version, texts, whole)
    return found, Manifest(version, texts)  # another format or --texts: export everything


def tidy(folder: Path, listed: set[str]) -> None:
    """Remove what a killed export left: temporary files, parts no manifest lists, empty
    partition folders. Only files under ``kind=<frame>/`` are looked at."""
    for frame in FRAMES:
        top = folder / f"kind={frame}"
        if not top.is_dir() or top.is_symlink():
            continue
        for dirpath, _dirs, filenames in os.walk(top, topdown=False):
            base = Path(dirpath)
            for name in filenames:
                rel = (base / name).relative_to(folder).as_posix()
                if name.endswith(".part") or (is_part_path(rel) and rel not in listed):
                    (base / name).unlink(missing_ok=True)
            if not os.listdir(base):
                base.rmdir()
