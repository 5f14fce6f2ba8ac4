"""Files written whole or not at all, and file hashes: the one copy of each.

``atomic_path`` is the shape every writer of a finished file uses: write to a temporary name
beside the target, flush and fsync it, rename it over the target, then fsync the folder so the
rename survives a power cut. A reader therefore sees the old file or the new one, never half
of one; a killed writer leaves at most a ``.<name>.<pid>.part`` file, never a torn target.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "fsync_dir", "sha256_file", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Make a rename in the folder ``path`` durable (fsync the folder itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: Path | str, *, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``target``; on a clean exit it replaces ``target``.

    The caller writes the whole file at the yielded path (``open``, ``savefig``, a library's
    ``save``). On an exception the temporary file is removed and ``target`` is untouched.
    ``durable`` fsyncs the file before the rename and the folder after it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: Path | str, data: bytes | str, *, durable: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to ``target`` whole or not at all; returns ``target``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target, durable=durable) as tmp, open(tmp, "wb") as fh:
        fh.write(raw)
    return Path(target)


def sha256_file(path: Path | str, *, block: int = 1 << 22) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()
