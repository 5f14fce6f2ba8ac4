"""Iterative self-improvement, round by round (the paper's figure 4).

Round 0's model samples n answers per prompt; they are graded, verified and filtered, the kept
ones fine-tune round 1's model, which samples again, and so on. ``round_report`` reads the
record store's projections and gives, per round of a chain (``RoundRef``: round, generator,
whose verifications the gap uses), on the prompts every round shares:

* ``acc_strict``, ``acc_flexible``: J of DESIGN.md, the mean over prompts of the mean utility of
  the prompt's graded samples, under the strict and the flexible grade (kept apart);
  ``format_gap`` = acc_flexible - acc_strict (answers right in substance, wrong in format);
* ``gap``, ``rel_gap`` (with bootstrap intervals), ``acc_reweighted``, ``empty_filter``: those of
  ``gap.py`` for a filter spec and the round's verifier, under ``utility``;
* ``pass_at_k``: the mean over prompts of the unbiased estimator of ``passk.py``;
* ``distinct_answers``, ``effective_answers`` (exp of the entropy of the extracted answers),
  ``no_answer_rate``: does the model still say different things, or has it collapsed?

Prompts: a round's prompts are those with at least one graded generation (of the task, by the
round's model, in that round, within ``items``/``split`` if given); every row uses the prompts
common to all rounds of the chain (same prompt record, i.e. the same prompt handle), and says how
many it had before (``prompts_before``) and lost (``dropped``). Samples are the graded
generations of those prompts (newest grader version, as in ``frames.newest_grades``); ungraded
ones are left out and counted. ``docs/metrics_extra.md`` ("Rounds") states every definition.

Held-out prompts: ``RoundsReport.heldout`` is the same report on prompts of the task the rounds
never train on (``steps.rounds.report`` makes both, ``with_heldout`` puts them together), so a
gain on the training prompts alone (memorised answers, format learning) shows as such.

The numbers of one round are ``round_rows.py``'s; the figure is ``plots.rounds_figure``. The
library prints nothing; ``write_series`` writes its files atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gvstore.analysis.frames import UTILITIES, Dataset, Filters, newest_grades
from gvstore.analysis.gap import DEFAULT_RESAMPLES
from gvstore.analysis.passk import check_ks
from gvstore.analysis.round_rows import GapContext, RoundRow, base_numbers, clean, round_gap
from gvstore.analysis.specs import Spec, methods_of
from gvstore.errors import GvstoreError
from gvstore.io import write_atomic
from gvstore.replay import Projections

SELF = "self"
"""``infer_chain(verifier=SELF)``: each round's model verifies its own samples."""

DIVERSITY_THRESHOLD = 0.05
"""The ``diversity`` verdict: a change of effective answers (first round to last) above this
(in answers) is ``increasing``, below minus this ``decreasing``, else ``flat``."""

@dataclass(frozen=True)
class RoundRef:
    """One round of a chain: its generator, and whose verifications its gap uses."""

    round: int
    model: str
    """The generator: the round's model."""
    verifier: str | None
    """Whose verifications the gap uses; None: no gap (e.g. ground-truth filtering)."""


# --- the chain ---------------------------------------------------------------------------


def _verified_by(proj: Projections, gens: pl.DataFrame, verifier: str) -> bool:
    """Did ``verifier`` verify (or play a tournament match on) any of ``gens``?"""
    vers = proj.verifications.filter(pl.col("verifier") == verifier)
    if vers.join(gens, on="gen", how="semi").height:
        return True
    comps = proj.comparisons.filter(pl.col("verifier") == verifier)
    return comps.join(gens, left_on="a", right_on="gen", how="semi").height > 0


def infer_chain(proj: Projections, task: str, verifier: str | None = SELF) -> list[RoundRef]:
    """Every (model, round) with generations of ``task``, sorted by (round, model).

    ``verifier``: ``"self"`` gives each round its own model as verifier if that model verified
    (any method, tournaments included) any generation of that (model, round), else None; any
    other string is that verifier for every round; None: no gap anywhere. A task with no
    generations gives an empty list (which ``round_report`` refuses).
    """
    gens = proj.generations.filter(pl.col("task") == task).select("gen", "model", "round")
    out: list[RoundRef] = []
    for model, rnd in gens.select("model", "round").unique().sort("round", "model").iter_rows():
        ver = verifier
        if verifier == SELF:
            mine = gens.filter((pl.col("model") == model) & (pl.col("round") == rnd))
            ver = model if _verified_by(proj, mine.select("gen"), model) else None
        out.append(RoundRef(int(rnd), str(model), ver))
    return out


# --- the samples of each round -----------------------------------------------------------


def _where(items: Collection[str] | None, split: str | None) -> str:
    """How the prompts were restricted, for error messages ('' if they were not)."""
    parts = ([f"split {split!r}"] if split is not None else []) + (
        [f"{len(items)} chosen item(s)"] if items is not None else [])
    return f" among the prompts of {' and '.join(parts)}" if parts else ""


def _task_generations(proj: Projections, task: str, items: Collection[str] | None,
                      split: str | None) -> pl.DataFrame:
    """Generations of ``task`` whose prompt passes the ``items``/``split`` restriction."""
    gens = proj.generations.filter(pl.col("task") == task).select(
        "gen", "prompt", "model", "round", "sample_index")
    if items is None and split is None:
        return gens
    prompts = proj.prompts
    if items is not None:
        wanted = [items] if isinstance(items, str) else list(items)  # a str is one item id
        prompts = prompts.filter(pl.col("item_id").is_in(wanted))
    if split is not None:
        prompts = prompts.filter(pl.col("split") == split)
    return gens.join(prompts.select("prompt"), on="prompt", how="semi")


def _round_frames(proj: Projections, task: str, chain: Sequence[RoundRef],
                  items: Collection[str] | None, split: str | None,
                  grader: str | None) -> list[pl.DataFrame]:
    """Per round: its generations with their newest grade (``strict``, ``flexible``,
    ``extracted``; null where ungraded). Raises if a round has no (graded) generation."""
    gens = _task_generations(proj, task, items, split)
    grades = newest_grades(proj.grades.join(gens.select("gen"), on="gen", how="semi"), grader)
    grades = grades.select("gen", "strict", "flexible", "extracted")
    out = []
    for ref in chain:
        mine = gens.filter((pl.col("model") == ref.model) & (pl.col("round") == ref.round))
        what = f"task {task!r} by {ref.model!r} in round {ref.round}{_where(items, split)}"
        if mine.height == 0:
            raise GvstoreError(f"no generations of {what}")
        frame = mine.join(grades, on="gen", how="left")
        if frame["strict"].null_count() == frame.height:
            raise GvstoreError(f"no graded generations of {what}: grade them first")
        out.append(frame)
    return out


def _common_prompts(task: str, chain: Sequence[RoundRef],
                    frames: Sequence[pl.DataFrame]) -> tuple[np.ndarray, list[int]]:
    """The prompt handles (sorted) with a graded generation in every round, and how many
    prompts each round had on its own."""
    per_round = [set(f.filter(pl.col("strict").is_not_null())["prompt"].to_list())
                 for f in frames]
    common = set.intersection(*per_round)
    counts = [len(s) for s in per_round]
    if not common:
        had = ", ".join(f"round {r.round} ({r.model}): {n}"
                        for r, n in zip(chain, counts, strict=True))
        raise GvstoreError(f"no prompt of task {task!r} has graded generations in every round "
                           f"of the chain (prompts per round: {had})")
    return np.array(sorted(common), dtype=np.uint64), counts


def _gap_context(proj: Projections, task: str, chain: Sequence[RoundRef], spec: Spec,
                 utility: str, common: np.ndarray, resamples: int, seed: int,
                 grader: str | None) -> GapContext:
    """The dataset of the chain's generators, rounds and verifiers, and its groups."""
    verifiers = tuple(sorted({r.verifier for r in chain if r.verifier is not None}))
    ds = Dataset(proj, utility=utility, filters=Filters(
        tasks=(task,), generators=tuple(sorted({r.model for r in chain})),
        rounds=tuple(sorted({r.round for r in chain})), verifiers=verifiers), grader=grader)
    groups = {g.key: g for g in ds.groups(methods_of(spec))}
    return GapContext(task, spec, utility, common, resamples, seed, ds, groups)


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundsReport:
    """Per-round rows (chain order) and the change from the first round to the last."""

    task: str
    utility: str
    spec: str | None
    ks: tuple[int, ...]
    prompts: int
    """The prompts common to every round (each row uses these)."""
    resamples: int
    seed: int
    rows: list[RoundRow]
    trend: dict[str, float | None]
    """Last round minus first round: acc_strict, acc_flexible, gap, ``pass@K`` at the smallest
    and the largest k that both have, effective_answers (None where either side is None)."""
    diversity: str
    """``decreasing``, ``increasing`` or ``flat``: effective_answers moved by more than
    ``DIVERSITY_THRESHOLD`` down, up, or neither, from the first round to the last."""
    heldout: RoundsReport | None = None
    """The same report on held-out prompts of the task (never trained on), or None. The
    fields above are then those of the training prompts."""

    def with_heldout(self, heldout: RoundsReport) -> RoundsReport:
        """This report (the training prompts') with ``heldout`` beside it."""
        return dataclasses.replace(self, heldout=dataclasses.replace(heldout, heldout=None))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats rounded to 6 places, NaN as None; ``heldout`` (the same keys) only
        where there is a held-out set."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["rows"] = [r.to_dict() for r in self.rows]
        out.pop("heldout")
        if self.heldout is not None:
            out["heldout"] = self.heldout.to_dict()
        return dict(clean(out))


def _delta(first: float | None, last: float | None) -> float | None:
    return None if first is None or last is None else last - first


def _trend(rows: Sequence[RoundRow], ks: Sequence[int]) -> dict[str, float | None]:
    """Last minus first row, per metric (see ``RoundsReport.trend``)."""
    first, last = rows[0], rows[-1]
    out = {m: _delta(getattr(first, m), getattr(last, m))
           for m in ("acc_strict", "acc_flexible", "gap")}
    both = [k for k in ks if first.pass_at_k[k] is not None and last.pass_at_k[k] is not None]
    for k in dict.fromkeys(both[:1] + both[-1:]):
        out[f"pass@{k}"] = _delta(first.pass_at_k[k], last.pass_at_k[k])
    out["effective_answers"] = last.effective_answers - first.effective_answers
    return out


def diversity_verdict(change: float, threshold: float = DIVERSITY_THRESHOLD) -> str:
    """``decreasing`` if ``change`` < -threshold, ``increasing`` if > threshold, else ``flat``."""
    if change < -threshold:
        return "decreasing"
    if change > threshold:
        return "increasing"
    return "flat"


def round_report(
    proj: Projections,
    task: str,
    chain: Sequence[RoundRef],
    *,
    spec: Spec | None,
    ks: Sequence[int] = (1, 2, 4, 8),
    utility: str = "strict",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    items: Collection[str] | None = None,
    split: str | None = None,
    grader: str | None = None,
) -> RoundsReport:
    """Accuracy, gap, pass@k and answer diversity of each round of ``chain`` on ``task``.

    ``spec`` and each round's ``verifier`` give the gap (None: no gap); ``utility`` (strict or
    flexible) is the one the gap, pass@k and ``perfect`` use; ``ks`` are sorted and
    deduplicated; ``resamples``/``seed`` drive the
    bootstrap of ``gap.py`` (the common prompts come in the same order in every round, so the
    rounds' intervals use the same draws); ``items``/``split`` restrict the prompts by item id
    and split; ``grader`` names the grader whose grades count where several graded (as
    ``--grader`` elsewhere). Raises ``GvstoreError`` for an empty chain, a round with no (graded)
    generation, or no prompt common to every round.
    """
    if not chain:
        raise GvstoreError(f"no rounds to report for task {task!r}: the chain is empty")
    if utility not in UTILITIES:
        raise GvstoreError(f"unknown utility {utility!r}; choose from {', '.join(UTILITIES)}")
    if resamples < 0:
        raise GvstoreError(f"resamples must be >= 0, got {resamples}")
    klist = check_ks(ks)
    frames = _round_frames(proj, task, chain, items, split, grader)
    common, before = _common_prompts(task, chain, frames)
    ctx = (None if spec is None else
           _gap_context(proj, task, chain, spec, utility, common, resamples, seed, grader))
    rows = []
    for ref, frame, n_before in zip(chain, frames, before, strict=True):
        base = base_numbers(frame, common, utility, klist)
        gap, note = round_gap(ctx, ref.model, ref.round, ref.verifier)
        acc = (base["acc_strict"], base["acc_flexible"])
        rows.append(RoundRow(
            round=ref.round, model=ref.model, verifier=ref.verifier,
            prompts_before=n_before, dropped=n_before - base["prompts"],
            format_gap=acc[1] - acc[0], note=note, **base, **gap))
    trend = _trend(rows, klist)
    return RoundsReport(
        task=task, utility=utility, spec=None if spec is None else str(spec), ks=tuple(klist),
        prompts=int(common.size), resamples=resamples, seed=seed, rows=rows, trend=trend,
        diversity=diversity_verdict(trend["effective_answers"] or 0.0))


# --- files -------------------------------------------------------------------------------

SERIES_COLUMNS = (
    "round", "model", "verifier", "prompts", "acc_strict", "acc_flexible", "format_gap", "gap",
    "gap_lo", "gap_hi", "rel_gap", "rel_gap_lo", "rel_gap_hi", "effective_answers",
    "distinct_answers", "no_answer_rate",
)
"""The columns of ``rounds.csv`` before its ``pass@k`` columns."""


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def write_series(report: RoundsReport, folder: Path) -> list[Path]:
    """Write ``rounds.csv`` (one row per round: SERIES_COLUMNS, then ``pass@K`` per k) and
    ``rounds-passk.csv`` (``round, model, k, pass_at_k``) under ``folder``, atomically; with a
    held-out set, the same of it in ``rounds-heldout.csv`` and ``rounds-heldout-passk.csv``.
    Empty cells are None; floats are rounded to 6 places."""
    folder = Path(folder)
    out = []
    parts = [("rounds", report)] + ([("rounds-heldout", report.heldout)]
                                    if report.heldout is not None else [])
    for name, rep in parts:
        dicts = [r.to_dict() for r in rep.rows]
        header = [*SERIES_COLUMNS, *(f"pass@{k}" for k in rep.ks)]
        series = [[d[c] for c in SERIES_COLUMNS] + [d["pass_at_k"][str(k)] for k in rep.ks]
                  for d in dicts]
        passk = [[d["round"], d["model"], k, d["pass_at_k"][str(k)]]
                 for d in dicts for k in rep.ks]
        out += [write_atomic(folder / f"{name}.csv", _csv(header, series)),
                write_atomic(folder / f"{name}-passk.csv",
                             _csv(("round", "model", "k", "pass_at_k"), passk))]
    return out

