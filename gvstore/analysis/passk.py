"""pass@k: the unbiased estimator of Chen et al. (2021), and the per-generation utility frame.

For a prompt with ``n`` graded samples of which ``c`` are correct,

    pass@k = 1 - C(n - c, k) / C(n, k)

is the probability that at least one of ``k`` samples drawn without replacement from the ``n``
is correct. The binomials overflow floats long before ``n = 200``, so the ratio is computed as
the product ``prod_{i=0}^{k-1} (n - c - i) / (n - i)`` (each factor a ratio of two exact
integers, so one rounding per factor; the relative error is below ``2 k`` ulps). The product is
zero as soon as ``k > n - c``: then every draw of ``k`` holds a correct sample and pass@k = 1.

A sample counts as correct when its utility is 1 (full credit); partial credit counts as
wrong. A prompt with fewer than ``k`` graded samples has no pass@k: it is left out of that
``k``'s mean and counted in ``excluded``.

The frame pass@k reads is ``frames.base_frame`` (one row per generation with its utility), the
same frame path as every other analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from gvstore.errors import GvstoreError

DEFAULT_BY = ("task", "model", "round")


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k = 1 - C(n-c, k) / C(n, k) for one prompt with ``c`` correct of ``n`` samples."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # Both products equal C(n-c, k)/C(n, k); take the one with fewer factors.
    q = 1.0
    if k <= c:
        for i in range(k):
            q *= (n - c - i) / (n - i)
    else:
        for j in range(n - c + 1, n + 1):
            q *= (j - k) / j
    return 1.0 - q


def check_ks(ks: Iterable[int]) -> list[int]:
    """The ks sorted and deduplicated; an error if there is none or one is below 1."""
    out = sorted({int(k) for k in ks})
    if not out:
        raise GvstoreError("pass@k needs at least one k")
    if out[0] < 1:
        raise GvstoreError(f"k must be >= 1, got {out[0]}")
    return out


def powers_of_two(n: int) -> list[int]:
    """The default ks: 1, 2, 4, ... up to ``n`` (the most samples a prompt has)."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks


def pass_at_k_matrix(n: np.ndarray, c: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """pass@k of many prompts at once: shape ``(len(n), len(ks))``; NaN where ``k > n``.

    ``n`` and ``c`` are integer arrays (samples and correct samples per prompt). For each
    distinct ``n`` the ratios C(n-c, k)/C(n, k) of the distinct ``c`` are one cumulative
    product over ``k``, so the cost is that of a few small tables plus one gather.
    """
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    if n.shape != c.shape or n.ndim != 1:
        raise ValueError("n and c must be 1-d arrays of the same length")
    if n.size and (np.any(c < 0) or np.any(c > n)):
        raise ValueError("need 0 <= c <= n for every prompt")
    karr = np.asarray(check_ks(ks), dtype=np.int64)
    out = np.full((n.size, karr.size), np.nan)
    for nv in np.unique(n):
        rows = np.flatnonzero(n == nv)
        valid = karr <= nv
        if not valid.any():
            continue
        kmax = int(karr[valid].max())
        cs, inv = np.unique(c[rows], return_inverse=True)
        i = np.arange(kmax)
        # factor[c, i] = (n - c - i) / (n - i), clipped at 0 once the numerator runs out.
        num = np.maximum(nv - cs[:, None] - i[None, :], 0).astype(np.float64)
        ratio = np.cumprod(num / (nv - i)[None, :].astype(np.float64), axis=1)
        table = 1.0 - ratio[:, karr[valid] - 1]
        out[np.ix_(rows, np.flatnonzero(valid))] = table[inv.reshape(-1)]
    # ks may have come unsorted or with repeats: map back to the caller's columns.
    return out[:, np.searchsorted(karr, np.asarray(ks, dtype=np.int64))]


def pass_at_k_table(
    frame: pl.DataFrame,
    ks: Iterable[int],
    by: Sequence[str] = DEFAULT_BY,
) -> pl.DataFrame:
    """Mean over prompts of per-prompt pass@k, per group of ``by`` and per ``k``.

    ``frame`` has one row per generation with columns ``prompt``, ``utility`` (null: not
    graded; left out and counted) and the ``by`` columns (``frames.base_frame`` gives such a
    frame). Returns one row per group and ``k``: the ``by`` columns, ``k``, ``pass_at_k`` (null
    where no prompt has ``k`` samples), ``prompts`` (prompts in the mean), ``excluded``
    (prompts with fewer than ``k`` graded samples) and ``ungraded`` (generations of the group
    with no grade).
    """
    klist = check_ks(ks)
    by = list(by)
    missing = [col for col in (*by, "prompt", "utility") if col not in frame.columns]
    if missing:
        raise GvstoreError(f"pass@k frame lacks column(s) {', '.join(missing)}")
    whole = not by
    if whole:  # one group of everything
        frame = frame.with_columns(_all=pl.lit(0))
        by = ["_all"]
    per_prompt = (
        frame.filter(pl.col("utility").is_not_null())
        .group_by([*by, "prompt"])
        .agg(n=pl.len(), c=(pl.col("utility") >= 1.0).sum())
        # group_by's row order varies run to run (threads); the sums below are taken in this
        # order, so without the sort the last digit of a mean could differ between two runs
        .sort([*by, "prompt"], nulls_last=True)
    )
    groups = frame.select(by).unique().sort(by).with_row_index("_g")
    ungraded = frame.filter(pl.col("utility").is_null()).group_by(by).len(name="ungraded")
    per_prompt = per_prompt.join(groups, on=by, how="left", nulls_equal=True)
    g = per_prompt["_g"].to_numpy().astype(np.int64)
    vals = pass_at_k_matrix(per_prompt["n"].to_numpy(), per_prompt["c"].to_numpy(), klist)
    ok = ~np.isnan(vals)
    n_groups = groups.height
    sums = np.zeros((n_groups, len(klist)))
    used = np.zeros((n_groups, len(klist)), dtype=np.int64)
    np.add.at(sums, g, np.where(ok, vals, 0.0))
    np.add.at(used, g, ok.astype(np.int64))
    total = np.bincount(g, minlength=n_groups)[:, None]
    means = np.where(used > 0, sums / np.maximum(used, 1), np.nan)
    long = pl.DataFrame({
        "_g": np.repeat(np.arange(n_groups), len(klist)).astype(np.uint32),
        "k": np.tile(np.asarray(klist, dtype=np.int64), n_groups),
        "pass_at_k": means.reshape(-1),
        "prompts": used.reshape(-1),
        "excluded": (total - used).reshape(-1),
    }).with_columns(pl.col("pass_at_k").fill_nan(None))
    out = (
        groups.join(long, on="_g", how="left")
        .join(ungraded, on=by, how="left", nulls_equal=True)
        .with_columns(pl.col("ungraded").fill_null(0).cast(pl.Int64))
        .sort("_g", "k")
        .drop("_g")
    )
    return out.drop("_all") if whole else out
