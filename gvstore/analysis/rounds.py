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

The library prints nothing; ``write_series`` and ``rounds_figure`` write files atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gvstore.analysis.frames import UTILITIES, Dataset, Filters, Group, lookup, newest_grades
from gvstore.analysis.gap import DEFAULT_RESAMPLES, Bootstrap, GapResult, Graded, summarise
from gvstore.analysis.passk import check_ks, pass_at_k_matrix
from gvstore.analysis.specs import Spec, methods_of
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError
from gvstore.replay import Projections

SELF = "self"
"""``infer_chain(verifier=SELF)``: each round's model verifies its own samples."""

DIVERSITY_THRESHOLD = 0.05
"""The ``diversity`` verdict: a change of effective answers (first round to last) above this
(in answers) is ``increasing``, below minus this ``decreasing``, else ``flat``."""

DIGITS = 6
"""``to_dict`` and the CSV files round floats to this many decimal places."""


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


# --- per-round numbers -------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRow:
    """The numbers of one round on the common prompts (see the module doc and
    ``docs/metrics_extra.md``). Gap fields are None where there is no gap (``note`` says
    why); a mean over no value is None."""

    round: int
    model: str
    verifier: str | None
    prompts: int
    """Prompts used: those common to every round of the chain."""
    prompts_before: int
    """Prompts with a graded generation in this round before the intersection."""
    dropped: int
    """prompts_before - prompts: this round's prompts that some other round lacks."""
    samples: int
    """Graded generations used (on the common prompts)."""
    ungraded: int
    """Generations of the common prompts with no grade: left out."""
    n_min: int
    n_max: int
    """Fewest and most graded samples of one prompt."""
    acc_strict: float
    acc_flexible: float
    """Mean over prompts of the mean strict (flexible) utility: J of DESIGN.md."""
    format_gap: float
    """acc_flexible - acc_strict."""
    perfect: int
    """Prompts whose every sample has utility 1 under ``utility`` (acc(x) = 1)."""
    gap: float | None
    gap_lo: float | None
    gap_hi: float | None
    rel_gap: float | None
    rel_gap_lo: float | None
    rel_gap_hi: float | None
    acc_reweighted: float | None
    """Mean over prompts of acc_w(x) under the spec (DESIGN.md)."""
    empty_filter: int | None
    """Prompts whose filter kept nothing (they keep acc(x))."""
    verdict: str | None
    """From the gap's interval: improvable, not improvable, worse (``gap.verdict``)."""
    pass_at_k: dict[int, float | None]
    """k -> mean over prompts with >= k graded samples of the unbiased pass@k; None if none."""
    pass_at_k_excluded: dict[int, int]
    """k -> prompts left out of pass@k for having fewer than k graded samples."""
    distinct_answers: float
    """Mean over prompts of the number of distinct extracted answers."""
    effective_answers: float
    """Mean over prompts of exp(H), H the entropy (nats) of the prompt's answer distribution."""
    no_answer_rate: float
    """Share of samples with no extracted answer (null or blank)."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats rounded to 6 places, NaN as None, pass@k keys as strings."""
        return dict(_clean(dataclasses.asdict(self)))


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _answers(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``answer``: the extracted answer stripped, null where null or blank."""
    a = pl.col("extracted").str.strip_chars()
    return frame.with_columns(answer=pl.when(a == "").then(None).otherwise(a))


def _prompt_stats(frame: pl.DataFrame, utility: str) -> pl.DataFrame:
    """One row per prompt (sorted): n, c (utility 1 under ``utility``), mean strict and
    flexible, ``no_answer`` samples, ``distinct`` answers and ``effective`` = exp(entropy)
    (0 for a prompt with no answer)."""
    frame = _answers(frame)
    per = frame.group_by("prompt").agg(
        n=pl.len(),
        c=(pl.col(utility) >= 1.0).sum(),
        strict=pl.col("strict").mean(),
        flexible=pl.col("flexible").mean(),
        no_answer=pl.col("answer").null_count(),
        distinct=pl.col("answer").drop_nulls().n_unique(),
    )
    counts = frame.filter(pl.col("answer").is_not_null()).group_by("prompt", "answer").len()
    p = pl.col("len") / pl.col("len").sum().over("prompt")
    entropy = counts.with_columns(h=-p * p.log()).group_by("prompt").agg(
        effective=pl.col("h").sum().exp())
    return (per.join(entropy, on="prompt", how="left")
            .with_columns(pl.col("effective").fill_null(0.0)).sort("prompt"))


def _mean(values: np.ndarray) -> float | None:
    ok = values[~np.isnan(values)]
    return float(ok.mean()) if ok.size else None


def _passk(per: pl.DataFrame, ks: Sequence[int]) -> tuple[dict[int, float | None],
                                                            dict[int, int]]:
    """Mean over prompts of pass@k (prompts with fewer than k samples left out and counted)."""
    m = pass_at_k_matrix(per["n"].to_numpy(), per["c"].to_numpy(), ks)
    means = {k: _mean(m[:, j]) for j, k in enumerate(ks)}
    excluded = {k: int(np.isnan(m[:, j]).sum()) for j, k in enumerate(ks)}
    return means, excluded


def _prompt_frame(prompts: np.ndarray) -> pl.DataFrame:
    """A one-column frame of prompt handles, to semi-join on."""
    return pl.DataFrame({"prompt": pl.Series(prompts, dtype=pl.UInt64)})


def _base_numbers(frame: pl.DataFrame, common: np.ndarray, utility: str,
                  ks: Sequence[int]) -> dict[str, Any]:
    """The RoundRow fields that need no verifier, from one round's graded samples."""
    mine = frame.join(_prompt_frame(common), on="prompt", how="semi")
    graded = mine.filter(pl.col("strict").is_not_null())
    per = _prompt_stats(graded, utility)
    acc = per[utility].to_numpy()
    means, excluded = _passk(per, ks)
    n = per["n"].to_numpy()
    return {
        "prompts": per.height, "samples": graded.height,
        "ungraded": mine.height - graded.height,
        "n_min": int(n.min()), "n_max": int(n.max()),
        "acc_strict": float(per["strict"].mean()),  # type: ignore[arg-type]
        "acc_flexible": float(per["flexible"].mean()),  # type: ignore[arg-type]
        "perfect": int((acc >= 1.0).sum()),
        "pass_at_k": means, "pass_at_k_excluded": excluded,
        "distinct_answers": float(per["distinct"].mean()),  # type: ignore[arg-type]
        "effective_answers": float(per["effective"].mean()),  # type: ignore[arg-type]
        "no_answer_rate": float(per["no_answer"].sum()) / graded.height,
    }


# --- the gap of a round ------------------------------------------------------------------

_NO_GAP: dict[str, Any] = {
    "gap": None, "gap_lo": None, "gap_hi": None, "rel_gap": None, "rel_gap_lo": None,
    "rel_gap_hi": None, "acc_reweighted": None, "empty_filter": None, "verdict": None,
}


def _restrict(group: Group, prompts: np.ndarray) -> Group:
    """The rows of ``group`` whose prompt is in ``prompts`` (handles), as a group of its own."""
    keep_p = np.isin(group.prompts, prompts)
    rows = keep_p[group.pidx]
    pidx = (np.cumsum(keep_p) - 1)[group.pidx[rows]]
    sizes = np.bincount(pidx, minlength=int(keep_p.sum()))
    gen = group.gen[rows]
    comps = group.comparisons
    if comps is not None:
        comps = comps.join(_prompt_frame(group.prompts[keep_p]), on="prompt", how="semi")
    return dataclasses.replace(
        group, gen=gen, prompt=group.prompt[rows], sample_index=group.sample_index[rows],
        utility=group.utility[rows], pidx=pidx, prompts=group.prompts[keep_p],
        starts=np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        gen_order=np.argsort(gen), scores={m: s[rows] for m, s in group.scores.items()},
        comparisons=comps)


def _has_method(ds: Dataset, group: Group, method: str) -> bool:
    """Did the group's verifier verify any of its generations with ``method``?"""
    if method == "tournament":
        return group.comparisons is not None and group.comparisons.height > 0
    got = ds.verifications(method).get(group.verifier)
    return got is not None and lookup(group.gen, got[0], group.gen_order)[1].size > 0


def _gap_numbers(result: GapResult) -> dict[str, Any]:
    return {
        "gap": result.gap, "gap_lo": result.gap_lo, "gap_hi": result.gap_hi,
        "rel_gap": result.rel_gap, "rel_gap_lo": result.rel_gap_lo,
        "rel_gap_hi": result.rel_gap_hi, "acc_reweighted": result.reweighted,
        "empty_filter": result.empty_prompts,
        "verdict": result.verdict if result.resamples else None,
    }


@dataclass
class _GapContext:
    """What every round's gap shares: the dataset, its groups, the spec, the bootstrap."""

    task: str
    spec: Spec
    utility: str
    common: np.ndarray
    resamples: int
    seed: int
    ds: Dataset
    groups: dict[tuple[str, str, int, str], Group]


def _gap_context(proj: Projections, task: str, chain: Sequence[RoundRef], spec: Spec,
                 utility: str, common: np.ndarray, resamples: int, seed: int,
                 grader: str | None) -> _GapContext:
    verifiers = tuple(sorted({r.verifier for r in chain if r.verifier is not None}))
    ds = Dataset(proj, utility=utility, filters=Filters(
        tasks=(task,), generators=tuple(sorted({r.model for r in chain})),
        rounds=tuple(sorted({r.round for r in chain})), verifiers=verifiers), grader=grader)
    groups = {g.key: g for g in ds.groups(methods_of(spec))}
    return _GapContext(task, spec, utility, common, resamples, seed, ds, groups)


def _round_gap(ctx: _GapContext | None, ref: RoundRef) -> tuple[dict[str, Any], str | None]:
    """The gap fields of one round, or all None and a note that says why."""
    if ctx is None or ref.verifier is None:
        why = "no filter spec" if ctx is None else "no verifier for this round"
        return dict(_NO_GAP), f"{why}: no gap"
    methods = methods_of(ctx.spec)
    group = ctx.groups.get((ctx.task, ref.model, ref.round, ref.verifier))
    sub = None if group is None else _restrict(group, ctx.common)
    missing = [m for m in methods if sub is None or not _has_method(ctx.ds, sub, m)]
    if sub is None or missing:
        return dict(_NO_GAP), (f"verifier {ref.verifier!r} has no {'/'.join(missing)} "
                               f"verifications of round {ref.round} ({ref.model}) on the "
                               "common prompts: no gap")
    graded = Graded(sub)
    st = graded.stats(Weigher(sub).weights(ctx.spec))
    boot = Bootstrap(graded.n_prompts, ctx.resamples, ctx.seed)
    return _gap_numbers(summarise(sub, str(ctx.spec), ctx.utility, st, boot, ctx.seed)), None


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats rounded to 6 places, NaN as None."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["rows"] = [r.to_dict() for r in self.rows]
        return dict(_clean(out))


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
        base = _base_numbers(frame, common, utility, klist)
        gap, note = _round_gap(ctx, ref)
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


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def write_series(report: RoundsReport, folder: Path) -> list[Path]:
    """Write ``rounds.csv`` (one row per round: SERIES_COLUMNS, then ``pass@K`` per k) and
    ``rounds-passk.csv`` (``round, model, k, pass_at_k``) under ``folder``, atomically.
    Empty cells are None; floats are rounded to 6 places."""
    folder = Path(folder)
    dicts = [r.to_dict() for r in report.rows]
    header = [*SERIES_COLUMNS, *(f"pass@{k}" for k in report.ks)]
    series = [[d[c] for c in SERIES_COLUMNS] + [d["pass_at_k"][str(k)] for k in report.ks]
              for d in dicts]
    passk = [[d["round"], d["model"], k, d["pass_at_k"][str(k)]]
             for d in dicts for k in report.ks]
    return [
        _write_text(folder / "rounds.csv", _csv(header, series)),
        _write_text(folder / "rounds-passk.csv",
                    _csv(("round", "model", "k", "pass_at_k"), passk)),
    ]


def rounds_figure(report: RoundsReport, path: Path) -> Path:
    """A 2x2 PNG: (a) accuracy strict and flexible, (b) gap and relative gap with their
    intervals, (c) pass@k against k (log2) per round, (d) effective and distinct answers;
    rounds on integer ticks."""
    from gvstore.analysis.plots import _figure, save

    fig, (a, b, c, d) = _figure(10.0, 7.5, 2, 2)
    rows = report.rows
    xs = [r.round for r in rows]
    a.plot(xs, [r.acc_strict for r in rows], marker="o", label="strict")
    a.plot(xs, [r.acc_flexible for r in rows], marker="s", label="flexible")
    _axes(a, "(a) accuracy", "accuracy")
    _gap_panel(b, rows)
    b.set_xlim(a.get_xlim())  # the panels over rounds span the same rounds
    for r in rows:
        ys = [r.pass_at_k[k] for k in report.ks]
        c.plot(list(report.ks), [math.nan if y is None else y for y in ys],
               marker="o", markersize=3, label=f"round {r.round} ({r.model})")
    c.set_xscale("log", base=2)
    c.set_xticks(list(report.ks), [str(k) for k in report.ks])
    c.set_ylim(0.0, 1.02)
    c.set_xlabel("k")
    c.set_ylabel(f"pass@k ({report.utility})")
    c.set_title("(c) pass@k")
    c.grid(alpha=0.3)
    c.legend(fontsize="small")
    d.plot(xs, [r.effective_answers for r in rows], marker="o", label="effective (exp H)")
    d.plot(xs, [r.distinct_answers for r in rows], marker="s", label="distinct")
    _axes(d, f"(d) answers per prompt: diversity {report.diversity}", "answers")
    d.set_xlim(a.get_xlim())
    fig.suptitle(f"{report.task}: {len(rows)} rounds on {report.prompts} prompts"
                 + (f", {report.spec}" if report.spec else ""))
    return save(fig, path)


def _axes(ax: Any, title: str, ylabel: str) -> None:
    """Round numbers as integer ticks, a grid, a legend."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _reach(value: float, bound: float | None) -> float:
    """How far an interval bound lies from the value (0: no interval, e.g. no bootstrap)."""
    return 0.0 if bound is None or math.isnan(bound) else abs(value - bound)


def _gap_panel(ax: Any, rows: Sequence[RoundRow]) -> None:
    """Gap and relative gap per round with interval bars (dodged apart by a little so both
    show); rounds without a gap are skipped."""
    for name, marker, dodge in (("gap", "o", -0.04), ("rel_gap", "s", 0.04)):
        pts = [(r.round + dodge, getattr(r, name), getattr(r, f"{name}_lo"),
                getattr(r, f"{name}_hi"))
               for r in rows if getattr(r, name) is not None]
        if not pts:
            continue
        x, y, lo, hi = (list(v) for v in zip(*pts, strict=True))
        err = [[_reach(yi, b) for yi, b in zip(y, lo, strict=True)],
               [_reach(yi, b) for yi, b in zip(y, hi, strict=True)]]
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=3,
                    label="relative gap" if name == "rel_gap" else "gap")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if not any(r.gap is not None for r in rows):
        ax.text(0.5, 0.5, "no gap (no spec or verifier)", ha="center", va="center",
                transform=ax.transAxes)
    _axes(ax, "(b) generation-verification gap", "gap")
