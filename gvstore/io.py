"""Files written whole or not at all, file hashes and strict YAML: the one copy of each.

``atomic_path`` is the shape every writer of a finished file uses: write to a temporary name
beside the target, flush and fsync it, rename it over the target, then fsync the folder so the
rename survives a power cut. A reader therefore sees the old file or the new one, never half
of one; a killed writer leaves at most a ``.<name>.<pid>.part`` file, never a torn target.

``read_yaml`` is the one YAML reader of a file a user writes (params, a hyperparameter config,
a model table): UTF-8, bounded in size and depth, no duplicate keys, no aliases, each problem a
one-line ``GvstoreError`` naming the file and, where there is one, the key path and line.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gvstore.errors import GvstoreError
from gvstore.names import safe_rmtree

__all__ = ["MAX_BYTES", "MAX_DEPTH", "atomic_folder", "atomic_path", "fsync_dir",
           "json_lines", "read_yaml", "sha256_file", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Make a rename in the folder ``path`` durable (fsync the folder itself); given a file,
    fsync that file."""
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
            fsync_dir(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(out: Path | str) -> Iterator[Path]:
    """A fresh temporary folder beside ``out`` to build a whole folder in (a model folder); on
    a clean exit it replaces ``out`` (the old one moved aside, then removed). On an error the
    temporary folder is removed and ``out`` is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    safe_rmtree(tmp, out.parent)
    tmp.mkdir()
    try:
        yield tmp
        old = out.parent / f".{out.name}.{os.getpid()}.old"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        safe_rmtree(old, out.parent, ignore_errors=True)
    finally:
        safe_rmtree(tmp, out.parent, ignore_errors=True)


def write_atomic(target: Path | str, data: bytes | str, *, durable: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to ``target`` whole or not at all; returns ``target``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target, durable=durable) as tmp, open(tmp, "wb") as fh:
        fh.write(raw)
    return Path(target)


def json_lines(path: Path | str, *, not_json: str = "not JSON: {msg}"
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each JSON object line of a JSON-lines file; blank lines are
    skipped, any other line that is not a JSON object is a ``GvstoreError`` naming
    ``path:line`` (``not_json`` words a line that does not parse; ``{msg}`` is the reason)."""
    with open(path, encoding="utf-8") as fh:
        for n, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise GvstoreError(f"{path}:{n}: {not_json.format(msg=exc.msg)}") from None
            if not isinstance(obj, dict):
                raise GvstoreError(f"{path}:{n}: expected a JSON object")
            yield n, obj


def sha256_file(path: Path | str, *, block: int = 1 << 22) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- strict YAML -------------------------------------------------------------------------------

MAX_BYTES = 1 << 20
"""The largest YAML file read (params, hyperparameter config, model table): 1 MiB."""
MAX_DEPTH = 32
"""The deepest nesting of mappings and lists in a YAML file (params.yaml needs 4)."""


def _decode(p: Path, data: bytes) -> str:
    """The text of a YAML file, which must be UTF-8 (a leading byte-order mark is dropped)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            len(data) >= 2 and b"\0" in data[:2]):
        raise GvstoreError(f"{p} is UTF-16 or UTF-32 text (a byte-order mark or NUL bytes); "
                           "save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GvstoreError(f"{p} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                           f"{exc.start}, line {line}); save it as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_yaml(path: Path | str, what: str = "params file") -> Any:
    """A YAML file read strictly: UTF-8, at most ``MAX_BYTES``, no duplicate keys, no
    aliases, nesting at most ``MAX_DEPTH`` deep. Any problem is a one-line ``GvstoreError``
    naming the file (and the key path and line where there is one)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise GvstoreError(f"cannot read {p}: {exc.strerror}") from exc
    if len(data) > MAX_BYTES:
        raise GvstoreError(f"{p} is over {MAX_BYTES} bytes, the bound for a {what}")
    text = _decode(p, data)
    import yaml  # here, not at the top: the store's modules import this one and stay light

    from gvstore.yaml_loader import BadYAML, StrictLoader

    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except BadYAML as exc:
        raise GvstoreError(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise GvstoreError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:  # the depth limit is meant to come first
        raise GvstoreError(f"{p}: nested too deep (at most {MAX_DEPTH} levels)") from None
