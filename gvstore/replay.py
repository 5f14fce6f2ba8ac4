"""Projections: polars frames of the numbers analysis needs, replayed from the store.

Long texts are left out. Records are joined by 64-bit handles (the first 16 hex digits of a
record id, as ``UInt64``) instead of 71-character id strings, which keeps frames small and joins
fast; a handle collision among the records of one store is detected on build and is an error
(the odds are about 1 in 10^7 for ten million records), never a silent mix-up.

Frames are cached as Parquet under ``<root>/.cache/proj/``, keyed by the digest of the set of
segment names (segments are immutable, so the set identifies the content). A new or removed
segment changes the key and the frames are rebuilt from the segments; the cache can always be
deleted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import msgspec
import polars as pl

from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.store import Store, read_segment

PROJECTION_VERSION = "1"
FRAMES = ("prompts", "generations", "grades", "verifications", "comparisons", "weights")


def handle(record_id: str) -> int:
    """The 64-bit join handle of a record id (``sha256:`` + hex)."""
    return int(record_id[7:23], 16)


# Light views of each kind: msgspec skips the fields they leave out (texts, raw outputs).
class _P(msgspec.Struct, tag="prompt", tag_field="kind", gc=False):
    id: str
    task: str
    item_id: str
    reference: str
    split: str = "test"


class _S(msgspec.Struct, frozen=True, gc=False):
    temperature: float = 1.0


class _G(msgspec.Struct, tag="generation", tag_field="kind", gc=False):
    id: str
    prompt_id: str
    task: str
    model: str
    sample_index: int
    round: int = 0
    n_tokens: int = 0
    finish_reason: str = ""
    sampling: _S = _S()


class _Gr(msgspec.Struct, tag="grade", tag_field="kind", gc=False):
    id: str
    generation_id: str
    grader: str
    strict: float
    flexible: float
    grader_version: str = "1"


class _V(msgspec.Struct, tag="verification", tag_field="kind", gc=False):
    id: str
    generation_id: str
    verifier: str
    method: str
    template: str = ""
    sample_index: int = 0
    score: float | None = None
    parse_status: str = "ok"
    p_correct: float | None = None
    p_incorrect: float | None = None


class _C(msgspec.Struct, tag="comparison", tag_field="kind", gc=False):
    id: str
    prompt_id: str
    generation_a: str
    generation_b: str
    verifier: str
    method: str = "tournament"
    bracket: int = 0
    bracket_round: int = 0
    sample_index: int = 0
    winner: str | None = None
    parse_status: str = "ok"


class _W(msgspec.Struct, tag="weight", tag_field="kind", gc=False):
    id: str
    generation_id: str
    spec: str
    weight: float


_light = msgspec.json.Decoder(_P | _G | _Gr | _V | _C | _W)

SCHEMAS: dict[str, dict[str, pl.DataType | type[pl.DataType]]] = {
    "prompts": {"prompt": pl.UInt64, "task": pl.String, "item_id": pl.String,
                "split": pl.String, "reference": pl.String},
    "generations": {"gen": pl.UInt64, "prompt": pl.UInt64, "task": pl.String,
                    "model": pl.String, "round": pl.Int32, "sample_index": pl.Int32,
                    "n_tokens": pl.Int32, "finish_reason": pl.String,
                    "temperature": pl.Float64},
    "grades": {"gen": pl.UInt64, "grader": pl.String, "grader_version": pl.String,
               "strict": pl.Float64, "flexible": pl.Float64},
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


def _build(
    store: Store, skip_damaged: bool, on_skip: Callable[[DamagedSegment], None] | None
) -> dict[str, pl.DataFrame]:
    cols: dict[str, dict[str, list[object]]] = {
        name: {c: [] for c in schema} for name, schema in SCHEMAS.items()
    }
    seen: set[str] = set()
    ids: dict[str, list[str]] = {"prompts": [], "generations": []}
    for path in store.segments():
        try:
            views = _light.decode_lines(read_segment(path))
        except (DamagedSegment, msgspec.DecodeError) as exc:
            err = exc if isinstance(exc, DamagedSegment) else DamagedSegment(path, str(exc))
            if not skip_damaged:
                raise err from None
            if on_skip is not None:
                on_skip(err)
            continue
        for v in views:
            if v.id in seen:
                continue
            seen.add(v.id)
            if isinstance(v, _G):
                c = cols["generations"]
                ids["generations"].append(v.id)
                c["gen"].append(handle(v.id))
                c["prompt"].append(handle(v.prompt_id))
                c["task"].append(v.task)
                c["model"].append(v.model)
                c["round"].append(v.round)
                c["sample_index"].append(v.sample_index)
                c["n_tokens"].append(v.n_tokens)
                c["finish_reason"].append(v.finish_reason)
                c["temperature"].append(v.sampling.temperature)
            elif isinstance(v, _V):
                c = cols["verifications"]
                c["gen"].append(handle(v.generation_id))
                c["verifier"].append(v.verifier)
                c["method"].append(v.method)
                c["template"].append(v.template)
                c["sample_index"].append(v.sample_index)
                c["score"].append(v.score)
                c["parse_status"].append(v.parse_status)
                c["p_correct"].append(v.p_correct)
                c["p_incorrect"].append(v.p_incorrect)
            elif isinstance(v, _Gr):
                c = cols["grades"]
                c["gen"].append(handle(v.generation_id))
                c["grader"].append(v.grader)
                c["grader_version"].append(v.grader_version)
                c["strict"].append(v.strict)
                c["flexible"].append(v.flexible)
            elif isinstance(v, _P):
                c = cols["prompts"]
                ids["prompts"].append(v.id)
                c["prompt"].append(handle(v.id))
                c["task"].append(v.task)
                c["item_id"].append(v.item_id)
                c["split"].append(v.split)
                c["reference"].append(v.reference)
            elif isinstance(v, _C):
                c = cols["comparisons"]
                c["prompt"].append(handle(v.prompt_id))
                c["a"].append(handle(v.generation_a))
                c["b"].append(handle(v.generation_b))
                c["winner"].append(None if v.winner is None else handle(v.winner))
                c["verifier"].append(v.verifier)
                c["method"].append(v.method)
                c["bracket"].append(v.bracket)
                c["bracket_round"].append(v.bracket_round)
                c["sample_index"].append(v.sample_index)
                c["parse_status"].append(v.parse_status)
            else:
                c = cols["weights"]
                c["gen"].append(handle(v.generation_id))
                c["spec"].append(v.spec)
                c["weight"].append(v.weight)
    frames = {
        name: pl.DataFrame(cols[name], schema=SCHEMAS[name]) for name in SCHEMAS
    }
    for name, col in (("prompts", "prompt"), ("generations", "gen")):
        if frames[name][col].n_unique() != frames[name].height:
            raise GvstoreError(
                f"two {name} share a 64-bit handle in {store.root}; "
                "this is astronomically unlikely: please report it"
            )
    return frames


class Projections:
    """The analysis frames of one store, cached as Parquet and rebuilt when segments change."""

    def __init__(
        self,
        store: Store,
        *,
        skip_damaged: bool = False,
        on_skip: Callable[[DamagedSegment], None] | None = None,
        cache: bool = True,
    ) -> None:
        self.store = store
        self.skip_damaged = skip_damaged
        self.on_skip = on_skip
        self.cache = cache
        self._frames: dict[str, pl.DataFrame] | None = None
        self.rebuilt = False

    def cache_key(self) -> str:
        h = hashlib.sha256(f"projection v{PROJECTION_VERSION}\n".encode())
        for name in sorted({p.name for p in self.store.segments()}):
            h.update(name.encode() + b"\n")
        return h.hexdigest()[:32]

    def _cache_dir(self) -> Path:
        return self.store.cache_dir / "proj"

    def load(self) -> dict[str, pl.DataFrame]:
        """All frames: from the Parquet cache if it matches the segments, else rebuilt."""
        if self._frames is not None:
            return self._frames
        key = self.cache_key()
        folder = self._cache_dir()
        paths = {name: folder / f"{key}-{name}.parquet" for name in FRAMES}
        if self.cache and all(p.exists() for p in paths.values()):
            self._frames = {name: pl.read_parquet(p) for name, p in paths.items()}
            return self._frames
        skipped: list[DamagedSegment] = []

        def note(exc: DamagedSegment) -> None:
            skipped.append(exc)
            if self.on_skip is not None:
                self.on_skip(exc)

        frames = _build(self.store, self.skip_damaged, note)
        self.rebuilt = True
        # A build that skipped damaged segments is not what the key names: never cache it.
        if self.cache and not skipped and self.store.root.exists():
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.parquet"):
                if not old.name.startswith(key):
                    old.unlink(missing_ok=True)
            for name, p in paths.items():
                tmp = p.with_name(f".{p.name}.{os.getpid()}.part")
                frames[name].write_parquet(tmp, compression="lz4", statistics=False)
                os.replace(tmp, p)
        self._frames = frames
        return frames

    def frame(self, name: str) -> pl.DataFrame:
        if name not in SCHEMAS:
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
