"""The record kinds: immutable events, one per model call (or per derived fact).

Every record is a ``msgspec.Struct`` of one tagged union, ``Record``, tagged by ``kind``.
Each kind names which of its fields determine the request (``KEY_FIELDS``: what goes into
``key``) and which are its outputs (``OUTPUT_FIELDS``: what, with the key, goes into ``id``).
Everything else is bookkeeping that rides outside the digests: ``schema``, ``key``, ``id``
and ``prov`` (provenance: time, host, duration, library versions).

Rules that keep old ids valid (see ``digest.py`` for the encoding contract):

* A field left at its default is omitted from the digest payload (never from the stored line),
  so adding a new field with a default never moves the ids of records written before it
  existed. A field's default never changes.
* A field's type never changes; a rename is a new field. An encoding change that moves ids is
  a new ``SCHEMA`` number, and ``record_key``/``record_id`` dispatch on ``record.schema`` so
  readers keep verifying every version they ever wrote.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import msgspec

from gvstore.digest import digest
from gvstore.errors import GvstoreError

SCHEMA = 1
"""The schema version new records are written with."""

SUPPORTED_SCHEMAS = frozenset({1})


# gc=False: records are immutable values made of strings, numbers, tuples and other records;
# they cannot form reference cycles, so the cyclic collector need not track them. This makes
# decoding millions of records about 4x faster (the collector otherwise runs over and over).
class Provenance(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Where and when a record was made. Not part of any digest."""

    time: float = 0.0
    host: str = ""
    duration_s: float | None = None
    versions: dict[str, str] = {}


class Sampling(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Sampling parameters of one model call. ``top_k=0`` means no top-k truncation."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()

    def check(self) -> None:
        """The one sampling validation (generate, verify and params use it)."""
        if (self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0
                or self.max_tokens < 1):
            raise GvstoreError(
                "sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0, max_tokens >= 1"
            )


class _Base(msgspec.Struct, frozen=True, tag_field="kind", kw_only=True, gc=False):
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ()
    OUTPUT_FIELDS: ClassVar[tuple[str, ...]] = ()

    schema: int = SCHEMA
    key: str = ""
    id: str = ""
    prov: Provenance | None = None


R = TypeVar("R", bound=_Base)


class Prompt(_Base, tag="prompt", kw_only=True, frozen=True):
    """A task item rendered into the exact text sent to the model, with its reference answer."""

    KEY_FIELDS = ("task", "split", "item_id", "kshot", "template")
    OUTPUT_FIELDS = ("text", "reference")

    task: str
    split: str = "test"
    item_id: str
    kshot: int = 0
    template: str = ""
    text: str
    reference: str


class Generation(_Base, tag="generation", kw_only=True, frozen=True):
    """One sampled answer of one model to one prompt."""

    KEY_FIELDS = (
        "prompt_id", "task", "model", "model_digest", "backend", "sampling",
        "sample_index", "seed", "round",
    )
    OUTPUT_FIELDS = ("text", "n_tokens", "finish_reason")

    prompt_id: str
    task: str
    model: str
    model_digest: str = ""
    backend: str = ""
    sampling: Sampling = Sampling()
    sample_index: int
    seed: int
    round: int = 0
    text: str
    n_tokens: int = 0
    finish_reason: str = ""


class Grade(_Base, tag="grade", kw_only=True, frozen=True):
    """The ground-truth utility u(x, y) of a generation; strict and flexible kept apart."""

    KEY_FIELDS = ("generation_id", "grader", "grader_version")
    OUTPUT_FIELDS = ("strict", "flexible", "extracted")

    generation_id: str
    grader: str
    grader_version: str = "1"
    strict: float
    flexible: float
    extracted: str | None = None


class Verification(_Base, tag="verification", kw_only=True, frozen=True):
    """One verifier call on one generation. ``score`` is null when the output did not parse."""

    KEY_FIELDS = (
        "generation_id", "verifier", "verifier_digest", "method", "template",
        "backend", "sampling", "sample_index", "seed",
    )
    OUTPUT_FIELDS = ("raw", "score", "parse_status", "p_correct", "p_incorrect")

    generation_id: str
    verifier: str
    verifier_digest: str = ""
    method: str
    template: str = ""
    backend: str = ""
    sampling: Sampling | None = None
    sample_index: int = 0
    seed: int = 0
    raw: str = ""
    score: float | None = None
    parse_status: str = "ok"
    p_correct: float | None = None
    p_incorrect: float | None = None


class Comparison(_Base, tag="comparison", kw_only=True, frozen=True):
    """One tournament match between two generations of the same prompt."""

    KEY_FIELDS = (
        "prompt_id", "generation_a", "generation_b", "verifier", "verifier_digest", "method",
        "template", "backend", "bracket", "bracket_round", "sample_index", "seed",
    )
    OUTPUT_FIELDS = ("raw", "winner", "parse_status")

    prompt_id: str
    generation_a: str
    generation_b: str
    verifier: str
    verifier_digest: str = ""
    method: str = "tournament"
    template: str = ""
    backend: str = ""
    bracket: int = 0
    bracket_round: int = 0
    sample_index: int = 0
    seed: int = 0
    raw: str = ""
    winner: str | None = None
    parse_status: str = "ok"


class Weight(_Base, tag="weight", kw_only=True, frozen=True):
    """The weight a filter spec gives a generation, computed from the listed input records."""

    KEY_FIELDS = ("generation_id", "spec", "inputs")
    OUTPUT_FIELDS = ("weight",)

    generation_id: str
    spec: str
    inputs: tuple[str, ...] = ()
    weight: float


Record = Prompt | Generation | Grade | Verification | Comparison | Weight
RECORD_TYPES: tuple[type[_Base], ...] = (
    Prompt, Generation, Grade, Verification, Comparison, Weight,
)
KINDS: dict[str, type[_Base]] = {
    t.__struct_config__.tag: t for t in RECORD_TYPES  # type: ignore[misc]
}
META_FIELDS = ("schema", "key", "id", "prov")


def _payload(rec: _Base, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(rec, name)
        if name in defaults and value == defaults[name]:
            continue  # omitted: adding a defaulted field later must not move old ids
        out[name] = value
    return out


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type[_Base]) -> dict[str, Any]:
    got = _DEFAULTS.get(cls)
    if got is None:
        got = {}
        for f in msgspec.structs.fields(cls):
            if f.default is not msgspec.NODEFAULT:
                got[f.name] = f.default
            elif f.default_factory is not msgspec.NODEFAULT:
                got[f.name] = f.default_factory()
        _DEFAULTS[cls] = got
    return got


def _check_schema(rec: _Base) -> None:
    if rec.schema not in SUPPORTED_SCHEMAS:
        raise ValueError(f"record schema {rec.schema} is not known to this gvstore")


def record_key(rec: _Base) -> str:
    """The key: digest of the kind and of every field that determines the request."""
    _check_schema(rec)
    cls = type(rec)
    payload = _payload(rec, cls.KEY_FIELDS, _defaults(cls))
    payload["kind"] = cls.__struct_config__.tag
    return digest(payload)


def record_id(rec: _Base, key: str | None = None) -> str:
    """The id: digest of the key and the outputs."""
    _check_schema(rec)
    cls = type(rec)
    payload = _payload(rec, cls.OUTPUT_FIELDS, _defaults(cls))
    payload["key"] = record_key(rec) if key is None else key
    return digest(payload)


def seal(rec: R) -> R:
    """Return ``rec`` with its ``key`` and ``id`` filled in from its content."""
    key = record_key(rec)
    return msgspec.structs.replace(rec, key=key, id=record_id(rec, key))


def check(rec: _Base) -> str | None:
    """None if the record's stored key and id match its content, else what is wrong."""
    try:
        key = record_key(rec)
    except ValueError as exc:
        return str(exc)
    if key != rec.key:
        return f"key mismatch: stored {rec.key}, content gives {key}"
    rid = record_id(rec, key)
    if rid != rec.id:
        return f"id mismatch: stored {rec.id}, content gives {rid}"
    return None


def kind_of(rec: _Base) -> str:
    """The record's kind tag (``"generation"``, ...)."""
    return type(rec).__struct_config__.tag  # type: ignore[return-value]


encoder = msgspec.json.Encoder()
decoder: msgspec.json.Decoder[Record] = msgspec.json.Decoder(Record)
