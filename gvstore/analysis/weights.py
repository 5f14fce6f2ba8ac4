"""From filter specs to per-generation weights (their ``Weight`` records: ``steps/weights.py``).

``Weigher(group).weights(spec)`` gives one weight per row of a ``Group`` (numpy, vectorised
over the whole group; per-prompt work uses sorted segments, never a Python loop per prompt):

* ``tau=T``: w = 1 if s >= T else 0 (ties at T kept).
* ``quantile=Q``: with m non-null scores in the prompt sorted ascending s_(0) <= ... <= s_(m-1),
  the linearly interpolated Q-quantile t lies between s_(floor(Q(m-1))) and s_(ceil(Q(m-1)));
  ``s_i >= t`` is the same as ``s_i >= s_(k)`` with k = ceil(Q(m-1)), which is what is
  computed (Q(m-1) is first rounded down by 1e-9 so that, say, 0.35 * 20 counts as 7, not as
  the 7.000000000000001 floating point gives). Ties at the threshold are kept.
* ``exp=BETA``: w = exp((s - max s in the prompt) / BETA): the distribution exp(s/BETA)
  normalises to, scaled per prompt so it cannot overflow.
* ``rounds=R`` (tournament): w = 1 for a generation that lost no match of bracket rounds
  0..R-1 (a bye advances; an undecided match advances side A), 0 for a loser.
* null scores (no parse, or no verification of that method by that verifier; for a tournament,
  every sample of a prompt with no recorded match) get w = 0, or w = 1 under ``nulls=keep``.
* ``mean(m1,m2,...)``: each method's scores are rank-normalised within the prompt,
  r = (average rank - 1) / (k - 1) over its k non-null scores (0.5 when k = 1; ties share
  their average rank), nulls excluded; the score is the mean of the non-null r over the
  methods (null if all are null); then the rule applies to it.
* ``learned(...)``: the model's cross-fitted P(correct) (``gvstore.analysis.learned``), then
  the rule.
* ``and(...)``: the product of the parts' weights; ``or(...)``: their maximum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gvstore.analysis.arrays import lookup
from gvstore.analysis.frames import Group
from gvstore.analysis.learned import fit_key, learned_scores
from gvstore.analysis.specs import Combine, Leaf, Learned, Mean, Rule, Spec
from gvstore.errors import GvstoreError

if TYPE_CHECKING:
    import polars as pl

EPS_RANK = 1e-9


class Sorted:
    """Per-prompt ascending order of one score array (nulls last), for quantiles and ranks."""

    def __init__(self, group: Group, s: np.ndarray) -> None:
        # ``arrays.PromptSort``: a group's own score arrays keep theirs (the group cache saves
        # them), so a warm call does not sort.
        self._sort = group.prompt_sort(s)
        self.group = group

    @property
    def order(self) -> np.ndarray:
        return self._sort.order

    @property
    def sorted(self) -> np.ndarray:
        return self._sort.sorted

    @property
    def count(self) -> np.ndarray:
        """Per prompt: how many non-null scores."""
        return self._sort.count

    def thresholds(self, q: float) -> np.ndarray:
        """Per prompt: s_(ceil(q (m-1))), NaN where a prompt has no score."""
        m = self.count
        top = np.maximum(m - 1, 0)
        k = np.minimum(np.ceil(q * top - EPS_RANK).clip(0, None).astype(np.int64), top)
        first = self.group.starts[:-1]
        thr = self.sorted[np.minimum(first + k, max(self.sorted.size - 1, 0))]
        return np.where(m > 0, thr, np.nan)

    def ranks(self) -> np.ndarray:
        """Per row: (average rank - 1) / (k - 1) among its prompt's k non-null scores (0.5 if
        k = 1; ties share their average rank); NaN for a null score (``arrays.PromptSort``;
        the group cache keeps a method's, so a warm ``mean(...)`` does not rank). A copy:
        the caller may change it."""
        return self._sort.ranks.copy()


def recorded_rounds(comps: pl.DataFrame | None) -> int:
    """How many bracket rounds the comparisons record (0 if none)."""
    import polars as pl

    if comps is None or comps.height == 0:
        return 0
    return int(comps["bracket_round"].cast(pl.Int64).max()) + 1  # type: ignore[arg-type]


class Weigher:
    """Weights of one group under any spec, caching what sweeps reuse."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self._scores: dict[str, np.ndarray] = {}
        self._sorted: dict[str, Sorted] = {}

    def score(self, spec: Leaf | Mean) -> np.ndarray:
        """The score array a leaf or mean spec reads (NaN = null)."""
        g = self.group
        if isinstance(spec, Learned):  # trained on the other folds' ground truth
            if fit_key(spec) not in self._scores:
                self._scores[fit_key(spec)] = learned_scores(self, spec)
            return self._scores[fit_key(spec)]
        if isinstance(spec, Leaf):
            if spec.method not in g.scores:
                raise GvstoreError(f"no {spec.method} scores loaded for {g.key}")
            return g.scores[spec.method]
        key = ",".join(spec.methods)
        if key not in self._scores:
            parts = np.stack([self.sorted(Leaf(m, spec.rule)).ranks() for m in spec.methods])
            have = ~np.isnan(parts)
            total = np.where(have, parts, 0.0).sum(axis=0)
            n = have.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                self._scores[key] = np.where(n > 0, total / n, np.nan)
        return self._scores[key]

    def sorted(self, spec: Leaf | Mean) -> Sorted:
        key = spec.method if isinstance(spec, Leaf) else "mean(" + ",".join(spec.methods)
        key = fit_key(spec) if isinstance(spec, Learned) else key
        if key not in self._sorted:
            self._sorted[key] = Sorted(self.group, self.score(spec))
        return self._sorted[key]

    def weights(self, spec: Spec) -> np.ndarray:
        """One weight >= 0 per row of the group."""
        if isinstance(spec, Combine):
            ws = [self.weights(p) for p in spec.parts]
            out = ws[0].copy()
            for w in ws[1:]:
                out = out * w if spec.op == "and" else np.maximum(out, w)
            return out
        if isinstance(spec, Leaf) and spec.method == "tournament":
            return self.tournament(spec.rule, spec.keep_nulls)
        return self.apply(spec, spec.rule)

    def apply(self, spec: Leaf | Mean, rule: Rule) -> np.ndarray:
        """The weights of ``spec`` with ``rule`` (a sweep passes each value's rule)."""
        if rule.value is None:
            raise GvstoreError(f"spec {spec} has no value for {rule.kind}")
        s = self.score(spec)
        null = np.isnan(s)
        if rule.kind == "exp":
            p = self.group.pidx
            top = np.full(self.group.n_prompts, -np.inf)
            np.maximum.at(top, p[~null], s[~null])
            return np.where(null, 0.0, np.exp((s - top[p]) / rule.value))
        if rule.kind == "tau":
            keep = s >= rule.value
        elif rule.kind == "quantile":
            thr = self.sorted(spec).thresholds(rule.value)
            keep = s >= thr[self.group.pidx]
        else:
            raise GvstoreError(f"rule {rule.kind} does not apply to {spec}")
        if spec.keep_nulls:
            keep |= null
        return keep.astype(np.float64)

    def tournament(self, rule: Rule, keep_nulls: bool) -> np.ndarray:
        import polars as pl

        g = self.group
        comps = g.comparisons
        if comps is None or rule.value is None:
            raise GvstoreError(f"no tournament comparisons loaded for {g.key}")
        r = int(rule.value)
        recorded = recorded_rounds(comps)
        if r > recorded:  # a group with no match of its own has recorded 0 rounds
            raise GvstoreError(
                f"tournament:rounds={r} needs {r} recorded round{'s' if r != 1 else ''}, "
                f"but verifier "
                f"{g.verifier!r} played {recorded} on {g.generator}/{g.task} round {g.round}"
            )
        compared = np.zeros(g.n_prompts, dtype=bool)
        if comps.height:
            _, prow = lookup(g.prompts, comps["prompt"].unique().to_numpy())
            compared[prow] = True
        w = compared[g.pidx].astype(np.float64)
        losers = comps.filter(pl.col("bracket_round") < r)["loser"].to_numpy()
        _, rows = g.positions(losers)
        w[rows] = 0.0
        if keep_nulls:
            w[~compared[g.pidx]] = 1.0
        return w
