"""Verification variance: how consistent a verifier is when asked the same question again.

For a generation verified ``m`` times by the same (verifier, method) (repeats differ in
``sample_index``; templates are pooled), each verdict is made binary: "correct" when
``score >= threshold`` (``BINARY_THRESHOLDS``: ``cot_binary`` scores are 0 or 1, so 1 is
"correct"; an ``mc`` score is P(Correct), so "correct" means P(Correct) >= 0.5). Parse failures
(score null) are no verdict: they are left out and counted. With ``m`` verdicts,

    p = (number of "correct" verdicts) / m,    variance = p (1 - p)

the Bernoulli variance of the verdict (Song et al. 2025, appendix D.4). A generation needs
``m >= 2`` verdicts for a variance; fewer are counted as ``single``. Methods without a
threshold (``cot_score``, ``tournament``) are skipped unless the caller gives one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from gvstore.analysis.corr import histogram

BINARY_THRESHOLDS: dict[str, float] = {"mc": 0.5, "cot_binary": 0.5}
MAX_VARIANCE = 0.25
"""p (1 - p) never exceeds 1/4 (at p = 1/2)."""


def verdict_variance(
    vers: pl.DataFrame, thresholds: Mapping[str, float] | None = None
) -> pl.DataFrame:
    """One row per (verifier, method, gen) of the binary methods in ``vers``.

    Columns: ``verifier, method, gen, m`` (verdicts), ``failures`` (verifications with no
    score), ``correct`` (verdicts >= threshold), ``p`` and ``variance`` (null when m < 2).
    """
    th = dict(BINARY_THRESHOLDS if thresholds is None else thresholds)
    vers = vers.filter(pl.col("method").is_in(list(th)))
    threshold = pl.col("method").replace_strict(th, return_dtype=pl.Float64)
    out = (
        vers.with_columns(_hit=(pl.col("score") >= threshold).cast(pl.Int64))
        .group_by("verifier", "method", "gen")
        .agg(
            m=pl.col("score").count().cast(pl.Int64),
            failures=pl.col("score").null_count().cast(pl.Int64),
            correct=pl.col("_hit").sum().cast(pl.Int64),
        )
        .with_columns(p=pl.when(pl.col("m") > 0).then(pl.col("correct") / pl.col("m")))
        .with_columns(
            variance=pl.when(pl.col("m") >= 2).then(pl.col("p") * (1.0 - pl.col("p")))
        )
    )
    return out.sort("verifier", "method", "gen")


def variance_summary(per_gen: pl.DataFrame, bins: int = 10) -> list[dict[str, Any]]:
    """Per (verifier, method) of ``verdict_variance``'s frame: counts, mean variance, histogram.

    Each entry: ``verifier``, ``method``, ``generations`` (with a variance: m >= 2),
    ``single`` (fewer than 2 verdicts), ``failures`` (verifications with no score),
    ``mean_verdicts`` (mean m over ``generations``), ``mean_variance`` (None if no
    generation qualifies), ``consistent`` (share of ``generations`` with variance 0) and
    ``histogram`` of the variances over [0, 0.25].
    """
    out: list[dict[str, Any]] = []
    for (verifier, method), part in per_gen.group_by(
        "verifier", "method", maintain_order=True
    ):
        ok = part.filter(pl.col("variance").is_not_null())
        v = ok["variance"].to_numpy()
        n = int(v.size)
        out.append({
            "verifier": verifier, "method": method, "generations": n,
            "single": part.height - n,
            "failures": int(part["failures"].sum()),
            "mean_verdicts": float(ok["m"].mean()) if n else None,  # type: ignore[arg-type]
            "mean_variance": float(v.mean()) if n else None,
            "consistent": float((v == 0).mean()) if n else None,
            "histogram": histogram(v, bins, 0.0, MAX_VARIANCE),
        })
    out.sort(key=lambda e: (e["verifier"], e["method"]))
    return out
