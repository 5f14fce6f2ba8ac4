"""The group cache: the arrays every metric starts from, memory-mapped next to the projections.

A ``Dataset`` (``gvstore.analysis.frames``) turns the projections into per-(task, generator,
round) arrays sorted by (prompt, sample index), per-(slice, method, verifier) mean scores
and their per-prompt sort order, and per-(slice, verifier) tournament matches. Those are
saved here as ``.npy`` files, so that a later call with the same store view maps them
(``np.load(mmap_mode="c")``: read from the page cache, copy-on-write, never written back)
instead of reading the Parquet projections and rebuilding them; a warm call imports no
polars and is arithmetic only.

Key discipline (that of ``gvstore.projcache``): a set is named ``<projection key>g<view>``
(+ ``m<method digest>`` for one method's scores, ``t`` for the tournament matches, ``b...``
for bootstrap draw counts), where the projection key is the digest of the store's segment
names (a new or removed segment changes it: the set is rebuilt) and the view is the digest
of the utility, the grader and the filters (each combination is its own set). Each set has a
manifest ``<set>.manifest.json``, written last, with every file's SHA-256 (``store verify``
re-hashes them) and its size and CRC-32, which every read checks before a file is used: a
file that is missing, torn or damaged is never used, the set is rebuilt. Sets live in the
folder of the projection cache (the store's ``.cache/proj/``, or the user cache folder if the
store cannot be written); if neither can be written nothing is cached (the arrays are kept
in memory for the life of the ``Dataset``). ``store verify --fix`` deletes a damaged set.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib import format as npformat

from gvstore import projcache
from gvstore.errors import GvstoreError
from gvstore.io import write_atomic

if TYPE_CHECKING:
    from gvstore.replay import Projections

VERSION = "2"  # 2: method sets keep ranks
SLICE_FIELDS = ("gen", "prompt", "sample_index", "utility", "pidx", "prompts", "starts",
                "gen_order")
"""The arrays of one (task, generator, round) slice (``frames.Group`` fields)."""
MMAP_MIN = 1 << 16  # smaller files are read into memory (mapping them costs more)
COUNTS_MIN = 1 << 20  # draw counts of fewer cells are quicker to draw than to read

Arrays = Mapping[str, np.ndarray]
SliceKey = tuple[str, str, int]
Slices = list[tuple[SliceKey, Arrays]]
MethodArrays = list[dict[str, tuple[np.ndarray, Arrays | None]]]
"""Per slice: verifier -> (mean scores, their saved ``arrays.PromptSort`` arrays or None)."""


def method_part(method: str) -> str:
    """The set suffix of one method's scores (method names are free text)."""
    return "m" + hashlib.sha256(method.encode()).hexdigest()[:12]


def _digest(index: dict[str, Any]) -> str:
    """The SHA-256 of a set's index (its slice keys and verifier names live in the manifest,
    so they are checked too)."""
    return hashlib.sha256(json.dumps(index, sort_keys=True).encode()).hexdigest()


def _load_checked(path: Path, size: int, crc: int) -> np.ndarray | None:
    """The array of one ``.npy`` file if its size and CRC-32 match, else None; read-only (a
    cached array is shared by every reader: code that needs to change one copies it). Large
    files are mapped read-only (``mmap.ACCESS_READ``: the page cache's own pages, no copy;
    copy-on-write mapping cost 3-5x as much per first touch), checked and viewed in one
    pass."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                return None
            if size < MMAP_MIN:
                raw = f.read()
                if zlib.crc32(raw) != crc:
                    return None
                small = np.load(io.BytesIO(raw), allow_pickle=False)
                small.setflags(write=False)
                return small
            version = npformat.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                return None
            shape, fortran, dtype = (npformat.read_array_header_1_0(f) if version == (1, 0)
                                     else npformat.read_array_header_2_0(f))
            offset = f.tell()
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if zlib.crc32(mm) != crc or fortran or dtype.hasobject:
            return None
        count = int(np.prod(shape, dtype=np.int64))
        if offset + count * dtype.itemsize != size:
            return None
        return np.frombuffer(mm, dtype=dtype, count=count, offset=offset).reshape(shape)
    except (OSError, ValueError, EOFError, TypeError):
        return None


class LazyArrays(Mapping[str, np.ndarray]):
    """The arrays of one cached set by name, each mapped and checked when first read. A file
    that fails its check is never used: ``rebuild`` (set by the reader) computes the set's
    arrays afresh from the projections (and saves them again); those are used instead."""

    def __init__(self, files: dict[str, tuple[Path, int, int]]) -> None:
        self._files = files
        self._got: dict[str, np.ndarray] = {}
        self.rebuild: Callable[[], Mapping[str, np.ndarray]] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._got.get(name)
        if got is None:
            path, size, crc = self._files[name]
            got = _load_checked(path, size, crc)
            if got is None:
                if self.rebuild is None:
                    raise GvstoreError(f"damaged cache file {path}; run gvstore store verify "
                                       "--fix")
                fresh = self.rebuild()
                self._got.update({k: fresh[k] for k in self._files if k not in self._got})
                got = self._got[name]
            self._got[name] = got
        return got

    def __contains__(self, name: object) -> bool:
        return name in self._files  # without reading the file

    def checked(self, name: str) -> np.ndarray | None:
        """One array if its file passes its check, else None (no rebuild)."""
        return _load_checked(*self._files[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


class Prefixed(Mapping[str, np.ndarray]):
    """The arrays ``<prefix>.<name>`` of a ``LazyArrays``, by ``<name>`` (read lazily)."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, names: list[str]) -> None:
        self._arrays, self._prefix, self._names = arrays, prefix, names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._arrays[f"{self._prefix}.{name}"]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class GroupCache:
    """The cached sets of one store view (see the module doc)."""

    def __init__(self, root: Path, name: str, proj: Projections | None = None,
                 key: str | None = None) -> None:
        self.root = root
        self.proj, self.key = proj, key
        self.dirs = projcache.cache_dirs(root)
        self.name = name
        self.folder: Path | None = None  # where the last set was read or written

    @classmethod
    def open(
        cls, proj: Projections, *, utility: str | None, grader: str | None, filters: object
    ) -> GroupCache | None:
        """The cache of this view of ``proj``'s store, or None if caches may not be used
        (caching off, or a damaged segment skipped; see ``Projections.warm_key``)."""
        key = proj.warm_key()
        if key is None or not proj.store.root.exists():
            return None
        view = hashlib.sha256(
            f"groups v{VERSION}\n{utility!r}\n{grader!r}\n{filters!r}\n".encode()
        ).hexdigest()[:16]
        return cls(proj.store.root, f"{key}g{view}", proj, key)

    def _folders(self) -> list[Path]:
        return ([self.folder] if self.folder else []) + [
            d for d in self.dirs if d != self.folder]

    def read(self, part: str) -> tuple[dict[str, Any], LazyArrays] | None:
        """(index, arrays) of one set (``part``: "" the slices, ``method_part(m)``, "t"), or
        None if its manifest is absent or unreadable or a file has the wrong size. Each
        file's CRC-32 is checked when it is first read (``LazyArrays``)."""
        stem = self.name + part
        for folder in self._folders():
            data = projcache.read_manifest_data(projcache.manifest_path(folder, stem))
            if data is None:
                continue
            checks, index = data.get("checks"), data.get("index")
            if (not isinstance(checks, dict) or set(checks) != set(data["files"])
                    or not isinstance(index, dict) or data.get("index_sha") != _digest(index)):
                continue
            files: dict[str, tuple[Path, int, int]] = {}
            try:
                for fname, (size, crc) in checks.items():
                    if os.stat(folder / fname).st_size != size:
                        break
                    files[fname[len(stem) + 1: -len(".npy")]] = (folder / fname, size, crc)
                else:
                    self.folder = folder
                    return index, LazyArrays(files)
            except (OSError, ValueError, TypeError):
                continue
        return None

    def write(self, part: str, index: dict[str, Any], arrays: Arrays, *,
              of_frames: bool = True) -> None:
        """Save one set (files, then the manifest); nothing is saved if no folder can be
        written (the caller keeps its arrays in memory), or if ``of_frames`` (the arrays come
        from the projections) and those were loaded from other segments than the key's."""
        stem = self.name + part
        if not self.root.is_dir():
            return  # the store went away: never recreate its folders
        if of_frames and self.proj is not None and self.proj.loaded_key != self.key:
            return  # the frames are of other segments (written since, or one skipped)
        for folder in self._folders():
            try:
                folder.mkdir(parents=True, exist_ok=True)
                files: dict[str, str] = {}
                checks: dict[str, list[int]] = {}
                for short, arr in arrays.items():
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
                    raw = buf.getvalue()
                    fname = f"{stem}-{short}.npy"
                    write_atomic(folder / fname, raw, durable=False)  # a cache: rebuilt if lost
                    files[fname] = hashlib.sha256(raw).hexdigest()
                    checks[fname] = [len(raw), zlib.crc32(raw)]
                projcache.write_manifest(folder, stem, files, {
                    "index": index, "index_sha": _digest(index), "checks": checks})
            except OSError:
                continue  # read-only or full: the next place, else memory only
            self.folder = folder
            return


def read_slices(gc: GroupCache) -> tuple[Slices, LazyArrays] | None:
    """The slices (``frames.Dataset.slices``) of a cached set (read lazily), or None."""
    got = gc.read("")
    if got is None:
        return None
    index, arrays = got
    keys = index.get("slices")
    if not isinstance(keys, list):
        return None
    try:
        out: Slices = [((str(k[0]), str(k[1]), int(k[2])),
                        Prefixed(arrays, str(i), list(SLICE_FIELDS))) for i, k in enumerate(keys)]
    except (IndexError, TypeError, ValueError):
        return None
    if set(arrays) != {f"{i}.{f}" for i in range(len(out)) for f in SLICE_FIELDS}:
        return None
    return out, arrays


def read_entries(
    gc: GroupCache, part: str, n_slices: int
) -> tuple[list[tuple[int, str, Arrays]], LazyArrays] | None:
    """(slice number, verifier, its arrays by name) of each entry of a per-verifier set."""
    got = gc.read(part)
    if got is None:
        return None
    entries = got[0].get("entries")
    if not isinstance(entries, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], int)
        and 0 <= e[0] < n_slices and isinstance(e[1], str) for e in entries
    ):
        return None
    names: list[list[str]] = [[] for _ in entries]
    for name in got[1]:
        k, _, col = name.partition(".")
        if not k.isdigit() or int(k) >= len(entries):
            return None
        names[int(k)].append(col)
    return [(e[0], e[1], Prefixed(got[1], str(k), names[k]))
            for k, e in enumerate(entries)], got[1]


SORT_ARRAYS = ("order", "sorted", "count", "ranks")


def read_method(
    gc: GroupCache, method: str, n_slices: int
) -> tuple[MethodArrays, LazyArrays] | None:
    """The cached scores and sorts of one method (``frames.Dataset.method_arrays``)."""
    got = read_entries(gc, method_part(method), n_slices)
    if got is None:
        return None
    per: MethodArrays = [{} for _ in range(n_slices)]
    for i, ver, cols in got[0]:
        if set(cols) != {"score", *SORT_ARRAYS}:
            return None
        per[i][ver] = (cols["score"], cols)
    return per, got[1]


# --- bootstrap draw counts ---------------------------------------------------------------

_counts_cache: GroupCache | None = None
"""The cache of the store a ``Dataset`` last opened: the bootstrap's draw counts (a pure
function of prompts, resamples and seed) are kept there too."""


def use_for_counts(cache: GroupCache | None) -> None:
    """Keep the draw counts in ``cache``'s folder from now on (a copy that holds no
    projections: counts do not come from them)."""
    global _counts_cache
    if cache is not None:
        _counts_cache = GroupCache(cache.root, cache.name)
        _counts_cache.folder = cache.folder


def _counts_part(n_prompts: int, resamples: int, seed: int) -> str:
    return f"b{n_prompts}x{resamples}s{seed}"


def load_counts(n_prompts: int, resamples: int, seed: int) -> np.ndarray | None:
    """The cached (resamples x P) draw counts as float64, or None."""
    if _counts_cache is None or seed < 0 or n_prompts * resamples < COUNTS_MIN:
        return None
    got = _counts_cache.read(_counts_part(n_prompts, resamples, seed))
    if got is None or "counts" not in got[1]:
        return None
    c = got[1].checked("counts")
    if c is None or c.shape != (resamples, n_prompts):
        return None  # damaged: drawn again (and saved again)
    return c.astype(np.float64)


def save_counts(n_prompts: int, resamples: int, seed: int, counts: np.ndarray) -> None:
    """Keep draw counts (stored in the smallest unsigned type that holds them)."""
    if _counts_cache is None or seed < 0 or n_prompts * resamples < COUNTS_MIN:
        return
    top = int(counts.max()) if counts.size else 0
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    _counts_cache.write(_counts_part(n_prompts, resamples, seed), {},
                        {"counts": counts.astype(dtype)}, of_frames=False)
