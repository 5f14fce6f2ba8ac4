"""Canonical encoding and digests: the content-addressing contract.

Every record key, record id and segment name in a gvstore store is a digest computed here.
Changing anything in this module changes every hash ever written: old stores would no longer
verify and every stage would redo its work. A change that moves digests is therefore a
schema-version bump (see ``records.SCHEMA``), never an edit in place; the golden tests in
``tests/test_records.py`` pin a handful of ids so that an accidental change fails loudly.

The contract (schema 1):

* The canonical encoding of a value is msgspec JSON with object keys sorted
  (``order="sorted"``), no whitespace, UTF-8, floats in shortest round-trip form.
* A digest is ``"sha256:" + hexdigest(SHA-256(canonical bytes))``; the algorithm prefix lets a
  later schema change the hash function without ambiguity.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

ALGORITHM = "sha256"
PREFIX = ALGORITHM + ":"

_canonical = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of ``value``: sorted-key msgspec JSON. Part of the digest contract."""
    return _canonical.encode(value)


def digest_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of raw bytes."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical encoding of ``value``."""
    return PREFIX + hashlib.sha256(_canonical.encode(value)).hexdigest()


def seed(*parts: object) -> int:
    """The seed of one request, derived from what identifies it (base seed first): SHA-256 of
    the parts' ``str`` joined by ``|``, first 8 bytes little-endian, masked to 63 bits. Seeds
    go into record keys, so this formula is part of the digest contract."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def short(d: str, n: int = 12) -> str:
    """A digest shortened for display (``sha256:`` prefix dropped)."""
    return d.split(":", 1)[-1][:n]
