"""gvstore.io: the one atomic writer and file hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gvstore.io import atomic_path, sha256_file, write_atomic


def test_write_atomic_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_atomic(target, "old")
    write_atomic(target, "névé\n")
    assert target.read_bytes() == "névé\n".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failed_write_leaves_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    write_atomic(target, b"\x00\x01")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # larger than one block of 4096
    p = tmp_path / "f"
    p.write_bytes(data)
    assert sha256_file(p, block=4096) == hashlib.sha256(data).hexdigest()
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
