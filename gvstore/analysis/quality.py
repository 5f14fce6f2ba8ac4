"""Verifier quality: each verifier's scores as a classifier of correct answers
(``docs/metrics.md``, "Verifier quality"; ``gvstore verifier``).

Per (task, generator, round, verifier) group and score method (``mc``, ``cot_binary``,
``cot_score``, any method with one score per sample; ``tournament`` has none and is skipped),
over the group's **graded** samples with a **non-null** score (mean of the repeats):

* label y = 1 iff utility >= 0.5 (``quality_stats.POSITIVE_AT``); confidence c = the score
  rescaled from the method's range (``Method.score_range``: ``mc`` and ``cot_binary`` [0, 1]
  as they are, ``cot_score`` [1, 10]: c = (s - 1) / 9);
* ROC AUC (scikit-learn's ``roc_auc_score``; undefined, None, when a class is absent), the
  ROC and precision-recall points at every distinct score (``quality_stats.curve``);
* calibration: ``bins`` equal-width bins of c (reliability diagram), ECE = sum over bins of
  |positives - summed confidence| / samples, Brier = mean (c - y)^2 (``brier_score_loss``);
* overconfidence = mean c - accuracy; for self-verification (verifier == generator) the
  **self-bias** = its overconfidence minus the mean overconfidence of the cross-verifiers of
  the same (task, generator, round, method);
* the parse-failure rate: graded samples this verifier verified with this method whose
  score is null (every repeat unparsed), over the graded samples it verified.

Intervals: the percentile bootstrap over the group's graded prompts (``gap.Bootstrap``, the
gap's draws); a resample's statistic is computed on the pooled samples of the drawn prompts,
each weighted by how often its prompt was drawn; resamples where it is undefined are left
out (``auc_undefined_resamples`` counts them for the AUC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import AsDict, Bootstrap, Graded
from gvstore.analysis.quality_stats import (
    DEFAULT_BINS,
    AucResampler,
    Calibration,
    Curve,
    bin_edges,
    curve,
    interval,
    labels,
    rescale,
)
from gvstore.errors import GvstoreError
from gvstore.verifiers.registry import get_method, is_method

METHODS = ("mc", "cot_binary", "cot_score")
"""The methods ``quality_table`` reads by default."""


@dataclass
class Bin:
    """One equal-width confidence bin (lo, hi]: its samples, correct samples, mean
    confidence and accuracy (None when empty), the accuracy's bootstrap interval."""

    lo: float
    hi: float
    n: int
    positives: int
    confidence: float | None
    accuracy: float | None
    accuracy_lo: float | None
    accuracy_hi: float | None


@dataclass
class QualityRow(AsDict):
    """The quality of one verifier's scores of one method on one group (the module doc)."""

    task: str
    generator: str
    round: int
    verifier: str
    method: str
    utility: str
    self_verification: bool
    scale: tuple[float, float]
    """The score range rescaled to [0, 1]: c = (s - lo) / (hi - lo)."""
    prompts: int
    """Graded prompts: the bootstrap's unit."""
    scored_prompts: int
    graded: int
    verified: int
    unparsed: int
    parse_failure_rate: float | None
    samples: int
    """Graded samples with a non-null score: what every statistic below is computed on."""
    positives: int
    negatives: int
    accuracy: float | None
    mean_confidence: float | None
    mean_confidence_correct: float | None
    mean_confidence_incorrect: float | None
    overconfidence: float | None
    overconfidence_lo: float | None
    overconfidence_hi: float | None
    auc: float | None
    auc_lo: float | None
    auc_hi: float | None
    auc_undefined_resamples: int
    brier: float | None
    brier_lo: float | None
    brier_hi: float | None
    ece: float | None
    ece_lo: float | None
    ece_hi: float | None
    bins: list[Bin]
    curve: Curve
    self_bias: float | None = None
    self_bias_lo: float | None = None
    self_bias_hi: float | None = None
    cross_verifiers: list[str] = field(default_factory=list)
    note: str | None = None
    resamples: int = 0
    seed: int = 0
    level: float = DEFAULT_LEVEL

    def headline(self) -> dict[str, object]:
        """The row's scalar fields only (no curve, bins, scale or lists), in field order:
        what a metrics file or a compact table holds."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if isinstance(getattr(self, f.name), (int, float, str, type(None)))}


def _f(x: Any) -> float | None:
    """A float, None where undefined (NaN)."""
    return None if x is None or x != x else float(x)


def score_methods(methods: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(methods with one score per sample, pairwise methods skipped) of ``methods``
    (default ``METHODS``); an unknown method is an error."""
    keep: list[str] = []
    skipped: list[str] = []
    for m in methods or METHODS:
        if not is_method(m):
            raise GvstoreError(f"unknown method {m!r}")
        (skipped if get_method(m).call == "pairwise" else keep).append(m)
    return list(dict.fromkeys(keep)), list(dict.fromkeys(skipped))


def _verified(ds: Dataset, g: Group, method: str) -> np.ndarray:
    """Per row of ``g``: whether its verifier verified it with ``method`` (any repeat)."""
    out = np.zeros(g.pidx.size, bool)
    got = ds.verifications(method).get(g.verifier)
    if got is not None:
        out[g.positions(got[0])[1]] = True
    return out


class _Samples:
    """The graded, scored samples of one group and method, and their bootstrap."""

    def __init__(self, ds: Dataset, g: Group, graded: Graded, method: str,
                 boot: Bootstrap) -> None:
        s_all = g.scores[method][graded.mask]
        ok = ~np.isnan(s_all)
        verified = _verified(ds, g, method)[graded.mask]
        self.graded = graded
        self.verified = int(verified.sum())
        self.unparsed = int((verified & ~ok).sum())
        self.s, self.pidx = s_all[ok], graded.pidx[ok]
        self.y = labels(graded.u[ok])
        lo, hi = get_method(method).score_range or (0.0, 1.0)
        self.scale = (float(lo), float(hi))
        self.c = rescale(self.s, lo, hi)
        self.boot = boot


def _bins(cal: Calibration, point: dict[str, np.ndarray], res: dict[str, np.ndarray] | None,
          level: float) -> list[Bin]:
    """The reliability bins of one row (point values, the accuracy's interval)."""
    k_bins = cal.n.shape[1]
    acc_lo, acc_hi = (interval(res["accuracy"], level) if res is not None
                      else (np.full(k_bins, np.nan), np.full(k_bins, np.nan)))
    edges = bin_edges(k_bins)
    return [Bin(lo=edges[k], hi=edges[k + 1], n=int(point["n"][0, k]),
                positives=int(round(cal.pos[:, k].sum())),
                confidence=_f(point["confidence"][0, k]), accuracy=_f(point["accuracy"][0, k]),
                accuracy_lo=_f(acc_lo[k]), accuracy_hi=_f(acc_hi[k])) for k in range(k_bins)]


def _auc(d: _Samples, resampled: bool) -> dict[str, Any]:
    """The AUC fields: scikit-learn's point value, the resampled interval (undefined with
    one class: None)."""
    from sklearn.metrics import roc_auc_score

    pos, n = int(d.y.sum()), d.s.size
    if not 0 < pos < n:
        return {"auc": None, "auc_lo": None, "auc_hi": None, "auc_undefined_resamples": 0}
    out: dict[str, Any] = {"auc": float(roc_auc_score(d.y, d.s)), "auc_lo": None,
                           "auc_hi": None, "auc_undefined_resamples": 0}
    if resampled:
        aucs = AucResampler(d.pidx, d.s, d.y, d.graded.n_prompts).resampled(d.boot.counts)
        lo, hi = interval(aucs, d.boot.level)
        out.update(auc_lo=_f(lo), auc_hi=_f(hi),
                   auc_undefined_resamples=int(np.isnan(aucs).sum()))
    return out


def _calibration(d: _Samples, bins: int) -> tuple[dict[str, Any], np.ndarray]:
    """The calibration fields (and bins) of one row, and its resampled overconfidence."""
    from sklearn.metrics import brier_score_loss

    boot, n, p = d.boot, d.s.size, d.graded.n_prompts
    cal = Calibration.of(d.pidx, d.c, d.y, p, bins)
    point = cal.stats(np.ones((1, p)))
    res = cal.stats(boot.counts) if boot.resamples and n else None
    out: dict[str, Any] = {"bins": _bins(cal, point, res, boot.level)}
    for name, key in (("ece", "ece"), ("brier", "brier"), ("overconfidence", "overconfidence"),
                      ("mean_confidence", "mean_conf")):
        out[name] = _f(point[key][0]) if n else None
        if name != "mean_confidence":
            lo, hi = interval(res[key], boot.level) if res is not None else (None, None)
            out[f"{name}_lo"], out[f"{name}_hi"] = _f(lo), _f(hi)
    if n:
        out["brier"] = float(brier_score_loss(d.y, d.c))
    over = res["overconfidence"] if res is not None else np.full(boot.resamples, np.nan)
    return out, over


def _stats_row(g: Group, method: str, utility: str, d: _Samples, bins: int,
               max_thresholds: int | None) -> tuple[QualityRow, np.ndarray]:
    """The row of one group and method, and its resampled overconfidence (for self-bias)."""
    n, pos = d.s.size, int(d.y.sum())
    cal, over = _calibration(d, bins)

    def mean_c(m: np.ndarray) -> float | None:
        return _f(d.c[m].mean()) if m.any() else None

    row = QualityRow(
        task=g.task, generator=g.generator, round=g.round, verifier=g.verifier, method=method,
        utility=utility, self_verification=g.verifier == g.generator, scale=d.scale,
        prompts=d.graded.n_prompts, scored_prompts=int(np.unique(d.pidx).size),
        graded=int(d.graded.u.size), verified=d.verified, unparsed=d.unparsed,
        parse_failure_rate=d.unparsed / d.verified if d.verified else None, samples=n,
        positives=pos, negatives=n - pos, accuracy=pos / n if n else None,
        mean_confidence_correct=mean_c(d.y > 0), mean_confidence_incorrect=mean_c(d.y == 0),
        **_auc(d, bool(d.boot.resamples)), **cal, curve=curve(d.s, d.y, max_thresholds),
        note=_note(d, n, pos), resamples=d.boot.resamples, level=d.boot.level)
    return row, over


MOSTLY_UNPARSED = 0.5
"""A parse-failure rate above this is flagged in the row's note."""


def _note(d: _Samples, n: int, pos: int) -> str | None:
    """What makes a row's numbers undefined or weak (None: nothing)."""
    if d.verified == 0:
        return "no verification of these graded samples"
    if n == 0:
        return f"no parsed score ({d.unparsed} of {d.verified} unparsed)"
    out = []
    if d.unparsed > MOSTLY_UNPARSED * d.verified:
        out.append(f"mostly unparsed: {d.unparsed} of {d.verified} scores null, the "
                   f"figures rest on {n} samples")
    if pos in (0, n):
        out.append(f"only {'correct' if pos else 'incorrect'} samples: AUC and ROC undefined")
    return "; ".join(out) or None


def _self_bias(rows: list[tuple[QualityRow, np.ndarray]], level: float) -> None:
    """Fill in each self-verification row's self-bias against its cross-verifiers."""
    by: dict[tuple[str, str, int, str], list[tuple[QualityRow, np.ndarray]]] = {}
    for r, over in rows:
        by.setdefault((r.task, r.generator, r.round, r.method), []).append((r, over))
    for part in by.values():
        cross = [(r, o) for r, o in part if not r.self_verification and r.samples]
        for r, over in part:
            if not r.self_verification or r.overconfidence is None or not cross:
                continue
            r.cross_verifiers = [c.verifier for c, _ in cross]
            r.self_bias = r.overconfidence - float(np.mean(
                [c.overconfidence for c, _ in cross]))
            if r.resamples and all(o.size == over.size for _, o in cross):
                diff = over - np.mean(np.stack([o for _, o in cross]), axis=0)
                lo, hi = interval(diff, level)
                r.self_bias_lo, r.self_bias_hi = _f(lo), _f(hi)


def quality_table(
    ds: Dataset,
    methods: Sequence[str] | None = None,
    *,
    bins: int = DEFAULT_BINS,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    max_thresholds: int | None = None,
) -> list[QualityRow]:
    """One ``QualityRow`` per (task, generator, round, verifier) group and score method.

    Call as ``quality_table(Dataset(Projections(store), utility="strict"), ["mc",
    "cot_score"], resamples=1000, seed=0)``; ``methods`` None reads ``METHODS``, and
    pairwise methods (``tournament``) are left out (``score_methods`` says which).
    ``max_thresholds`` keeps that many evenly spaced points of each ``curve`` (None: every
    distinct score). Groups without a graded sample are left out; rows come in the dataset's
    group order, method by method. Draw them with ``quality_plots.write_quality_plots``;
    ``row.to_dict()`` is everything (JSON-ready), ``row.headline()`` the scalars only.
    """
    if bins < 1:
        raise GvstoreError(f"bins must be >= 1, got {bins}")
    keep, _ = score_methods(methods)
    boots: dict[int, Bootstrap] = {}
    out: list[tuple[QualityRow, np.ndarray]] = []
    for m in keep:
        for g in ds.groups([m]):
            graded = Graded(g)
            n_prompts = graded.n_prompts
            if n_prompts == 0:
                continue
            boot = boots.get(n_prompts)
            if boot is None:
                boot = boots[n_prompts] = Bootstrap(n_prompts, resamples, seed, level)
            row, over = _stats_row(g, m, ds.utility or "strict",
                                   _Samples(ds, g, graded, m, boot), bins, max_thresholds)
            row.seed = seed
            out.append((row, over))
    _self_bias(out, level)
    return [r for r, _ in out]
