"""Verifier quality, the arithmetic: labels, ROC/AUC, precision and recall at each threshold,
calibration bins, ECE and Brier score, as point estimates and over bootstrap resamples of
prompts (numpy and scipy only; ``docs/metrics.md``, "Verifier quality").

The samples are the graded samples of one group with a non-null score of one method: score
``s``, confidence ``c`` (the score rescaled to [0, 1]), label ``y`` (``labels``) and prompt
number ``pidx`` (0..P-1). A bootstrap resample gives each prompt a count (``gap.draw_counts``);
its statistic is computed on the pooled samples of the drawn prompts, each sample weighted by
its prompt's count.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POSITIVE_AT = 0.5
"""A sample is a positive (correct) when its utility is at least this: a 0/1 utility (every
task's strict and flexible utilities today) is its own label."""
DEFAULT_BINS = 10
"""Equal-width confidence bins of the reliability diagram, the ECE and the histograms."""
_CHUNK = 1 << 22  # elements per (runs x resamples) block of the resampled AUC
_EXACT32 = 1 << 22  # below this many samples, float32 holds every weighted count exactly


def labels(utility: np.ndarray) -> np.ndarray:
    """The 0/1 ground-truth label of each utility: 1.0 iff u >= ``POSITIVE_AT``."""
    return (utility >= POSITIVE_AT).astype(np.float64)


def rescale(s: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scores of range [lo, hi] as confidences in [0, 1]: (s - lo) / (hi - lo), clipped."""
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def bin_index(c: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """The bin of each confidence among ``bins`` equal-width bins of [0, 1]: bin k holds
    (k/bins, (k+1)/bins], bin 0 also holds 0 (scikit-learn's ``calibration_curve`` rule)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], c).astype(np.int64)


def _num(wp: np.ndarray, wn: np.ndarray) -> np.ndarray:
    """Sum over ascending levels of wp_k (neg weight below k + half the neg weight at k),
    summed in float64 whatever the inputs' type; ``wn`` is overwritten."""
    half = 0.5 * wn
    np.cumsum(wn, axis=0, out=wn)
    wn -= half
    return np.einsum("i...,i...->...", wp, wn, dtype=np.float64)


def weighted_auc(s: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """The area under the ROC curve of scores ``s`` for labels ``y`` with sample weights
    ``w``: the weighted share of (positive, negative) pairs ranked right, a tie counting a
    half. NaN when either class has no weight (the AUC is undefined)."""
    w = np.ones(s.size) if w is None else np.asarray(w, np.float64)
    _, inv = np.unique(s, return_inverse=True)
    k = int(inv.max()) + 1 if inv.size else 0
    wp = np.bincount(inv, w * y, minlength=k)
    wn = np.bincount(inv, w * (1.0 - y), minlength=k)
    tp, tn = wp.sum(), wn.sum()
    if tp <= 0 or tn <= 0:
        return float("nan")
    return float(_num(wp, wn) / (tp * tn))


@dataclass
class Curve:
    """Per distinct score value t, highest first: predicted positive iff s >= t.

    ``tp``/``fp`` count positives/negatives at or above t; ``precision`` = tp / (tp + fp);
    ``recall`` (the true positive rate) = tp / positives, NaN without positives; ``fpr`` =
    fp / negatives, NaN without negatives."""

    threshold: list[float]
    tp: list[int]
    fp: list[int]
    precision: list[float]
    recall: list[float]
    fpr: list[float]


def curve(s: np.ndarray, y: np.ndarray, max_points: int | None = None) -> Curve:
    """The ROC and precision-recall points of ``s`` at every distinct score (all of them,
    or ``max_points`` evenly spaced ones, the highest and lowest kept)."""
    values, inv = np.unique(s, return_inverse=True)
    k = values.size
    pos = np.bincount(inv, y, minlength=k)[::-1]
    neg = np.bincount(inv, 1.0 - y, minlength=k)[::-1]
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    n_pos, n_neg = (tp[-1], fp[-1]) if k else (0.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / n_pos if n_pos > 0 else np.full(k, np.nan)
        fpr = fp / n_neg if n_neg > 0 else np.full(k, np.nan)
    keep = np.arange(k)
    if max_points is not None and 0 < max_points < k:
        keep = np.unique(np.round(np.linspace(0, k - 1, max(max_points, 2))).astype(np.int64))
    return Curve(threshold=values[::-1][keep].tolist(), tp=tp[keep].astype(np.int64).tolist(),
                 fp=fp[keep].astype(np.int64).tolist(), precision=precision[keep].tolist(),
                 recall=recall[keep].tolist(), fpr=fpr[keep].tolist())


class AucResampler:
    """The AUC of one sample set under many prompt weightings at once.

    The distinct scores are merged into runs (consecutive levels holding only positives, or
    only negatives, add up exactly; a level holding both stays alone), and per run the
    positives and negatives of each prompt are a sparse (runs x P) matrix; a block of
    resamples' counts (P x b) gives every run's weighted counts at once, then one cumulative
    sum down the runs. Exactly ``weighted_auc`` with each sample weighted by its prompt's
    count (tested), in O(samples x resamples) work without a per-resample sort."""

    def __init__(self, pidx: np.ndarray, s: np.ndarray, y: np.ndarray, n_prompts: int) -> None:
        from scipy import sparse

        _, inv = np.unique(s, return_inverse=True)
        k = int(inv.max()) + 1 if inv.size else 0
        has_pos = np.bincount(inv, y, minlength=k) > 0
        has_neg = np.bincount(inv, 1.0 - y, minlength=k) > 0
        kind = has_pos.astype(np.int8) + 2 * has_neg.astype(np.int8)  # 1 pos, 2 neg, 3 both
        new = np.ones(k, bool)
        new[1:] = (kind[1:] != kind[:-1]) | (kind[1:] == 3)
        run = (np.cumsum(new) - 1)[inv]
        self.runs = int(new.sum())
        shape = (self.runs, n_prompts)
        self.dtype = np.float32 if s.size < _EXACT32 else np.float64
        one = np.ones(s.size, self.dtype)
        p = y > 0

        def counts(m: np.ndarray) -> sparse.csr_matrix:
            return sparse.csr_matrix((one[m], (run[m], pidx[m])), shape=shape)

        self.pos, self.neg = counts(p), counts(~p)
        self.n_pos = np.bincount(pidx[p], minlength=n_prompts).astype(np.float64)
        self.n_neg = np.bincount(pidx[~p], minlength=n_prompts).astype(np.float64)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """The AUC under each row of ``counts`` (resamples x P): NaN where a class is absent."""
        out = np.full(counts.shape[0], np.nan)
        if self.runs == 0:
            return out
        tp_all, tn_all = counts @ self.n_pos, counts @ self.n_neg
        b = max(1, min(counts.shape[0], _CHUNK // self.runs))
        for start in range(0, counts.shape[0], b):
            part = slice(start, start + b)
            ok = (tp_all[part] > 0) & (tn_all[part] > 0)
            if not ok.any():
                continue
            ct = np.ascontiguousarray(counts[part].T, dtype=self.dtype)
            num = _num(self.pos @ ct, self.neg @ ct)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[part] = np.where(ok, num / (tp_all[part] * tn_all[part]), np.nan)
        return out


@dataclass
class Calibration:
    """Per prompt (rows) and bin (columns): samples ``n``, summed confidence ``conf``,
    summed label ``pos``; per prompt the summed squared error ``sq`` = sum (c - y)^2. Every
    calibration statistic of a prompt weighting is a function of their weighted sums."""

    n: np.ndarray
    conf: np.ndarray
    pos: np.ndarray
    sq: np.ndarray

    @classmethod
    def of(cls, pidx: np.ndarray, c: np.ndarray, y: np.ndarray, n_prompts: int,
           bins: int = DEFAULT_BINS) -> Calibration:
        cell = pidx * bins + bin_index(c, bins)
        size = n_prompts * bins

        def per(w: np.ndarray | None) -> np.ndarray:
            return np.bincount(cell, w, minlength=size).reshape(n_prompts, bins)

        return cls(n=per(None).astype(np.float64), conf=per(c), pos=per(y),
                   sq=np.bincount(pidx, (c - y) ** 2, minlength=n_prompts))

    def stats(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Under each row of ``counts`` (resamples x P; one row of ones: the data as they
        are): per bin ``n``, ``confidence`` and ``accuracy`` (NaN in an empty bin), and
        ``ece``, ``brier``, ``mean_conf``, ``accuracy_all``, ``overconfidence`` (NaN where no
        sample is drawn)."""
        n, conf, pos = counts @ self.n, counts @ self.conf, counts @ self.pos
        total = n.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_conf = conf.sum(axis=1) / total
            acc = pos.sum(axis=1) / total
            return {
                "n": n, "confidence": conf / n, "accuracy": pos / n,
                "ece": np.abs(pos - conf).sum(axis=1) / total,
                "brier": (counts @ self.sq) / total,
                "mean_conf": mean_conf, "accuracy_all": acc, "overconfidence": mean_conf - acc,
            }


def interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds (numpy's linear method) of resampled ``values`` (resamples x ...),
    NaN resamples left out; NaN where there are none."""
    a = (1.0 - level) / 2.0
    if values.shape[0] == 0:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN
        lo, hi = np.nanpercentile(values, [100 * a, 100 * (1 - a)], axis=0)
    return lo, hi


def bin_edges(bins: int = DEFAULT_BINS) -> Sequence[float]:
    """The bin edges 0, 1/bins, ..., 1."""
    return np.linspace(0.0, 1.0, bins + 1).tolist()
