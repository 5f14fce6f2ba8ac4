"""Gap and relative gap over a range of one rule's values (paper figures 5, 6, 14, 15).

A sweep takes a template, a spec whose rule leaves out its value (``mc:quantile``,
``cot_score:tau``, ``tournament:rounds``, ``mean(mc,cot_score):quantile``), and evaluates the
gap at each value. Per group the scores, their per-prompt order and the bootstrap draws are
computed once; each value then costs one comparison and three bincounts over the samples.
Every value uses the same bootstrap draws (so neighbouring points are comparable).

Default values: ``quantile`` 0, 0.01, ..., 1 (101 points); ``tau`` the distinct observed scores
if there are at most 101 of them, else 101 evenly spaced from the lowest to the highest;
``rounds`` 0 .. the recorded rounds; ``exp`` 31 temperatures log-spaced from 0.01 to 10.

**Honest threshold choice** (``select``): the prompts are split at random (seeded) into a
selection part (``fraction``, 50% by default) and an evaluation part. The value with the best
metric (gap or relative gap; ties by ``best_index``: the smallest tied value) on the selection
part is reported
with its gap on the evaluation part: an estimate that did not see the prompts it is judged
on. The in-sample figure (best value chosen and scored on all prompts, as papers usually
report it) comes alongside and is optimistic by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, AsDict, Bootstrap, Graded
from gvstore.analysis.specs import Leaf, Mean, Rule, methods_of, with_value
from gvstore.analysis.weights import Weigher, recorded_rounds
from gvstore.errors import GvstoreError

METRICS = ("gap", "rel_gap")


@dataclass
class SweepPoint:
    value: float
    spec: str
    reweighted: float
    gap: float
    gap_lo: float
    gap_hi: float
    rel_gap: float
    rel_gap_lo: float
    rel_gap_hi: float
    kept: int
    empty_prompts: int


@dataclass
class SweepResult:
    """The sweep of one (task, generator, round, verifier) group."""

    task: str
    generator: str
    round: int
    verifier: str
    template: str
    rule: str
    prompts: int
    base: float
    points: list[SweepPoint] = field(default_factory=list)
    diff: np.ndarray | None = field(default=None, repr=False)  # P x V, per-prompt gaps
    rel: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("diff")
        d.pop("rel")
        return d


def default_values(template: Leaf | Mean, weigher: Weigher) -> list[float]:
    """The values a sweep of ``template`` tries when none are given (see the module doc)."""
    kind = template.rule.kind
    if kind == "quantile":
        return [round(float(v), 10) for v in np.linspace(0.0, 1.0, 101)]
    if kind == "rounds":
        return [float(r) for r in range(recorded_rounds(weigher.group.comparisons) + 1)]
    if kind == "exp":
        return [float(v) for v in np.geomspace(0.01, 10.0, 31)]
    s = weigher.score(template)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return []
    distinct = np.unique(s)
    if distinct.size <= 101:
        return [float(v) for v in distinct]
    return [float(v) for v in np.linspace(float(distinct[0]), float(distinct[-1]), 101)]


def _weights(weigher: Weigher, template: Leaf | Mean, value: float) -> np.ndarray:
    rule = Rule(template.rule.kind, float(value))
    if isinstance(template, Leaf) and template.method == "tournament":
        return weigher.tournament(rule, template.keep_nulls)
    return weigher.apply(template, rule)


def sweep_group(
    g: Group, template: Leaf | Mean, values: Sequence[float] | None, boot_args: tuple[int, int],
    level: float = DEFAULT_LEVEL,
) -> SweepResult | None:
    """The sweep of one group (None if it has no graded generation)."""
    graded = Graded(g)
    if graded.n_prompts == 0:
        return None
    weigher = Weigher(g)
    vals = list(values) if values is not None else default_values(template, weigher)
    res = SweepResult(g.task, g.generator, g.round, g.verifier, str(template),
                      template.rule.kind, graded.n_prompts, float(graded.acc.mean()))
    diff = np.empty((graded.n_prompts, len(vals)))
    rel = np.empty_like(diff)
    reweighted, kept, empty = [], [], []
    for j, v in enumerate(vals):
        st = graded.stats(_weights(weigher, template, v))
        diff[:, j] = st.diff
        rel[:, j] = st.rel
        reweighted.append(float(st.acc_w.mean()))
        kept.append(st.kept)
        empty.append(int(st.empty.sum()))
    boot = Bootstrap(graded.n_prompts, boot_args[0], boot_args[1], level)
    dlo, dhi = boot.interval(diff)
    rlo, rhi = boot.interval(rel)
    dmean, rmean = diff.mean(axis=0), rel.mean(axis=0)
    for j, v in enumerate(vals):
        res.points.append(SweepPoint(
            value=float(v), spec=str(with_value(template, v)), reweighted=reweighted[j],
            gap=float(dmean[j]), gap_lo=float(dlo[j]), gap_hi=float(dhi[j]),
            rel_gap=float(rmean[j]), rel_gap_lo=float(rlo[j]), rel_gap_hi=float(rhi[j]),
            kept=kept[j], empty_prompts=empty[j],
        ))
    res.diff, res.rel = diff, rel
    return res


def sweep(
    ds: Dataset,
    template: Leaf | Mean,
    values: Sequence[float] | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[SweepResult]:
    """One sweep per (task, generator, round, verifier) group."""
    out = []
    for g in ds.groups(methods_of(template)):
        r = sweep_group(g, template, values, (resamples, seed), level)
        if r is not None:
            out.append(r)
    return out


TIE_TOLERANCE = 1e-12
"""Metric means this close to the best count as tied (sums in another order differ by ~1e-17)."""


def best_index(means: np.ndarray, values: Sequence[float]) -> int:
    """The index of the best mean; among tied best means (within ``TIE_TOLERANCE``) the one
    of the **smallest value** (the least strict rule: for quantile, tau and rounds the one that
    keeps the most samples), whatever order the values were given in. NaN means never win
    unless every mean is NaN (then the smallest value)."""
    m = np.asarray(means, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(m)
    if not finite.any():
        return int(np.argmin(v))
    tied = finite & (m >= np.nanmax(m) - TIE_TOLERANCE)
    idx = np.flatnonzero(tied)
    return int(idx[np.argmin(v[idx])])


@dataclass
class Selection(AsDict):
    """Honest and in-sample threshold choice for one group (see the module doc)."""

    task: str
    generator: str
    round: int
    verifier: str
    template: str
    metric: str
    fraction: float
    seed: int
    select_prompts: int
    eval_prompts: int
    held_out_value: float
    held_out_spec: str
    held_out_gap: float
    held_out_gap_lo: float
    held_out_gap_hi: float
    held_out_rel_gap: float
    held_out_rel_gap_lo: float
    held_out_rel_gap_hi: float
    in_sample_value: float
    in_sample_spec: str
    in_sample_gap: float
    in_sample_gap_lo: float
    in_sample_gap_hi: float
    in_sample_rel_gap: float


def select(
    res: SweepResult,
    template: Leaf | Mean,
    *,
    metric: str = "gap",
    fraction: float = 0.5,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> Selection:
    """Pick the best value on a seeded part of the prompts, score it on the rest."""
    if metric not in METRICS:
        raise GvstoreError(f"--select-on takes {' or '.join(METRICS)}, not {metric!r}")
    if not 0.0 < fraction < 1.0:
        raise GvstoreError(f"the selection fraction must be in (0, 1), got {fraction}")
    if res.diff is None or res.rel is None or not res.points:
        raise GvstoreError("nothing to select from: the sweep has no values")
    p = res.prompts
    n_sel = int(round(p * fraction))
    if n_sel < 1 or n_sel >= p:
        raise GvstoreError(f"cannot split {p} prompts into two non-empty parts at {fraction}")
    perm = np.random.default_rng(seed).permutation(p)
    sel, ev = np.sort(perm[:n_sel]), np.sort(perm[n_sel:])
    score = res.diff if metric == "gap" else res.rel
    vals = [pt.value for pt in res.points]
    j_sel = best_index(score[sel].mean(axis=0), vals)
    j_all = best_index(score.mean(axis=0), vals)
    boot_ev = Bootstrap(ev.size, resamples, seed, level)
    ev_cols = np.column_stack([res.diff[ev, j_sel], res.rel[ev, j_sel]])
    lo, hi = boot_ev.interval(ev_cols)
    held = ev_cols.mean(axis=0)
    best = res.points[j_all]
    return Selection(
        task=res.task, generator=res.generator, round=res.round, verifier=res.verifier,
        template=res.template, metric=metric, fraction=fraction, seed=seed,
        select_prompts=int(sel.size), eval_prompts=int(ev.size),
        held_out_value=vals[j_sel], held_out_spec=str(with_value(template, vals[j_sel])),
        held_out_gap=float(held[0]), held_out_gap_lo=float(lo[0]),
        held_out_gap_hi=float(hi[0]), held_out_rel_gap=float(held[1]),
        held_out_rel_gap_lo=float(lo[1]), held_out_rel_gap_hi=float(hi[1]),
        in_sample_value=vals[j_all], in_sample_spec=best.spec, in_sample_gap=best.gap,
        in_sample_gap_lo=best.gap_lo, in_sample_gap_hi=best.gap_hi,
        in_sample_rel_gap=best.rel_gap,
    )

