"""Training sets from a filter spec: kept samples for SFT, (chosen, rejected) pairs for DPO.

* ``sft``: one JSON line per kept generation (weight > 0) in chat format:
  ``{"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant",
  "content": GENERATION}], "prompt_id": ..., "generation_id": ..., "weight": w}``,
  ordered by prompt handle, then weight (highest first), then sample index. A prompt whose
  filter kept nothing contributes nothing (the metrics' fall-back to the base distribution
  is for measuring, not for training).
* ``pairs``: per prompt, at most one line ``{"prompt", "chosen", "rejected", "prompt_id",
  "chosen_id", "rejected_id", "chosen_weight", "rejected_weight"}``. ``chosen`` is the kept
  sample with the highest weight; ``rejected`` the sample with the lowest weight, which must
  be strictly lower than the chosen one's (for keep/reject rules: a rejected sample, w = 0).
  Ties go to the lowest sample index. Only the verifier's weights decide: the ground truth is
  never read (except with ``spec=None``, the oracle ablation: weight 1 for a generation graded
  correct under the strict utility, 0 otherwise; and a ``learned(...)`` spec, trained on the
  strict grades of the other folds' prompts, never on a prompt's own). A prompt with no kept
  or no lower-weighted sample gives no pair (counted).

Weights need one verifier: if the filtered generations were verified by several, name one.
Texts are read from the store records, for the kept generations only. Files are written
through ``gvstore.io.atomic_path``, so a reader never sees half a file. The file's name obeys the
safe-name rule of ``gvstore.names`` (it is checked before the store is read).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gvstore.analysis.frames import Dataset, Filters, Group
from gvstore.analysis.specs import Spec, methods_of, needs_labels
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError
from gvstore.io import atomic_path
from gvstore.names import check_name
from gvstore.replay import Projections, handle
from gvstore.store import Store


@dataclass
class ExportReport:
    """What an export wrote."""

    path: str
    spec: str
    verifier: str
    lines: int = 0
    prompts: int = 0
    skipped_prompts: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


GROUND_TRUTH = "ground_truth"


def _truth_groups(store: Store, filters: Filters | None,
                  proj: Projections | None) -> list[tuple[Group, np.ndarray]]:
    """The oracle filter: weight 1 for a generation graded correct (strict), else 0."""
    ds = Dataset(proj or Projections(store), utility="strict", filters=filters)
    out: list[tuple[Group, np.ndarray]] = []
    for (task, model, rnd), a in ds.slices():
        g = Group(task, model, rnd, GROUND_TRUTH, gen=a["gen"], prompt=a["prompt"],
                  sample_index=a["sample_index"], utility=a["utility"], pidx=a["pidx"],
                  prompts=a["prompts"], starts=a["starts"], gen_order=a["gen_order"])
        out.append((g, np.where(a["utility"] == 1.0, 1.0, 0.0)))
    if not out:
        raise GvstoreError("no generations match the filters")
    return out


def _groups(store: Store, spec: Spec | None, filters: Filters | None,
            proj: Projections | None) -> list[tuple[Group, np.ndarray]]:
    if spec is None:
        return _truth_groups(store, filters, proj)
    ds = Dataset(proj or Projections(store), utility="strict" if needs_labels(spec) else None,
                 filters=filters)
    groups = ds.groups(methods_of(spec))
    if not groups:
        raise GvstoreError(f"no generations with {', '.join(methods_of(spec))} verifications "
                           "match the filters")
    verifiers = sorted({g.verifier for g in groups})
    if len(verifiers) > 1:
        raise GvstoreError(f"the generations are verified by several verifiers "
                           f"({', '.join(verifiers)}); name one with --verifier")
    return [(g, Weigher(g).weights(spec)) for g in groups]


def _texts(store: Store, prompts: set[int], gens: set[int]) -> dict[int, tuple[str, str]]:
    """(record id, text) of the wanted prompt and generation handles."""
    out: dict[int, tuple[str, str]] = {}
    for rec in store.iter_records(kinds=("prompt", "generation")):
        h = handle(rec.id)
        if h in gens or h in prompts:
            out[h] = (rec.id, rec.text)  # type: ignore[union-attr]
    return out


def _check_out(path: Path) -> Path:
    """An export file path whose name obeys the safe-name rule and that is not a folder."""
    path = Path(path)
    check_name(path.name, "export file name", f"(in {path})")
    if path.is_dir():
        raise GvstoreError(f"cannot export to {path}: it is a folder; name a file")
    return path


def _write_jsonl(path: Path, lines: Iterable[dict[str, object]]) -> int:
    """Write one JSON object a line, whole or not at all; returns the number of lines."""
    n = 0
    with atomic_path(_check_out(path)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            n += 1
    return n


def _rows_by_prompt(g: Group, w: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(prompt handle, its rows ordered by weight desc, then sample index) per prompt."""
    for p in range(g.n_prompts):
        rows = np.arange(g.starts[p], g.starts[p + 1])
        rows = rows[np.lexsort((g.sample_index[rows], -w[rows]))]
        yield int(g.prompts[p]), rows


def export_sft(store: Store, spec: Spec | None, out: Path, *, filters: Filters | None = None,
               proj: Projections | None = None) -> ExportReport:
    """Write the kept (prompt, generation) pairs as chat-format JSONL. ``spec=None`` keeps
    what the grader marks correct (strict utility 1): the ground truth as verifier."""
    _check_out(out)
    groups = _groups(store, spec, filters, proj)
    rep = ExportReport(str(out), str(spec) if spec is not None else GROUND_TRUTH,
                       groups[0][0].verifier)
    picked: list[tuple[int, int, float]] = []
    for g, w in groups:
        for ph, rows in _rows_by_prompt(g, w):
            kept = rows[w[rows] > 0]
            if kept.size == 0:
                rep.skipped_prompts += 1
                continue
            rep.prompts += 1
            picked.extend((ph, int(g.gen[r]), float(w[r])) for r in kept)
    texts = _texts(store, {p for p, _, _ in picked}, {h for _, h, _ in picked})

    def lines() -> Iterable[dict[str, object]]:
        for ph, gh, wt in picked:
            (pid, ptext), (gid, gtext) = texts[ph], texts[gh]
            yield {"messages": [{"role": "user", "content": ptext},
                                {"role": "assistant", "content": gtext}],
                   "prompt_id": pid, "generation_id": gid, "weight": wt}

    rep.lines = _write_jsonl(out, lines())
    return rep


def export_pairs(store: Store, spec: Spec | None, out: Path, *, filters: Filters | None = None,
                 proj: Projections | None = None) -> ExportReport:
    """Write one (prompt, chosen, rejected) line per prompt that has both (``spec=None``: a
    correct and an incorrect sample by the ground truth)."""
    _check_out(out)
    groups = _groups(store, spec, filters, proj)
    rep = ExportReport(str(out), str(spec) if spec is not None else GROUND_TRUTH,
                       groups[0][0].verifier)
    picked: list[tuple[int, int, float, int, float]] = []
    for g, w in groups:
        for ph, rows in _rows_by_prompt(g, w):
            best = rows[0]
            low = w[rows].min()
            worst = rows[w[rows] == low]
            worst_row = worst[np.argmin(g.sample_index[worst])]
            if w[best] <= 0 or low >= w[best]:
                rep.skipped_prompts += 1
                continue
            rep.prompts += 1
            picked.append((ph, int(g.gen[best]), float(w[best]), int(g.gen[worst_row]),
                           float(low)))
    texts = _texts(store, {p[0] for p in picked},
                   {p[1] for p in picked} | {p[3] for p in picked})

    def lines() -> Iterable[dict[str, object]]:
        for ph, ch, cw, rh, rw in picked:
            yield {"prompt": texts[ph][1], "chosen": texts[ch][1], "rejected": texts[rh][1],
                   "prompt_id": texts[ph][0], "chosen_id": texts[ch][0],
                   "rejected_id": texts[rh][0], "chosen_weight": cw, "rejected_weight": rw}

    rep.lines = _write_jsonl(out, lines())
    return rep
