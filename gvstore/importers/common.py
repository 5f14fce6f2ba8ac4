"""What every importer shares: validated samples in, ordinary records out, written once.

An importer reads its source and validates every row first (``Sample``); ``plan`` turns the
samples into prompt, generation, grade and verification records, and ``write`` adds those the
store lacks, all in one segment (a crash keeps all of them or none).

Provenance and content addressing: every generation carries the source file's SHA-256 in its
``model_digest`` (a key field) and ``backend="import-<kind>"``; every verification carries
it in ``verifier_digest``. The keys are therefore a function of the file's bytes and the
mapping, and importing the same file again adds 0 records. ``prov.versions`` names the file
(outside the digests). Two guards keep a store honest:

* a planned record whose key is stored with another id (the same file imported before with
  another mapping of the same columns) is an error;
* a planned generation whose slot (prompt, generator, round 0, sample index) already holds
  another generation (an edited file, or another source, under the same generator name) is an
  error: the gap would count both samples. Import it under another ``--generator``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gvstore.errors import GvstoreError
from gvstore.names import check_folder, check_name
from gvstore.records import (
    Generation,
    Grade,
    Prompt,
    Provenance,
    Record,
    Verification,
    kind_of,
    seal,
)
from gvstore.store import Store

GRADER = "imported"
"""The grader name of imported correctness (``--grader imported`` picks it)."""
GRADER_VERSION = "1"


@dataclass(frozen=True)
class ScoreColumn:
    """One verifier score column: the verifier name it becomes and its method."""

    verifier: str
    method: str
    column: str


@dataclass
class Sample:
    """One validated sample of a source (``where``: file and line, for messages)."""

    where: str
    item_id: str
    text: str
    index: int
    prompt: str | None = None
    reference: str | None = None
    correct: float | None = None
    flexible: float | None = None
    extracted: str | None = None
    scores: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Source:
    """The file imported and the names its records get."""

    path: Path
    digest: str
    kind: str
    task: str
    generator: str

    def check(self) -> None:
        check_name(self.task, "task name")
        check_name(self.generator, "generator name")

    @property
    def folder(self) -> str:
        """The store folder the records go to: ``import/<task>/<generator>``."""
        return check_folder(f"import/{self.task}/{self.generator}", "import folder")


@dataclass
class ImportSummary:
    """What an import did."""

    source: str
    digest: str
    folder: str
    rows: int
    skipped: int
    skipped_at: list[str]
    prompts: int
    samples: int
    planned: int = 0
    added: dict[str, int] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return sum(self.added.values())

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.digest, "folder": self.folder,
                "rows": self.rows, "skipped": self.skipped, "skipped_at": self.skipped_at,
                "prompts": self.prompts, "samples": self.samples, "records": self.planned,
                "written": self.written, "added": self.added,
                "already": self.planned - self.written}


def plan(source: Source, samples: Sequence[Sample], scores: Sequence[ScoreColumn]) -> list[Record]:
    """Every record of ``samples``: prompts first, then per sample its generation, grade and
    verifications (sealed)."""
    prov = Provenance(time=time.time(), versions={
        "import": source.kind, "source": source.path.name, "source_sha256": source.digest})
    prompts: dict[str, Prompt] = {}
    out: list[Record] = []
    backend = f"import-{source.kind}"
    for s in samples:
        p = prompts.get(s.item_id)
        if p is None:
            p = seal(Prompt(task=source.task, item_id=s.item_id, text=s.prompt or "",
                            reference=s.reference or "", prov=prov))
            prompts[s.item_id] = p
            out.append(p)
        g = seal(Generation(prompt_id=p.id, task=source.task, model=source.generator,
                            model_digest=source.digest, backend=backend, sample_index=s.index,
                            seed=0, text=s.text, prov=prov))
        out.append(g)
        if s.correct is not None:
            flex = s.correct if s.flexible is None else s.flexible
            out.append(seal(Grade(generation_id=g.id, grader=GRADER,
                                  grader_version=GRADER_VERSION, strict=s.correct,
                                  flexible=flex, extracted=s.extracted, prov=prov)))
        for col, score in zip(scores, s.scores, strict=True):
            out.append(seal(Verification(
                generation_id=g.id, verifier=col.verifier, verifier_digest=source.digest,
                method=col.method, backend=backend, score=score,
                parse_status="ok" if score is not None else "no_verdict", prov=prov)))
    return out


class _View(msgspec.Struct, gc=False):
    kind: str
    key: str
    id: str


def _stored_ids(store: Store) -> dict[str, set[str]]:
    """Key -> the ids stored under it, over the whole store."""
    dec = msgspec.json.Decoder(_View)
    out: dict[str, set[str]] = {}
    if not store.root.exists():
        return out
    for _, data in store.checked_segments(None, None):
        for v in dec.decode_lines(data):
            out.setdefault(v.key, set()).add(v.id)
    return out


def _slot_conflict(store: Store, gens: list[Generation]) -> str | None:
    """A message if a planned generation's slot holds another generation in the store."""
    if not gens or not store.root.exists() or not store.segments():
        return None
    import polars as pl

    from gvstore.replay import Projections, handle

    frame = Projections(store).generations.filter(
        pl.col("model").is_in(sorted({g.model for g in gens})) & (pl.col("round") == 0))
    if frame.height == 0:
        return None
    have = {(p, m, i): gen for p, m, i, gen in frame.select(
        "prompt", "model", "sample_index", "gen").iter_rows()}
    for g in gens:
        got = have.get((handle(g.prompt_id), g.model, g.sample_index))
        if got is not None and got != handle(g.id):
            return (f"the store already holds another sample {g.sample_index} of this prompt "
                    f"by generator {g.model!r} (from another source or an edited file); "
                    f"import this file under another --generator name")
    return None


def write(store: Store, source: Source, records: list[Record], summary: ImportSummary) -> None:
    """Add the records the store lacks (one segment), after the guards of the module
    docstring; fills ``summary.planned`` and ``summary.added``."""
    summary.planned = len(records)
    stored = _stored_ids(store)
    fresh: list[Record] = []
    for r in records:
        ids = stored.get(r.key)
        if ids is None:
            fresh.append(r)
        elif r.id not in ids:
            raise GvstoreError(
                f"{source.path}: the store holds a different {kind_of(r)} with the same key "
                f"(this file imported before with another column mapping?); import it under "
                f"another --generator name")
    gens = [r for r in fresh if isinstance(r, Generation)]
    problem = _slot_conflict(store, gens)
    if problem is not None:
        raise GvstoreError(f"{source.path}: {problem}")
    for r in fresh:
        summary.added[kind_of(r)] = summary.added.get(kind_of(r), 0) + 1
    if not fresh:
        return
    with store.writer(source.folder, flush_records=len(fresh) + 1, flush_seconds=1e12) as w:
        w.add_batch(fresh)
