"""What the viewer shows, as plain dicts: the overview, the prompt index and each prompt's samples.

* ``overview``: the rows of ``gap.gap_table`` for every spec given (``GapResult.to_dict``;
  NaN, as in an interval without a bootstrap, becomes null).
* ``groups``: per (task, generator, round, verifier) group of the *chosen* spec (the first
  one): its prompts, each with ``n`` (the number of its data file), its record id, the first
  ``SNIPPET`` characters of its text, ``acc`` (mean strict utility of its graded samples),
  ``acc_w`` (the chosen spec's reweighted accuracy), ``gap`` (``acc_w - acc``), ``disagree``
  (the share of its graded samples where the spec's keep/reject, weight > 0, differs from
  the ground truth, strict utility 1), ``samples`` and ``kept``.
* ``prompt_data(n)``: one prompt's full text and all its samples (ordered by sample index):
  text, strict and flexible grade and the extracted answer (the newest version of the grade,
  as ``frames`` picks it; null where ungraded), the weight the chosen spec gives it and
  whether it keeps it (weight > 0), and per verification method the mean score of its
  repeats (null if every repeat failed to parse) and the raw output of its first repeat.

Texts, grades and raw outputs are read from the store records (projections leave texts out),
for the shown generations only. Nothing here is escaped: the bundle encodes, the page inserts
every text as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.analysis.frames import Dataset, Filters, Group
from gvstore.analysis.frames_build import version_key
from gvstore.analysis.gap import gap_table
from gvstore.analysis.specs import Spec, methods_of
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Grade, Prompt, Verification
from gvstore.replay import Projections, handle
from gvstore.store import Store

DEFAULT_SPECS = ("mc:quantile=0.8",)  # the report's default
SNIPPET = 200


def _num(x: float) -> float | None:
    """A JSON number: NaN (ungraded, unparsed) becomes null."""
    return None if x != x else float(x)


@dataclass
class _Sample:
    gen: int
    sample_index: int
    weight: float
    utility: float


@dataclass
class _Prompt:
    n: int
    handle: int
    group: int
    samples: list[_Sample]


@dataclass
class _Texts:
    """What the records hold for the shown handles."""

    text: dict[int, tuple[str, str]] = field(default_factory=dict)  # handle -> (id, text)
    grade: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    scores: dict[int, dict[str, list[tuple[int, float | None, str]]]] = field(
        default_factory=dict)


def _read_records(store: Store, prompts: set[int], gens: set[int],
                  grader: str | None) -> _Texts:
    """Texts of the wanted prompts and generations, their newest grades and verifications."""
    out = _Texts()
    for rec in store.iter_records(kinds=("prompt", "generation", "grade", "verification")):
        if isinstance(rec, Prompt | Generation):
            h = handle(rec.id)
            if h in prompts or h in gens:
                out.text[h] = (rec.id, rec.text)
        elif isinstance(rec, Grade):
            g = handle(rec.generation_id)
            if g not in gens or (grader is not None and rec.grader != grader):
                continue
            rank = version_key(rec.grader_version)
            old = out.grade.get(g)
            if old is None or rank > old[0]:
                out.grade[g] = (rank, {"strict": rec.strict, "flexible": rec.flexible,
                                       "extracted": rec.extracted})
        elif isinstance(rec, Verification):
            g = handle(rec.generation_id)
            if g in gens:
                out.scores.setdefault(g, {}).setdefault(f"{rec.method}@{rec.verifier}", []).append(
                    (rec.sample_index, rec.score, rec.raw))
    return out


def _prompt_row(p: _Prompt, texts: _Texts) -> dict[str, Any]:
    """One line of the prompt index (see the module doc)."""
    graded = [s for s in p.samples if s.utility == s.utility]
    acc = float(np.mean([s.utility for s in graded])) if graded else None
    sw = sum(s.weight for s in graded)
    acc_w = (sum(s.weight * s.utility for s in graded) / sw if sw > 0 else acc)
    disagree = (float(np.mean([(s.weight > 0) != (s.utility == 1.0) for s in graded]))
                if graded else None)
    pid, text = texts.text.get(p.handle, ("", ""))
    return {"n": p.n, "id": pid, "snippet": text[:SNIPPET], "acc": acc, "acc_w": acc_w,
            "gap": None if acc is None or acc_w is None else acc_w - acc,
            "disagree": disagree, "samples": len(p.samples),
            "kept": sum(1 for s in p.samples if s.weight > 0)}


def _sample_dict(s: _Sample, texts: _Texts, verifier: str) -> dict[str, Any]:
    gid, text = texts.text.get(s.gen, ("", ""))
    grade = texts.grade.get(s.gen, ((), {"strict": None, "flexible": None, "extracted": None}))
    methods: dict[str, Any] = {}
    for key, reps in sorted(texts.scores.get(s.gen, {}).items()):
        method, _, who = key.partition("@")
        if who != verifier:
            continue
        reps.sort(key=lambda r: r[0])
        parsed = [r[1] for r in reps if r[1] is not None]
        methods[method] = {"score": float(np.mean(parsed)) if parsed else None,
                           "repeats": len(reps), "raw": reps[0][2]}
    return {"index": s.sample_index, "id": gid, "text": text, **grade[1],
            "weight": _num(s.weight), "kept": bool(s.weight > 0), "methods": methods}


class ViewData:
    """The overview, the prompt index and the prompts of one store view (see the module doc).

    ``specs``: the specs of the overview; the first one is the chosen spec (kept or not).
    """

    def __init__(self, store: Store, specs: Sequence[Spec], *, filters: Filters | None = None,
                 grader: str | None = None, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0, level: float = DEFAULT_LEVEL,
                 proj: Projections | None = None) -> None:
        if not specs:
            raise GvstoreError("the viewer needs at least one filter spec")
        self.store = store
        self.spec = specs[0]
        self.specs = list(specs)
        self.ds = ds = Dataset(proj or Projections(store), utility="strict", filters=filters,
                     grader=grader)
        self.overview = [{k: _num(v) if isinstance(v, float) else v
                          for k, v in r.to_dict().items()}
                         for r in gap_table(ds, specs, resamples=resamples, seed=seed,
                                            level=level)]
        groups = ds.groups(methods_of(self.spec))
        if not groups:
            raise GvstoreError(f"no generations with {', '.join(methods_of(self.spec))} "
                               "verifications match the filters")
        self._groups = groups
        self._prompts = self._collect(groups)
        self._texts = _read_records(store, {p.handle for p in self._prompts},
                                    {s.gen for p in self._prompts for s in p.samples}, grader)

    def _collect(self, groups: list[Group]) -> list[_Prompt]:
        out: list[_Prompt] = []
        for gi, g in enumerate(groups):
            w = Weigher(g).weights(self.spec)
            for p in range(g.n_prompts):
                rows = range(int(g.starts[p]), int(g.starts[p + 1]))
                out.append(_Prompt(len(out), int(g.prompts[p]), gi, [
                    _Sample(int(g.gen[r]), int(g.sample_index[r]), float(w[r]),
                            float(g.utility[r])) for r in rows]))
        return out

    def __len__(self) -> int:
        return len(self._prompts)

    def index(self) -> dict[str, Any]:
        """The overview and the prompt index: what ``index.html`` holds."""
        rows: list[list[dict[str, Any]]] = [[] for _ in self._groups]
        for p in self._prompts:
            rows[p.group].append(_prompt_row(p, self._texts))
        groups = [{"task": g.task, "generator": g.generator, "round": g.round,
                   "verifier": g.verifier, "prompts": r} for g, r in zip(self._groups, rows,
                                                                        strict=True)]
        return {"spec": str(self.spec), "overview": self.overview, "groups": groups}

    def prompt_data(self, n: int) -> dict[str, Any]:
        """Prompt ``n``'s text and samples (see the module doc)."""
        p = self._prompts[n]
        g = self._groups[p.group]
        pid, text = self._texts.text.get(p.handle, ("", ""))
        samples = sorted(p.samples, key=lambda s: s.sample_index)
        return {"n": n, "id": pid, "text": text, "task": g.task, "generator": g.generator,
                "round": g.round, "verifier": g.verifier, "spec": str(self.spec),
                "samples": [_sample_dict(s, self._texts, g.verifier) for s in samples]}
