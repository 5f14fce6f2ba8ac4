"""Scaling with n offline: what pass@n', best-of-n', maj@n', weighted maj@n' and a filter's
gap would have been with n' of the n recorded samples per prompt, and best-of-n, weighted
maj@n and the gap with m' of the m recorded verification repeats (``docs/metrics.md``,
"Scaling with n offline"). Choices follow ``choice.py`` (same tie keys, nulls last, graded
samples only).

* n' runs over 1, 2, 4, ... below the group's largest n, and that n. A prompt with fewer than
  n' graded samples has no value at n' (left out, counted in ``excluded``).
* **pass@n'**: the unbiased estimator (``passk.pass_at_k_matrix``), exact.
* **best-of-n'**, exact: rank the prompt's n samples by the strict total order of
  ``choice.rank_order`` (score, nulls last, tie key); the sample at position j (0 = best, so
  n - 1 - j samples rank below it) is the best of a uniformly random n'-subset with
  probability C(n - 1 - j, n' - 1) / C(n, n'), so E = sum_j u_(j) C(n-1-j, n'-1) / C(n, n').
* **maj@n', weighted maj@n', filter gap at n'**: the mean over n'-subsets of the prompt's
  samples, each subset treated as the whole prompt (the filter's weights are recomputed on
  it). Where C(n, n') <= ``subsets`` every subset is enumerated (exact); otherwise
  ``subsets`` subsets are drawn per prompt, independently, uniformly without replacement,
  from ``default_rng((seed, 1))``.
* **repeats m'** (n = all samples): m' runs over 1, 2, 4, ... below the largest number m of
  verifications of one generation by the group's verifier and method, and m; a score is the
  mean of the non-null scores of m' of its repeats drawn without replacement (all of them
  where it has fewer), ``subsets`` draws from ``default_rng((seed, 2))`` (one where no
  generation has more than m' repeats), each draw scoring every generation afresh.
* **tokens** at n' = n' x the mean ``n_tokens`` of the group's graded generations.

Intervals: the percentile bootstrap over the prompts of each point (``gap.Bootstrap``) of the
per-prompt expectations; the subset sampling's own noise is inside those per-prompt values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.analysis.arrays import lookup, mean_scores
from gvstore.analysis.choice import (
    Chooser,
    ScoreSpec,
    answer_codes,
    group_score,
    parse_score,
    rank_order,
    score_name,
    vote_weights,
)
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import AsDict, Bootstrap, Graded
from gvstore.analysis.passk import pass_at_k_matrix
from gvstore.analysis.specs import Spec, methods_of
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError

DEFAULT_SUBSETS = 64
SUBSET_COLUMNS = ("maj", "wmaj", "filter_gap")


def budgets(top: int) -> list[int]:
    """1, 2, 4, ... below ``top``, then ``top`` (empty for top < 1)."""
    out = [1 << i for i in range(max(top, 1).bit_length()) if 1 << i < top]
    return [*out, top] if top >= 1 else []


def best_of_probabilities(n: int, k: int) -> np.ndarray:
    """P(the sample at position j of n, best first, is the best of a random k-subset):
    C(n - 1 - j, k - 1) / C(n, k) for j = 0..n-1 (a running product, no large binomials)."""
    j = np.arange(n - 1, dtype=np.float64)
    factors = np.maximum(n - k - j, 0.0) / (n - 1 - j)
    return (k / n) * np.concatenate(([1.0], np.cumprod(factors)))


def expected_best_of(ch: Chooser, score: np.ndarray, k: int) -> np.ndarray:
    """Per prompt: E[utility of the best of a random k-subset] (NaN where n < k)."""
    order = rank_order(ch.pidx, score, ch.key)
    p = ch.pidx[order]
    pos = np.arange(p.size) - ch.starts[p]
    prob = np.zeros(p.size)
    n = ch.n
    for nv in np.unique(n[n >= k]):
        rows = n[p] == nv
        prob[rows] = best_of_probabilities(int(nv), k)[pos[rows]]
    out = np.bincount(p, prob * ch.u[order], minlength=n.size)
    return np.where(n >= k, out, np.nan)


def sub_group(g: Group, rows: np.ndarray) -> Group:
    """The group restricted to ``rows`` (sorted indices of its rows), prompts renumbered."""
    prompt = g.prompt[rows]
    new = np.ones(prompt.size, dtype=bool)
    new[1:] = prompt[1:] != prompt[:-1]
    gen = g.gen[rows]
    return Group(g.task, g.generator, g.round, g.verifier, gen=gen, prompt=prompt,
                 sample_index=g.sample_index[rows], utility=g.utility[rows],
                 pidx=(np.cumsum(new) - 1).astype(np.int64), prompts=prompt[new],
                 starts=np.append(np.flatnonzero(new), prompt.size),
                 gen_order=np.argsort(gen), scores={m: s[rows] for m, s in g.scores.items()})


@dataclass
class Subsets:
    """Per prompt sums of the subset metrics (maj, wmaj, filter gap) and subset counts."""

    sums: np.ndarray
    count: np.ndarray
    exact: bool = True

    def add(self, prompts: np.ndarray, values: np.ndarray) -> None:
        self.sums[prompts] += values
        self.count[prompts] += 1


def _positions(nv: int, k: int, n_prompts: int, subsets: int,
               rng: np.random.Generator) -> tuple[list[np.ndarray], bool]:
    """Per subset: a (prompts x k) array of positions within each prompt (sorted); all
    C(nv, k) subsets (the same for every prompt) if that is at most ``subsets``."""
    if math.comb(nv, k) <= subsets:
        from itertools import combinations

        return [np.broadcast_to(np.array(c), (n_prompts, k))
                for c in combinations(range(nv), k)], True
    return [np.sort(rng.random((n_prompts, nv)).argsort(axis=1)[:, :k], axis=1)
            for _ in range(subsets)], False


def subset_metrics(ch: Chooser, score: np.ndarray, filt: Spec | None, k: int,
                   subsets: int, rng: np.random.Generator) -> Subsets:
    """maj@k, weighted maj@k and the filter gap at k, averaged over k-subsets per prompt."""
    g, n, p_all = ch.group, ch.n, ch.graded.n_prompts
    acc = Subsets(np.zeros((p_all, 3)), np.zeros(p_all))
    weight = vote_weights(score)
    for nv in np.unique(n[n >= k]):
        prompts = np.flatnonzero(n == nv)
        sets, exact = _positions(int(nv), k, prompts.size, subsets, rng)
        acc.exact &= exact
        for pos in sets:
            sub = (ch.starts[prompts][:, None] + pos).ravel()  # graded rows, prompt order
            vals = np.zeros((prompts.size, 3))
            for j, w in enumerate((None, weight)):
                vals[:, j] = ch.ballot.tally(ch.u, ch.key, w, sub)[prompts]
            if filt is not None:
                sg = sub_group(g, ch.rows[sub])
                vals[:, 2] = Graded(sg).stats(Weigher(sg).weights(filt)).diff
            acc.add(prompts, vals)
    return acc


@dataclass
class Repeats:
    """The verifications of one method on a group's rows by its verifier, sorted by row."""

    rows: np.ndarray
    score: np.ndarray
    first: np.ndarray
    """Per verification: the index of its row's first verification."""
    size: int | None
    """The number of verifications per verified row, if the same for all."""
    most: int

    @classmethod
    def of(cls, ds: Dataset, g: Group, method: str) -> Repeats:
        gens, score = ds.verifications(method).get(g.verifier, (np.zeros(0, np.uint64),
                                                                  np.zeros(0)))
        src, rows = lookup(g.gen, gens, g.gen_order)
        order = np.argsort(rows, kind="stable")
        r = rows[order]
        head = np.ones(r.size, dtype=bool)
        head[1:] = r[1:] != r[:-1]
        counts = np.diff(np.append(np.flatnonzero(head), r.size))
        same = bool(counts.size) and bool((counts == counts[0]).all())
        return cls(r, score[src][order], np.maximum.accumulate(
            np.where(head, np.arange(r.size), 0)), int(counts[0]) if same else None,
            int(counts.max()) if counts.size else 0)

    def draw(self, n_rows: int, m: int, rng: np.random.Generator) -> np.ndarray:
        """Per row: the mean of the non-null scores of m of its verifications drawn without
        replacement (all of them where it has at most m; NaN where none is non-null)."""
        if m >= self.most:
            idx = np.arange(self.rows.size)
        elif self.size is not None:
            runs = self.rows.size // self.size
            pick = rng.random((runs, self.size)).argsort(axis=1)[:, :m]
            idx = (np.arange(runs)[:, None] * self.size + pick).ravel()
        else:
            order = np.lexsort((rng.random(self.rows.size), self.rows))
            idx = order[np.arange(self.rows.size) - self.first < m]
        return mean_scores(n_rows, self.rows[idx], self.score[idx])


@dataclass
class NPoint(AsDict):
    """One n' of a scaling curve (``_lo``/``_hi``: bootstrap interval; None: not computed)."""

    n: int
    tokens: float
    prompts: int
    excluded: int
    exact: bool
    """Whether maj, weighted maj and the filter gap enumerated every subset."""
    pass_at_n: float
    pass_at_n_lo: float
    pass_at_n_hi: float
    best_of_n: float
    best_of_n_lo: float
    best_of_n_hi: float
    maj: float
    maj_lo: float
    maj_hi: float
    wmaj: float
    wmaj_lo: float
    wmaj_hi: float
    filter_gap: float | None
    filter_gap_lo: float | None
    filter_gap_hi: float | None
    best_of_n_kept: float | None = None
    """(best-of-n' - best-of-1) / (best-of-n - best-of-1): the share of the full budget's
    best-of gain over a random sample kept at n' (None where that gain is 0)."""
    filter_gap_kept: float | None = None
    """filter gap at n' / filter gap at n (None without a filter or where the latter is 0)."""


def kept_shares(points: Sequence[NPoint]) -> None:
    """Fill in each point's ``best_of_n_kept`` and ``filter_gap_kept`` (see there)."""
    first, last = points[0], points[-1]
    gain = last.best_of_n - first.best_of_n
    for p in points:
        p.best_of_n_kept = (p.best_of_n - first.best_of_n) / gain if abs(gain) > 1e-12 \
            else None
        if p.filter_gap is not None and last.filter_gap is not None \
                and abs(last.filter_gap) > 1e-12:
            p.filter_gap_kept = p.filter_gap / last.filter_gap


@dataclass
class MPoint(AsDict):
    """One m' (verification repeats averaged), with all n samples."""

    m: int
    draws: int
    best_of_n: float
    best_of_n_lo: float
    best_of_n_hi: float
    wmaj: float
    wmaj_lo: float
    wmaj_hi: float
    filter_gap: float | None
    filter_gap_lo: float | None
    filter_gap_hi: float | None


@dataclass
class NScaleResult(AsDict):
    """The n' and m' curves of one group and score spec."""

    task: str
    generator: str
    round: int
    verifier: str
    score: str
    filter: str | None
    utility: str
    prompts: int
    n_max: int
    m_max: int
    mean_tokens: float
    subsets: int
    seed: int
    resamples: int
    level: float
    points: list[NPoint] = field(default_factory=list)
    repeats: list[MPoint] = field(default_factory=list)


def _summary(names: Sequence[str], cols: np.ndarray, boot: Bootstrap,
             skip: Sequence[str] = ()) -> dict[str, float | None]:
    mean = cols.mean(axis=0) if cols.shape[0] else np.full(cols.shape[1], np.nan)
    lo, hi = boot.interval(cols)
    out: dict[str, float | None] = {}
    for j, name in enumerate(names):
        none = name in skip
        out[name] = None if none else float(mean[j])
        out[f"{name}_lo"] = None if none else float(lo[j])
        out[f"{name}_hi"] = None if none else float(hi[j])
    return out


def n_points(ch: Chooser, score: np.ndarray, filt: Spec | None, tokens: float,
             args: tuple[int, int, int, float]) -> list[NPoint]:
    """The n' curve of one group (``args``: subsets, resamples, seed, level)."""
    subsets, resamples, seed, level = args
    rng = np.random.default_rng((seed, 1))
    n = ch.n
    ks = budgets(int(n.max()))
    passes = pass_at_k_matrix(n, ch.correct, ks)
    out = []
    for j, k in enumerate(ks):
        inc = n >= k
        sub = subset_metrics(ch, score, filt, k, subsets, rng)
        means = sub.sums[inc] / sub.count[inc][:, None]
        cols = np.column_stack([passes[inc, j], expected_best_of(ch, score, k)[inc], means])
        boot = Bootstrap(int(inc.sum()), resamples, seed, level)
        vals = _summary(("pass_at_n", "best_of_n", *SUBSET_COLUMNS), cols, boot,
                        () if filt is not None else ("filter_gap",))
        out.append(NPoint(n=k, tokens=k * tokens, prompts=int(inc.sum()),
                          excluded=int((~inc).sum()), exact=sub.exact,
                          **vals))  # type: ignore[arg-type]
    kept_shares(out)
    return out


def m_points(ds: Dataset, ch: Chooser, spec: ScoreSpec, filt: Spec | None,
             args: tuple[int, int, int, float]) -> tuple[int, list[MPoint]]:
    """The m' curve of one group: (m, points)."""
    subsets, resamples, seed, level = args
    g = ch.group
    methods = sorted({*methods_of(spec), *(methods_of(filt) if filt is not None else ())})
    reps = {method: Repeats.of(ds, g, method) for method in methods}
    m_max = max((r.most for r in reps.values()), default=0)
    rng = np.random.default_rng((seed, 2))
    boot = Bootstrap(ch.graded.n_prompts, resamples, seed, level)
    out = []
    for m in budgets(m_max):
        draws = 1 if m >= m_max else subsets
        total = np.zeros((ch.graded.n_prompts, 3))
        for _ in range(draws):
            g2 = replace(g, scores={**g.scores, **{
                method: r.draw(g.gen.size, m, rng) for method, r in reps.items()}})
            s = group_score(g2, spec)[ch.rows]
            total[:, 0] += ch.best_of(s)
            total[:, 1] += ch.ballot.tally(ch.u, ch.key, vote_weights(s))
            if filt is not None:
                total[:, 2] += ch.graded.stats(Weigher(g2).weights(filt)).diff
        vals = _summary(("best_of_n", "wmaj", "filter_gap"), total / draws, boot,
                        () if filt is not None else ("filter_gap",))
        out.append(MPoint(m=m, draws=draws, **vals))  # type: ignore[arg-type]
    return m_max, out


def nscale_table(
    ds: Dataset,
    scores: Sequence[str],
    *,
    subsets: int = DEFAULT_SUBSETS,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[NScaleResult]:
    """The n' and m' curves of each score spec, per group.

    Call: ``nscale_table(Dataset(proj, utility="strict", filters=Filters()), ["mc",
    "mc:quantile=0.8"], subsets=64, resamples=1000, seed=0, level=0.95)``; each result's
    ``points`` (``NPoint``: n, tokens, pass_at_n, best_of_n, maj, wmaj, filter_gap, each with
    ``_lo``/``_hi``) and ``repeats`` (``MPoint``); ``r.to_dict()`` gives plain dicts and
    ``choice_plots.nscale_figure(results, path)`` draws them. A score with a rule also gives
    the filter gap. ``tournament`` is refused (a subset's bracket was never played).
    """
    if ds.utility is None:
        raise GvstoreError("scaling with n needs ground truth: a utility (strict or flexible)")
    if subsets < 1:
        raise GvstoreError(f"subsets must be >= 1, got {subsets}")
    parsed = [parse_score(s) for s in scores]
    for spec, filt in parsed:
        if "tournament" in {*methods_of(spec), *(methods_of(filt) if filt else ())}:
            raise GvstoreError("nscale does not take tournament: the bracket of a subset of "
                               "samples was never played")
    answers = answer_codes(ds)
    tokens = _tokens(ds)
    args = (subsets, resamples, seed, level)
    out: list[NScaleResult] = []
    for spec, filt in parsed:
        methods = sorted({*methods_of(spec), *(methods_of(filt) if filt else ())})
        for g in ds.groups(methods):
            ch = Chooser.of(g, answers, seed)
            if ch.graded.n_prompts == 0:
                continue
            src, _ = lookup(g.gen[ch.rows], tokens[0])
            mean_tokens = float(tokens[1][src].mean()) if src.size else 0.0
            score = group_score(g, spec)[ch.rows]
            m_max, reps = m_points(ds, ch, spec, filt, args)
            out.append(NScaleResult(
                task=g.task, generator=g.generator, round=g.round, verifier=g.verifier,
                score=score_name(spec), filter=None if filt is None else str(filt),
                utility=ds.utility, prompts=ch.graded.n_prompts, n_max=int(ch.n.max()),
                m_max=m_max, mean_tokens=mean_tokens, subsets=subsets, seed=seed,
                resamples=resamples, level=level,
                points=n_points(ch, score, filt, mean_tokens, args), repeats=reps))
    return out


def _tokens(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    gens = ds.filters.generations(ds.proj.generations)
    return gens["gen"].to_numpy(), gens["n_tokens"].to_numpy().astype(np.float64)
