"""What an interval says: the verdict words every command prints, and how many prompts an
undecided one would need (numpy and the standard library only).

For an estimate (a gap, a difference of two gaps) with a bootstrap interval [lo, hi]:

* ``improvable``: lo > 0 (the whole interval above 0);
* ``worse``: hi < 0 (the whole interval below 0);
* ``no gap``: the interval lies inside [-band, band] (``NO_GAP_BAND`` = 0.005, the line the
  paper's figure 4 draws at 0.5%): the data show the effect is at most that small;
* ``inconclusive``: anything else — the interval holds 0 but is wider than the band, so the
  data cannot tell a gap from none. ``prompts_to_decide`` then says about how many prompts
  would decide it (see there).
* ``unknown``: no interval was computed (``--resamples 0``).

An interval over fewer than ``MIN_PROMPTS`` (2) prompts is ``inconclusive`` whatever its
bounds: resampling one prompt gives a zero-width interval that says nothing about spread.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

NO_GAP_BAND = 0.005
MIN_PROMPTS = 2
IMPROVABLE = "improvable"
WORSE = "worse"
NO_GAP = "no gap"
INCONCLUSIVE = "inconclusive"
UNKNOWN = "unknown"


def verdict(lo: float, hi: float, *, band: float = NO_GAP_BAND,
            prompts: int | None = None) -> str:
    """The verdict of an interval [lo, hi] over ``prompts`` prompts (see the module doc); NaN
    bounds give ``unknown``, fewer than ``MIN_PROMPTS`` prompts ``inconclusive``."""
    if math.isnan(lo) or math.isnan(hi):
        return UNKNOWN
    if prompts is not None and prompts < MIN_PROMPTS:
        return INCONCLUSIVE
    if lo > 0:
        return IMPROVABLE
    if hi < 0:
        return WORSE
    if -band <= lo and hi <= band:
        return NO_GAP
    return INCONCLUSIVE


def prompts_to_decide(
    diffs: np.ndarray, level: float = 0.95, band: float = NO_GAP_BAND
) -> int | None:
    """About how many prompts would make an inconclusive interval decide, from the spread seen.

    ``diffs`` are the per-prompt values whose mean is the estimate (P of them). With their
    mean d and standard deviation s (ddof=1), an interval of half-width h = z s / sqrt(N)
    (z the normal quantile of ``level``) decides at N prompts when h < |d| (it excludes 0) or
    h < band - |d| (it lies inside the band); the easier of the two is taken:
    N = ceil((z s / max(|d|, band - |d|))^2). None if fewer than 2 values or s <= 1e-12.
    """
    x = np.asarray(diffs, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return None
    s = float(x.std(ddof=1))
    if s <= 1e-12:  # no spread (rounding of equal values aside)
        return None
    d = abs(float(x.mean()))
    margin = max(d, band - d)
    if margin <= 0.0:
        return None
    z = NormalDist().inv_cdf((1.0 + level) / 2.0)
    return int(math.ceil((z * s / margin) ** 2))


def describe(word: str, prompts: int | None) -> str:
    """The verdict as a table cell: ``inconclusive (~N prompts to decide)`` where N is known."""
    if word == INCONCLUSIVE and prompts is not None:
        return f"{word} (~{prompts:,} prompts to decide)"
    return word
