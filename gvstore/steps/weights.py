"""The weights step: write the ``Weight`` records of filter specs (idempotent).

Every filtered generation gets one record per spec and verifier (``weight_records``: the
weights come from ``gvstore.analysis.weights.Weigher``); ``materialise`` writes those the store
lacks, so a re-run writes nothing new. Used by ``gvstore weights`` and the ``weights`` stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gvstore.analysis.frames import Dataset, Filters, Group
from gvstore.analysis.specs import Combine, Leaf, Spec, methods_of, needs_labels
from gvstore.analysis.weights import Weigher
from gvstore.records import Weight, seal
from gvstore.replay import Projections, handle
from gvstore.store import Store


@dataclass
class MaterialiseReport:
    """What ``materialise`` did: records it computed, wrote, and found already stored."""

    computed: int = 0
    written: int = 0
    present: int = 0


def _input_ids(
    store: Store, gens: set[int]
) -> tuple[dict[int, str], dict[tuple[int, str, str], list[str]],
           dict[tuple[int, str], list[tuple[int, str]]]]:
    """Ids of the generations, verifications and tournament matches of ``gens`` (handles)."""
    gen_ids: dict[int, str] = {}
    vers: dict[tuple[int, str, str], list[str]] = {}
    comps: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for rec in store.iter_records(kinds=("generation", "verification", "comparison")):
        kind = type(rec).__name__
        if kind == "Generation":
            h = handle(rec.id)
            if h in gens:
                gen_ids[h] = rec.id
        elif kind == "Verification":
            h = handle(rec.generation_id)  # type: ignore[union-attr]
            if h in gens:
                vers.setdefault((h, rec.verifier, rec.method), []).append(rec.id)  # type: ignore[union-attr]
        elif rec.method == "tournament" and rec.sample_index == 0:  # type: ignore[union-attr]
            for side in (rec.generation_a, rec.generation_b):  # type: ignore[union-attr]
                h = handle(side)
                if h in gens:
                    comps.setdefault((h, rec.verifier), []).append(  # type: ignore[union-attr]
                        (rec.bracket_round, rec.id))  # type: ignore[union-attr]
    return gen_ids, vers, comps


def _rounds(spec: Spec) -> int:
    if isinstance(spec, Combine):
        return max(_rounds(p) for p in spec.parts)
    if isinstance(spec, Leaf) and spec.method == "tournament" and spec.rule.value is not None:
        return int(spec.rule.value)
    return 0


def weight_records(
    store: Store,
    specs: Sequence[Spec],
    *,
    filters: Filters | None = None,
    proj: Projections | None = None,
) -> list[Weight]:
    """Sealed ``Weight`` records of every filtered generation under every spec and verifier.

    ``inputs`` lists the ids of the generation's own verification records (the spec's methods,
    by the group's verifier) and of the tournament matches it played in the rounds the spec
    reads. Per-prompt rules (quantile, mean, exp) also depend on the prompt's other samples'
    scores, which are not listed: a later verification of a sibling sample does not change
    the key, so such weights are not recomputed by re-running (delete them to refresh).
    """
    proj = proj or Projections(store)
    labels = any(needs_labels(s) for s in specs)  # learned(...) trains on other prompts' grades
    ds = Dataset(proj, utility="strict" if labels else None, filters=filters)
    computed: list[tuple[Group, Spec, np.ndarray]] = []
    wanted: set[int] = set()
    for spec in specs:
        for g in ds.groups(methods_of(spec)):
            computed.append((g, spec, Weigher(g).weights(spec)))
            wanted.update(g.gen.tolist())
    gen_ids, vers, comps = _input_ids(store, wanted)
    out: list[Weight] = []
    for g, spec, w in computed:
        methods = [m for m in methods_of(spec) if m != "tournament"]
        rounds = _rounds(spec)
        text = str(spec)
        for h, weight in zip(g.gen.tolist(), w.tolist(), strict=True):
            inputs: list[str] = []
            for m in methods:
                inputs.extend(vers.get((h, g.verifier, m), ()))
            inputs.extend(i for r, i in comps.get((h, g.verifier), ()) if r < rounds)
            out.append(seal(Weight(generation_id=gen_ids[h], spec=text,
                                   inputs=tuple(sorted(set(inputs))), weight=float(weight))))
    return out


def materialise(
    store: Store,
    specs: Iterable[Spec],
    *,
    filters: Filters | None = None,
    folder: str = "weights",
) -> MaterialiseReport:
    """Write the ``Weight`` records of ``specs`` that the store lacks (idempotent)."""
    specs = list(specs)
    recs = weight_records(store, specs, filters=filters)
    rep = MaterialiseReport(computed=len(recs))
    todo = set(store.missing([r.key for r in recs], kind="weight"))
    rep.present = len({r.key for r in recs}) - len(todo)
    if todo:
        with store.writer(folder) as w:
            for r in recs:
                if r.key in todo:
                    todo.discard(r.key)
                    w.add(r)
                    rep.written += 1
    return rep
