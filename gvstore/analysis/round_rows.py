"""The numbers of one round of a chain: the ``RoundRow`` of ``rounds.round_report``.

``base_numbers`` gives the fields that need no verifier (accuracy strict and flexible,
pass@k, answer diversity) from one round's graded samples on the prompts common to the chain;
``round_gap`` the gap fields, from the round's group of ``frames.Dataset`` restricted to those
prompts. ``docs/metrics_extra.md`` ("Rounds") states every definition.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from gvstore.analysis.arrays import lookup
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import Bootstrap, GapResult, Graded, summarise
from gvstore.analysis.passk import pass_at_k_matrix
from gvstore.analysis.specs import Spec, methods_of
from gvstore.analysis.weights import Weigher

DIGITS = 6
"""``to_dict`` and the CSV files round floats to this many decimal places."""


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
    """From the gap's interval: improvable, worse, no gap or inconclusive (``gap.verdict``)."""
    prompts_to_decide: int | None
    """For an inconclusive verdict, about how many prompts would decide it."""
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
        return dict(clean(dataclasses.asdict(self)))


def clean(value: Any) -> Any:
    """``value`` JSON-ready: floats rounded to ``DIGITS`` places (non-finite: None), dict keys
    as strings, tuples as lists."""
    if isinstance(value, float):
        return round(value, DIGITS) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
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


def base_numbers(frame: pl.DataFrame, common: np.ndarray, utility: str,
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
    "prompts_to_decide": None,
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
        "prompts_to_decide": result.prompts_to_decide,
    }


@dataclass
class GapContext:
    """What every round's gap shares: the dataset, its groups, the spec, the bootstrap."""

    task: str
    spec: Spec
    utility: str
    common: np.ndarray
    resamples: int
    seed: int
    ds: Dataset
    groups: dict[tuple[str, str, int, str], Group]


def round_gap(ctx: GapContext | None, model: str, rnd: int,
              verifier: str | None) -> tuple[dict[str, Any], str | None]:
    """The gap fields of round ``rnd`` of ``model`` under ``verifier``, or all None and a note
    that says why (``ctx`` None: no filter spec)."""
    if ctx is None or verifier is None:
        why = "no filter spec" if ctx is None else "no verifier for this round"
        return dict(_NO_GAP), f"{why}: no gap"
    methods = methods_of(ctx.spec)
    group = ctx.groups.get((ctx.task, model, rnd, verifier))
    sub = None if group is None else _restrict(group, ctx.common)
    missing = [m for m in methods if sub is None or not _has_method(ctx.ds, sub, m)]
    if sub is None or missing:
        return dict(_NO_GAP), (f"verifier {verifier!r} has no {'/'.join(missing)} "
                               f"verifications of round {rnd} ({model}) on the "
                               "common prompts: no gap")
    graded = Graded(sub)
    st = graded.stats(Weigher(sub).weights(ctx.spec))
    boot = Bootstrap(graded.n_prompts, ctx.resamples, ctx.seed)
    return _gap_numbers(summarise(sub, str(ctx.spec), ctx.utility, st, boot, ctx.seed)), None
