"""The generation-verification gap of a filter spec, with bootstrap intervals over prompts.

For one (task, generator, round, verifier) group and the graded samples of each prompt x
(ungraded samples are left out and counted; their weights are still computed with them):

    acc(x)   = mean_i u_i
    acc_w(x) = sum_i w_i u_i / sum_i w_i,  or acc(x) where every w_i = 0 (counted: ``empty``)
    gap      = mean_x (acc_w(x) - acc(x))
    rel gap  = mean_x r(x),  r(x) = (acc_w(x) - acc(x)) / (1 - acc(x)), 0 where acc(x) = 1
               (counted: ``perfect``)

Intervals: the percentile bootstrap over prompts: ``resamples`` times, P prompts are drawn
with replacement (numpy ``default_rng(seed)``, one (resamples x P) draw shared by every
statistic, so base, reweighted, gap and relative gap are paired), each statistic's mean is
taken over the drawn prompts, and the interval is the (1 - level)/2 and (1 + level)/2
percentiles (linear interpolation) of those means. The verdict reads the gap's interval
(``gvstore.analysis.verdicts``): ``improvable`` if it lies above 0, ``worse`` if below, ``no
gap`` if it lies inside [-0.005, 0.005], else ``inconclusive`` (with ``prompts_to_decide``,
about how many prompts would decide it at the spread seen).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES, groupcache, verdicts
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.specs import Spec, methods_of
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError


@dataclass
class PromptStats:
    """Per-prompt numbers of one group under one weighting (graded samples only)."""

    acc: np.ndarray
    acc_w: np.ndarray
    empty: np.ndarray
    kept: int
    graded: int
    ungraded: int

    @property
    def diff(self) -> np.ndarray:
        return self.acc_w - self.acc

    @property
    def rel(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.acc < 1.0, self.diff / (1.0 - self.acc), 0.0)

    @property
    def perfect(self) -> np.ndarray:
        return self.acc >= 1.0


class Graded:
    """The graded rows of a group, with what every weighting of it reuses."""

    def __init__(self, group: Group) -> None:
        u = group.utility
        self.mask = ~np.isnan(u)
        self.all = bool(self.mask.all())  # every sample graded: no row is left out
        self.u = u if self.all else u[self.mask]
        pidx = group.pidx if self.all else group.pidx[self.mask]
        n = np.bincount(pidx, minlength=group.n_prompts)
        self.present = n > 0  # prompts with at least one graded sample
        self.n_prompts = int(self.present.sum())
        self.pidx = pidx if self.n_prompts == n.size else (np.cumsum(self.present) - 1)[pidx]
        self.n = n[self.present].astype(np.float64)
        # Rows come in prompt order (a Group's), so each prompt's rows are one run: its sums
        # are one reduceat over the run starts (several times faster than a bincount).
        runs = self.pidx.size > 0 and bool((self.pidx[1:] >= self.pidx[:-1]).all())
        self.first = np.cumsum(n[self.present]) - n[self.present] if runs else None
        self.acc = self.sums(self.u) / self.n
        self.ungraded = int(self.mask.size - np.count_nonzero(self.mask))

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Per prompt: the sum of ``x`` (one value per graded row)."""
        if self.first is None:
            return np.bincount(self.pidx, x, minlength=self.n_prompts)
        return np.add.reduceat(x, self.first)

    def stats(self, w: np.ndarray) -> PromptStats:
        ww = w if self.all else w[self.mask]
        sw = self.sums(ww)
        swu = self.sums(ww * self.u)
        empty = sw <= 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            acc_w = np.where(empty, self.acc, swu / np.where(empty, 1.0, sw))
        return PromptStats(self.acc, acc_w, empty, int((ww > 0).sum()), int(self.u.size),
                           self.ungraded)


@functools.lru_cache(maxsize=2)
def draw_counts(n_prompts: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of P prompts is drawn in each resample: a (resamples x P) float matrix.

    ``default_rng(seed).integers(0, P, size=(resamples, P))`` gives the draws; the same
    arguments give the same matrix (it is cached, read-only, in memory and, for large ones,
    in the group cache of the store last opened: ``groupcache.load_counts``).
    """
    counts = groupcache.load_counts(n_prompts, resamples, seed)
    if counts is None:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n_prompts, size=(resamples, n_prompts))
        idx += (np.arange(resamples, dtype=np.int64) * n_prompts)[:, None]  # row b: b*P + i
        counts = np.bincount(idx.ravel(), minlength=resamples * n_prompts).reshape(
            resamples, n_prompts).astype(np.float64)
        groupcache.save_counts(n_prompts, resamples, seed, counts)
    counts.setflags(write=False)
    return counts


class Bootstrap:
    """Seeded percentile bootstrap over P prompts (see the module doc)."""

    def __init__(self, n_prompts: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 level: float = DEFAULT_LEVEL) -> None:
        if resamples < 0:
            raise GvstoreError(f"resamples must be >= 0, got {resamples}")
        if not 0.0 < level < 1.0:
            raise GvstoreError(f"the interval level must be in (0, 1), got {level}")
        self.n = n_prompts
        self.resamples = resamples
        self.level = level
        self.counts = (draw_counts(n_prompts, resamples, seed) if n_prompts and resamples
                       else np.zeros((resamples, n_prompts)))

    def means(self, values: np.ndarray) -> np.ndarray:
        """The resampled means of each column of ``values`` (P x k): (resamples x k)."""
        return self.counts @ values / self.n

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper percentile bounds of the mean of each column of ``values`` (P x k)."""
        if self.resamples == 0 or self.n == 0:
            nan = np.full(values.shape[1:], np.nan)
            return nan, nan
        a = (1.0 - self.level) / 2.0
        lo, hi = np.percentile(self.means(values), [100 * a, 100 * (1 - a)], axis=0)
        return lo, hi


def verdict(lo: float, hi: float, prompts: int | None = None) -> str:
    """The verdict of a gap interval (``verdicts.verdict`` with the default band)."""
    return verdicts.verdict(lo, hi, prompts=prompts)


class AsDict:
    """A result dataclass that gives itself as a plain dict (``to_dict``, in field order)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(cast(Any, self))


@dataclass
class GapResult(AsDict):
    """One row of a gap table."""

    task: str
    generator: str
    round: int
    verifier: str
    spec: str
    utility: str
    prompts: int
    generations: int
    ungraded: int
    kept: int
    empty_prompts: int
    perfect_prompts: int
    base: float
    base_lo: float
    base_hi: float
    """mean_x acc(x), and its bootstrap interval (``_lo``, ``_hi``)."""
    reweighted: float
    reweighted_lo: float
    reweighted_hi: float
    """mean_x acc_w(x), and its interval."""
    gap: float
    gap_lo: float
    gap_hi: float
    """mean_x (acc_w(x) - acc(x)), and its interval."""
    rel_gap: float
    rel_gap_lo: float
    rel_gap_hi: float
    """mean_x r(x), and its interval."""
    verdict: str
    """From the gap's interval (``verdict``); ``unknown`` without a bootstrap."""
    prompts_to_decide: int | None
    """For an ``inconclusive`` verdict: about how many prompts would decide it
    (``verdicts.prompts_to_decide``); None otherwise."""
    resamples: int
    seed: int
    level: float


def summarise(
    group: Group, spec: str, utility: str, st: PromptStats, boot: Bootstrap, seed: int
) -> GapResult:
    """The gap row of one group from its per-prompt numbers."""
    cols = np.column_stack([st.acc, st.acc_w, st.diff, st.rel])
    mean = cols.mean(axis=0)
    lo, hi = boot.interval(cols)
    word = (verdict(float(lo[2]), float(hi[2]), int(st.acc.size)) if boot.resamples
            else verdicts.UNKNOWN)
    return GapResult(
        task=group.task, generator=group.generator, round=group.round,
        verifier=group.verifier, spec=spec, utility=utility, prompts=int(st.acc.size),
        generations=st.graded, ungraded=st.ungraded, kept=st.kept,
        empty_prompts=int(st.empty.sum()), perfect_prompts=int(st.perfect.sum()),
        base=float(mean[0]), base_lo=float(lo[0]), base_hi=float(hi[0]),
        reweighted=float(mean[1]), reweighted_lo=float(lo[1]), reweighted_hi=float(hi[1]),
        gap=float(mean[2]), gap_lo=float(lo[2]), gap_hi=float(hi[2]),
        rel_gap=float(mean[3]), rel_gap_lo=float(lo[3]), rel_gap_hi=float(hi[3]),
        verdict=word, prompts_to_decide=(
            verdicts.prompts_to_decide(st.diff, boot.level)
            if word == verdicts.INCONCLUSIVE else None),
        resamples=boot.resamples, seed=seed, level=boot.level,
    )


def gap_table(
    ds: Dataset,
    specs: Sequence[Spec],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[GapResult]:
    """One row per (task, generator, round, verifier) group and spec.

    Groups with no graded generation are left out.
    """
    out: list[GapResult] = []
    boots: dict[int, Bootstrap] = {}
    for spec in specs:
        for g in ds.groups(methods_of(spec)):
            graded = Graded(g)
            if graded.n_prompts == 0:
                continue
            st = graded.stats(Weigher(g).weights(spec))
            boot = boots.get(graded.n_prompts)
            if boot is None:
                boot = boots[graded.n_prompts] = Bootstrap(graded.n_prompts, resamples, seed,
                                                           level)
            out.append(summarise(g, str(spec), ds.utility or "strict", st, boot, seed))
    return out
