"""Where projection caches live and how their files are checked (no polars here).

A cached projection set is six Parquet files ``<key>-<frame>.parquet`` and a manifest
``<key>.manifest.json`` listing each file's SHA-256, written last. The group caches built
from it (``gvstore.analysis.groupcache``) are sets of the same shape, ``<key>g<...>-*.npy``
with their own manifests, in the same folder. Analysis uses a set only if
its manifest is there and every file's digest matches (else it rebuilds from the segments);
``store verify`` reports a mismatch as damage and ``--fix`` deletes the set.

Caches go under ``<root>/.cache/proj/``; if the store cannot be written (read-only, full) they
go under ``$XDG_CACHE_HOME/gvstore/proj/<digest of the store's path>/`` (``~/.cache`` if the
variable is unset), and if that fails too they are kept in memory only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gvstore.io import sha256_file, write_atomic

MANIFEST_SUFFIX = ".manifest.json"
TMP_SUFFIX = ".part"


def store_cache_dir(root: Path) -> Path:
    return root / ".cache" / "proj"


def user_cache_dir(root: Path) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(base) / "gvstore" / "proj" / tag


def cache_dirs(root: Path) -> list[Path]:
    """The places a projection cache of ``root`` may be, in the order they are tried."""
    return [store_cache_dir(root), user_cache_dir(root)]


def manifest_path(folder: Path, key: str) -> Path:
    return folder / f"{key}{MANIFEST_SUFFIX}"


def read_manifest_data(path: Path) -> dict[str, Any] | None:
    """The whole manifest (``key``, ``files`` and what else its writer put there), or None if
    it is absent, unreadable or its ``files`` are not a name -> SHA-256 map."""
    try:
        data = json.loads(path.read_text())
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return None
    return data if isinstance(data, dict) else None


def read_manifest(path: Path) -> dict[str, str] | None:
    """File name -> SHA-256 of a manifest, or None if it is absent or unreadable."""
    data = read_manifest_data(path)
    return None if data is None else dict(data["files"])


def write_manifest(
    folder: Path, key: str, files: dict[str, str], extra: dict[str, Any] | None = None
) -> None:
    """Atomically write a manifest (temporary name, then rename; a cache, so no fsync);
    ``extra`` adds fields (a group cache's index and fast checksums)."""
    text = json.dumps({**(extra or {}), "key": key, "files": files}, sort_keys=True,
                      indent=1)
    write_atomic(manifest_path(folder, key), text, durable=False)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def part_pid(name: str) -> int | None:
    """The writer's pid in a temporary name ``.<name>.<pid>.part`` (None if there is none)."""
    if not name.endswith(TMP_SUFFIX):
        return None
    stem = name[: -len(TMP_SUFFIX)]
    tail = stem.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else None


@dataclass
class CacheReport:
    """What ``check`` found in one cache folder."""

    checked: int = 0
    damaged: list[tuple[str, str]] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # files no manifest covers (never used)
    stale_tmp: list[str] = field(default_factory=list)


def check(folder: Path) -> CacheReport:
    """Re-hash every file each manifest lists; note files no manifest lists."""
    rep = CacheReport()
    if not folder.is_dir():
        return rep
    listed: set[str] = set()
    for man in sorted(folder.glob("*" + MANIFEST_SUFFIX)):
        listed.add(man.name)
        files = read_manifest(man)
        if files is None:
            rep.damaged.append((str(man), "manifest does not parse"))
            continue
        for name, want in sorted(files.items()):
            listed.add(name)
            p = folder / name
            rep.checked += 1
            try:
                got = sha256_file(p)
            except OSError as exc:
                rep.damaged.append((str(p), f"cannot read: {exc.strerror}"))
                continue
            if got != want:
                rep.damaged.append((str(p), f"digest {got[:12]} does not match its manifest "
                                    f"{man.name} ({want[:12]})"))
    for p in sorted(folder.iterdir()):
        if p.name in listed or not p.is_file():
            continue
        pid = part_pid(p.name)
        if pid is not None:
            if not pid_alive(pid):
                rep.stale_tmp.append(str(p))
        else:
            rep.unlisted.append(str(p))
    return rep


def fix(folder: Path, rep: CacheReport) -> list[str]:
    """Delete damaged sets (their manifest and files), unlisted files and stale temporaries."""
    done: list[str] = []
    doomed: set[Path] = {Path(p) for p in rep.unlisted + rep.stale_tmp}
    for p, _ in rep.damaged:
        key = Path(p).name.split("-", 1)[0].removesuffix(MANIFEST_SUFFIX)
        doomed.add(manifest_path(folder, key))
        doomed.update(folder.glob(f"{key}-*"))  # Parquet frames or a group set's .npy
    for path in sorted(doomed):
        if path.exists():
            path.unlink()
            done.append(f"deleted cache file {path}")
    return done
