"""Selection, not only filtering: best-of-n, majority vote (maj@n) and verifier-weighted
majority vote, next to pass@n (the oracle) and the filter gap (``docs/metrics.md``,
"Selection").

Per (task, generator, round, verifier) group, over the **graded** samples of each prompt
(ungraded samples are left out before anything is chosen, as if never generated, and counted):

* **tie keys**: ``np.random.default_rng(seed).permutation(N)`` over the group's N graded rows
  in canonical order (prompt, sample index, generation): within a prompt, a uniformly random
  order of its samples. Every tie below goes to the lowest key.
* **best-of-n**: the sample with the highest score (``mc``, ``mean(mc,cot_score)``, or
  ``tournament``: the number of recorded bracket rounds a sample survived, so the bracket's
  champion ranks first); ties to the lowest key; a null score ranks below every score, so it
  is chosen only where all are null (then the lowest key: a seeded random sample). Accuracy:
  the chosen sample's utility.
* **maj@n**: each sample with an extracted answer (the newest grade's ``extracted``,
  whitespace stripped; null or empty: no vote) votes for it; the answer with most votes wins,
  ties to the answer holding the lowest key. Accuracy: the mean utility of the samples
  carrying the winning answer (they normally agree); a prompt with no answer scores 0.
* **weighted maj@n**: as maj@n, an answer's votes being the sum of its samples' weights
  w_i = s_i - min(0, lowest non-null score of the group) (scores >= 0, such as ``mc``'s
  P(Correct), are used as they are; null scores weigh 0). Ties (all weights 0 included) go to
  the plain vote count, then to the lowest key.
* **pass@n**: 1 if any sample is correct (utility 1): the unbiased pass@k at k = n
  (``passk.pass_at_k_matrix``).
* **selection gap** of a method = pass@n - its accuracy; **base** = mean utility (a random
  sample). A score spec with a rule (``mc:quantile=0.8``) also gives its filter gap (``gap.py``).

Every figure is a mean over prompts with a percentile bootstrap interval (``gap.Bootstrap``,
the same draws for every column).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.analysis.arrays import lookup
from gvstore.analysis.frames import Dataset, Group, newest_grades
from gvstore.analysis.gap import AsDict, Bootstrap, Graded
from gvstore.analysis.passk import pass_at_k_matrix
from gvstore.analysis.specs import (
    Leaf,
    Mean,
    Rule,
    Spec,
    SpecError,
    methods_of,
    parse,
    parse_template,
)
from gvstore.analysis.weights import Weigher, recorded_rounds
from gvstore.errors import GvstoreError
from gvstore.verifiers.registry import get_method, is_method

ScoreSpec = Leaf | Mean
COLUMNS = ("base", "pass_at_n", "best_of_n", "maj", "wmaj")


def parse_score(text: str) -> tuple[ScoreSpec, Spec | None]:
    """A score spec (``mc``, ``mean(mc,cot_score)``, ``tournament``, or one with a rule such
    as ``mc:quantile=0.8``) as (the score it ranks by, the filter spec or None without a
    value)."""
    t = text.strip()
    filt: Spec | None = None
    if ":" not in t:
        name = t.split("(")[0].strip()
        open_rule = "rounds" if is_method(name) and get_method(name).call == "pairwise" else "tau"
        spec: object = parse_template(f"{t}:{open_rule}")
    else:
        try:
            spec = filt = parse(t)
        except SpecError:
            spec = parse_template(t)  # an open rule (mc:quantile): no filter
    if not isinstance(spec, (Leaf, Mean)):
        raise GvstoreError(f"{t!r}: a selection ranks by one score; give a method (mc) or "
                           "mean(...), not and(...)/or(...)")
    return spec, filt


def score_name(spec: ScoreSpec) -> str:
    """The score's text without its rule: ``mc``, ``mean(mc,cot_score)``."""
    return spec.method if isinstance(spec, Leaf) else f"mean({','.join(spec.methods)})"


def answer_codes(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(generation handles, answer codes) of the dataset's newest grades: equal codes, equal
    extracted answers (whitespace stripped); -1 where the answer is null or empty.

    The grades are those ``Dataset`` reads (same filters, ``frames.newest_grades`` rule)."""
    grades = ds.proj.grades
    if ds.filters.restricts_generations:
        gens = ds.filters.generations(ds.proj.generations).select("gen")
        grades = grades.join(gens, on="gen", how="semi")
    grades = newest_grades(grades, ds.grader)
    ans = grades["extracted"].str.strip_chars()
    ans = pl.select(pl.when(ans.str.len_chars() > 0).then(ans)).to_series()
    codes = ans.rank("dense").fill_null(0).to_numpy().astype(np.int64) - 1
    return grades["gen"].to_numpy(), codes


def tie_keys(n_rows: int, seed: int) -> np.ndarray:
    """The tie keys of a group's ``n_rows`` graded rows (see the module doc)."""
    return np.random.default_rng(seed).permutation(n_rows)


def tournament_score(g: Group) -> np.ndarray:
    """Per row: how many recorded bracket rounds the sample survived (R for one that lost no
    match); NaN in a prompt where the group played no match."""
    r = recorded_rounds(g.comparisons)
    w = Weigher(g)
    played = w.tournament(Rule("rounds", 0.0), False)
    total = np.zeros(g.gen.size)
    for k in range(1, r + 1):
        total += w.tournament(Rule("rounds", float(k)), False)
    return np.where(played > 0, total, np.nan)


def group_score(g: Group, spec: ScoreSpec) -> np.ndarray:
    """Per row of ``g``: the score ``spec`` ranks by (NaN: null)."""
    if isinstance(spec, Leaf) and spec.method == "tournament":
        return tournament_score(g)
    return Weigher(g).score(spec)


def rank_order(pidx: np.ndarray, score: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rows sorted by prompt, then score (highest first, nulls last), then tie key: the strict
    total order of every choice. With rows grouped by prompt, the first row of each prompt's
    run is its best-of-n."""
    return np.lexsort((key, np.where(np.isnan(score), np.inf, -score), pidx))


def vote_weights(score: np.ndarray) -> np.ndarray:
    """w_i = s_i - min(0, lowest non-null score); 0 for a null score."""
    ok = ~np.isnan(score)
    low = min(0.0, float(score[ok].min())) if ok.any() else 0.0
    return np.where(ok, score - low, 0.0)


class Ballot:
    """The (prompt, answer) pairs of a group's graded rows, found once; ``tally`` then runs
    maj@n or weighted maj@n on any subset of the rows (module doc for the rules)."""

    def __init__(self, pidx: np.ndarray, codes: np.ndarray, n_prompts: int) -> None:
        ok = codes >= 0
        width = int(codes.max()) + 1 if ok.any() else 1
        pairs, inv = np.unique(pidx[ok].astype(np.int64) * width + codes[ok],
                               return_inverse=True)
        self.pair = np.full(pidx.size, -1, dtype=np.int64)
        self.pair[ok] = inv.reshape(-1)
        self.pair_prompt = pairs // width  # ascending: pairs sort by prompt first
        new = np.ones(pairs.size, dtype=bool)
        new[1:] = self.pair_prompt[1:] != self.pair_prompt[:-1]
        self.seg = np.flatnonzero(new)
        self.seg_of = np.cumsum(new) - 1
        self.n_prompts = n_prompts

    def tally(self, u: np.ndarray, key: np.ndarray, weight: np.ndarray | None,
              rows: np.ndarray | None = None) -> np.ndarray:
        """Per prompt: the mean utility of the samples carrying the winning answer among
        ``rows`` (all rows if None); 0 where none has an answer. ``weight`` None: maj@n."""
        acc = np.zeros(self.n_prompts)
        size = self.pair_prompt.size
        if size == 0:
            return acc
        rows = np.flatnonzero(self.pair >= 0) if rows is None else rows[self.pair[rows] >= 0]
        pr = self.pair[rows]
        votes = np.bincount(pr, minlength=size).astype(np.float64)
        wv = votes if weight is None else np.bincount(pr, weight[rows], minlength=size)
        low = np.full(size, np.iinfo(np.int64).max)
        np.minimum.at(low, pr, key[rows])
        cand = votes > 0
        for crit in (wv, votes, -low.astype(np.float64)):  # lexicographic, per prompt
            c = np.where(cand, crit, -np.inf)
            cand &= c == np.maximum.reduceat(c, self.seg)[self.seg_of]
        acc[self.pair_prompt[cand]] = np.bincount(pr, u[rows], minlength=size)[cand] \
            / votes[cand]
        return acc


def pass_at_n(n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per prompt: pass@k at k = its own n (``passk.pass_at_k_matrix``)."""
    out = np.empty(n.size)
    for nv in np.unique(n):
        rows = np.flatnonzero(n == nv)
        out[rows] = pass_at_k_matrix(n[rows], c[rows], [int(nv)])[:, 0]
    return out


@dataclass
class Chooser:
    """The graded rows of one group with what every choice reads (prompt-grouped order)."""

    group: Group
    graded: Graded
    rows: np.ndarray
    """Indices of the graded rows into the group's rows."""
    pidx: np.ndarray
    u: np.ndarray
    codes: np.ndarray
    key: np.ndarray
    starts: np.ndarray
    ballot: Ballot
    by_key: np.ndarray
    """``argsort(key)``: the row holding each key."""

    @classmethod
    def of(cls, g: Group, answers: tuple[np.ndarray, np.ndarray], seed: int) -> Chooser:
        graded = Graded(g)
        rows = np.flatnonzero(graded.mask)
        codes = np.full(g.gen.size, -1, dtype=np.int64)
        src, at = lookup(g.gen, answers[0], g.gen_order)
        codes[at] = answers[1][src]
        starts = np.concatenate(([0], np.cumsum(graded.n).astype(np.int64)))
        key = tie_keys(rows.size, seed)
        return cls(g, graded, rows, graded.pidx, graded.u, codes[rows], key, starts,
                   Ballot(graded.pidx, codes[rows], graded.n_prompts), np.argsort(key))

    @property
    def n(self) -> np.ndarray:
        return self.graded.n.astype(np.int64)

    @property
    def correct(self) -> np.ndarray:
        return np.bincount(self.pidx, self.u >= 1.0, minlength=self.graded.n_prompts) \
            .astype(np.int64)

    def best_of(self, score: np.ndarray) -> np.ndarray:
        """Per prompt: the utility of its best-of-n (``score`` over the graded rows): the
        first row of ``rank_order``, found without sorting (highest score, then lowest key)."""
        s = np.where(np.isnan(score), -np.inf, score)
        top = np.maximum.reduceat(s, self.starts[:-1])
        k = np.where(s == top[self.pidx], self.key, self.key.size)
        best = np.minimum.reduceat(k, self.starts[:-1])
        return self.u[self.by_key[best]]

    def tied_top(self, score: np.ndarray) -> int:
        """Prompts whose highest score is shared by two or more samples."""
        order = rank_order(self.pidx, score, self.key)
        s = score[order]
        two = self.n >= 2
        first, second = s[self.starts[:-1][two]], s[self.starts[:-1][two] + 1]
        return int(np.sum(first == second))

    def columns(self, score: np.ndarray) -> np.ndarray:
        """Per prompt (P x 5): base, pass@n, best-of-n, maj@n, weighted maj@n."""
        return np.column_stack([
            self.graded.acc, pass_at_n(self.n, self.correct), self.best_of(score),
            self.ballot.tally(self.u, self.key, None),
            self.ballot.tally(self.u, self.key, vote_weights(score))])


@dataclass
class SelectResult(AsDict):
    """One row of a selection table (``_lo``/``_hi``: its bootstrap interval)."""

    task: str
    generator: str
    round: int
    verifier: str
    score: str
    filter: str | None
    utility: str
    prompts: int
    generations: int
    ungraded: int
    n_min: int
    n_max: int
    answered_prompts: int
    null_score_prompts: int
    tied_top_prompts: int
    base: float
    base_lo: float
    base_hi: float
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
    best_of_n_gap: float
    best_of_n_gap_lo: float
    best_of_n_gap_hi: float
    maj_gap: float
    maj_gap_lo: float
    maj_gap_hi: float
    wmaj_gap: float
    wmaj_gap_lo: float
    wmaj_gap_hi: float
    filter_reweighted: float | None
    filter_gap: float | None
    filter_gap_lo: float | None
    filter_gap_hi: float | None
    resamples: int
    seed: int
    level: float


def _with_ci(name: str, values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             j: int) -> dict[str, float]:
    return {name: float(values[j]), f"{name}_lo": float(lo[j]), f"{name}_hi": float(hi[j])}


def select_group(g: Group, ch: Chooser, score_spec: ScoreSpec, filt: Spec | None,
                 utility: str, boot: Bootstrap, seed: int) -> SelectResult:
    """The selection row of one group (``ch``: its ``Chooser``)."""
    score = group_score(g, score_spec)[ch.rows]
    cols = ch.columns(score)
    cols = np.column_stack([cols, cols[:, 1:2] - cols[:, 2:5]])
    if filt is not None:
        st = ch.graded.stats(Weigher(g).weights(filt))
        cols = np.column_stack([cols, st.acc_w, st.diff])
    mean = cols.mean(axis=0)
    lo, hi = boot.interval(cols)
    names = [*COLUMNS, "best_of_n_gap", "maj_gap", "wmaj_gap"]
    vals: dict[str, float] = {}
    for j, name in enumerate(names):
        vals.update(_with_ci(name, mean, lo, hi, j))
    null = ~np.isnan(score)
    has_score = np.bincount(ch.pidx, null, minlength=ch.graded.n_prompts) > 0
    return SelectResult(
        task=g.task, generator=g.generator, round=g.round, verifier=g.verifier,
        score=score_name(score_spec), filter=None if filt is None else str(filt),
        utility=utility, prompts=ch.graded.n_prompts, generations=int(ch.rows.size),
        ungraded=ch.graded.ungraded, n_min=int(ch.n.min()), n_max=int(ch.n.max()),
        answered_prompts=int((np.bincount(ch.pidx, ch.codes >= 0,
                                          minlength=ch.graded.n_prompts) > 0).sum()),
        null_score_prompts=int((~has_score).sum()), tied_top_prompts=ch.tied_top(score),
        **vals,
        filter_reweighted=None if filt is None else float(mean[8]),
        filter_gap=None if filt is None else float(mean[9]),
        filter_gap_lo=None if filt is None else float(lo[9]),
        filter_gap_hi=None if filt is None else float(hi[9]),
        resamples=boot.resamples, seed=seed, level=boot.level)


def selection_table(
    ds: Dataset,
    scores: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[SelectResult]:
    """Best-of-n, maj@n, weighted maj@n and pass@n of each score spec, per group.

    Call: ``selection_table(Dataset(proj, utility="strict", filters=Filters()), ["mc",
    "mc:quantile=0.8"], resamples=1000, seed=0, level=0.95)``; ``[r.to_dict() for r in
    rows]`` gives plain dicts. ``seed`` seeds the tie keys and the bootstrap. Groups with no
    graded generation are left out. ``ds.utility`` must not be None (selection needs grades).
    """
    if ds.utility is None:
        raise GvstoreError("selection needs ground truth: a utility (strict or flexible)")
    parsed = [parse_score(s) for s in scores]
    answers = answer_codes(ds)
    out: list[SelectResult] = []
    for score_spec, filt in parsed:
        methods = sorted({*methods_of(score_spec), *(methods_of(filt) if filt else ())})
        for g in ds.groups(methods):
            ch = Chooser.of(g, answers, seed)
            if ch.graded.n_prompts == 0:
                continue
            boot = Bootstrap(ch.graded.n_prompts, resamples, seed, level)
            out.append(select_group(g, ch, score_spec, filt, ds.utility, boot, seed))
    return out

