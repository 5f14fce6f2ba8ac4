"""Threshold transfer: choose a rule's value on one set of groups, score it on another.

The paper (section 6.1) says optimal thresholds transfer across models. ``transfer`` tests it
on the data: for a sweep template (``mc:quantile``, ``cot_score:tau``, ...) the value is chosen
on the **source** group(s) by the rule ``gvstore sweep`` uses (``sweep.best_index``: the
highest mean metric over the prompts; among means tied within 1e-12 the smallest value;
``choose``), then on each **target** group the gap at that value (``transferred``) is
reported next to the target's own in-sample best (``own_best``) and the ``loss`` = own best -
transferred, each with a percentile bootstrap interval over the target's prompts (one draw
matrix for the three, so the loss is paired). ``docs/metrics.md`` (Threshold transfer) has
the definitions.

Sides are given as ``Where`` conditions on a group's key (task, generator, round, verifier):
``parse_where("generator=A,verifier=A")``. A target is paired with the source groups that
agree with it on every dimension that neither side names; several such sources are pooled
(their prompts stacked, each prompt weighing the same). Call::

    rows = transfer(ds, parse_template("mc:quantile"), [parse_where("generator=A")],
                    [parse_where("generator=B")], resamples=1000, seed=0)
    mats = transfer_matrix(ds, parse_template("mc:quantile"), "generator")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES, verdicts
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import AsDict, Bootstrap
from gvstore.analysis.specs import Leaf, Mean, methods_of, with_value
from gvstore.analysis.sweep import (
    METRICS,
    SweepResult,
    best_index,
    default_values,
    sweep_group,
)
from gvstore.analysis.weights import Weigher, recorded_rounds
from gvstore.errors import GvstoreError

DIMS = ("task", "generator", "round", "verifier")
Key = tuple[str, str, int, str]
TRANSFERS = "transfers"
LOSES = "does not transfer"
_WORDS = {verdicts.NO_GAP: TRANSFERS, verdicts.WORSE: TRANSFERS, verdicts.IMPROVABLE: LOSES}


@dataclass(frozen=True)
class Where:
    """A conjunction of ``dimension=value`` conditions on a group key (empty: every group)."""

    terms: tuple[tuple[str, str], ...] = ()

    def matches(self, key: Key) -> bool:
        return all(str(key[DIMS.index(d)]) == v for d, v in self.terms)

    @property
    def dims(self) -> set[str]:
        return {d for d, _ in self.terms}

    def __str__(self) -> str:
        return ",".join(f"{d}={v}" for d, v in self.terms)


def parse_where(text: str) -> Where:
    """``"generator=A,round=1"`` as a ``Where``; dimensions: task, generator, round, verifier."""
    terms = []
    for part in (p.strip() for p in text.split(",")):
        dim, eq, value = part.partition("=")
        dim, value = dim.strip(), value.strip()
        if not eq or dim not in DIMS or not value:
            raise GvstoreError(f"bad group condition {part!r} in {text!r}: give DIM=VALUE with "
                               f"DIM one of {', '.join(DIMS)}, e.g. generator=A,round=0")
        if dim == "round" and not value.lstrip("-").isdigit():
            raise GvstoreError(f"round takes a whole number, not {value!r}")
        terms.append((dim, str(int(value)) if dim == "round" else value))
    return Where(tuple(terms))


def any_match(wheres: Sequence[Where], key: Key) -> bool:
    """Whether ``key`` meets any of ``wheres`` (an empty list: every key)."""
    return not wheres or any(w.matches(key) for w in wheres)


def rest(key: Key, free: set[str]) -> tuple[object, ...]:
    """The parts of ``key`` on the dimensions not in ``free`` (what two paired groups share)."""
    return tuple(k for d, k in zip(DIMS, key, strict=True) if d not in free)


def label(key: Key) -> str:
    """``task/generator/round/verifier`` of a group key."""
    return "/".join(str(k) for k in key)


def differs(key: Key, other: Key) -> str:
    """``dim=value`` of ``key`` on each dimension where it differs from ``other``."""
    return ",".join(f"{d}={k}" for d, k, o in zip(DIMS, key, other, strict=True) if k != o)


def _key(res: SweepResult) -> Key:
    return (res.task, res.generator, res.round, res.verifier)


def choose(means: np.ndarray, values: Sequence[float]) -> int:
    """The chosen value's index among per-value mean metrics: ``sweep.best_index``, the one
    rule of ``gvstore sweep`` (the highest mean; among means tied within 1e-12 the smallest
    value)."""
    if means.size == 0:
        raise GvstoreError("nothing to choose from: the sweep has no values")
    return best_index(means, values)


def transfer_grid(template: Leaf | Mean, groups: Sequence[Group],
                  values: Sequence[float] | None = None) -> list[float]:
    """The values every group is swept at: ``values`` if given, else ``rounds`` 0 .. the fewest
    rounds any group recorded, other rules the sorted union of each group's default values
    (``sweep.default_values``; the same list for ``quantile`` and ``exp``)."""
    if values is not None:
        return [float(v) for v in values]
    if template.rule.kind == "rounds":
        top = min((recorded_rounds(g.comparisons) for g in groups), default=0)
        return [float(r) for r in range(top + 1)]
    found: set[float] = set()
    for g in groups:
        found.update(default_values(template, Weigher(g)))
    return sorted(found)


@dataclass
class TransferRow(AsDict):
    """The transfer of one choice (on ``sources``) to one target group (see the module doc)."""

    task: str
    generator: str
    round: int
    verifier: str
    """The target group."""
    sources: list[str]
    """The source groups, ``task/generator/round/verifier`` each."""
    chosen_on: str
    """Where each source differs from the target (``generator=A``; ``itself``), ``; ``-joined."""
    template: str
    metric: str
    source_prompts: int
    chosen_value: float
    chosen_spec: str
    source_best: float
    """The metric of the chosen value on the source prompts (pooled)."""
    prompts: int
    transferred: float
    transferred_lo: float
    transferred_hi: float
    """The target's metric at the chosen value, and its interval."""
    own_value: float
    own_spec: str
    own_best: float
    own_best_lo: float
    own_best_hi: float
    """The target's own in-sample best value (same rule) and its metric (optimistic)."""
    loss: float
    loss_lo: float
    loss_hi: float
    """own best - transferred (>= 0), with its paired interval."""
    verdict: str
    """``transfers`` (loss interval inside +-0.005 or below 0), ``does not transfer`` (above
    0), ``inconclusive`` or ``unknown`` (no bootstrap)."""
    prompts_to_decide: int | None
    resamples: int
    seed: int
    level: float


def _scores(res: SweepResult, metric: str) -> np.ndarray:
    out = res.diff if metric == "gap" else res.rel
    assert out is not None
    return out


def transfer_row(sources: Sequence[SweepResult], target: SweepResult, template: Leaf | Mean,
                 metric: str, boot: Bootstrap, seed: int) -> TransferRow:
    """The row of one target from its sweep and its sources' (all on the same value grid)."""
    vals = [p.value for p in target.points]
    pooled = np.vstack([_scores(s, metric) for s in sources])
    j_src = choose(pooled.mean(axis=0), vals)
    t = _scores(target, metric)
    j_own = choose(t.mean(axis=0), vals)
    cols = np.column_stack([t[:, j_src], t[:, j_own], t[:, j_own] - t[:, j_src]])
    mean = cols.mean(axis=0)
    lo, hi = boot.interval(cols)
    word = (verdicts.verdict(float(lo[2]), float(hi[2]), prompts=boot.n) if boot.resamples
            else verdicts.UNKNOWN)
    return TransferRow(
        task=target.task, generator=target.generator, round=target.round,
        verifier=target.verifier,
        sources=[label(_key(s)) for s in sources],
        chosen_on="; ".join(differs(_key(s), _key(target)) or "itself" for s in sources),
        template=str(template), metric=metric, source_prompts=int(pooled.shape[0]),
        chosen_value=vals[j_src], chosen_spec=str(with_value(template, vals[j_src])),
        source_best=float(pooled.mean(axis=0)[j_src]), prompts=target.prompts,
        transferred=float(mean[0]), transferred_lo=float(lo[0]), transferred_hi=float(hi[0]),
        own_value=vals[j_own], own_spec=str(with_value(template, vals[j_own])),
        own_best=float(mean[1]), own_best_lo=float(lo[1]), own_best_hi=float(hi[1]),
        loss=float(mean[2]), loss_lo=float(lo[2]), loss_hi=float(hi[2]),
        verdict=_WORDS.get(word, word),
        prompts_to_decide=(verdicts.prompts_to_decide(cols[:, 2], boot.level)
                           if word == verdicts.INCONCLUSIVE else None),
        resamples=boot.resamples, seed=seed, level=boot.level)


class _Sweeps:
    """Every group of a dataset swept once on one grid (None: no graded generation)."""

    def __init__(self, ds: Dataset, template: Leaf | Mean, metric: str,
                 values: Sequence[float] | None, groups: Sequence[Group] | None = None) -> None:
        if metric not in METRICS:
            raise GvstoreError(f"--metric takes {' or '.join(METRICS)}, not {metric!r}")
        self.groups = list(groups) if groups is not None else ds.groups(methods_of(template))
        self.template = template
        self.grid = transfer_grid(template, self.groups, values)
        if not self.grid:
            raise GvstoreError(f"no values to sweep {template} over (no parsed scores)")
        self._done: dict[Key, SweepResult | None] = {}

    def get(self, g: Group) -> SweepResult | None:
        if g.key not in self._done:
            self._done[g.key] = sweep_group(g, self.template, self.grid, (0, 0))
        return self._done[g.key]


def transfer(
    ds: Dataset,
    template: Leaf | Mean,
    sources: Sequence[Where],
    targets: Sequence[Where] | None = None,
    *,
    values: Sequence[float] | None = None,
    metric: str = "gap",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[TransferRow]:
    """One row per target group that has a source: choose on ``sources`` (any of them; at
    least one), score on ``targets`` (any of them; None: every group no source condition
    meets), paired on the dimensions neither side names. ``values``: the grid (default
    ``transfer_grid``)."""
    if not sources:
        raise GvstoreError("give at least one source condition (e.g. generator=A)")
    free = set().union(*(w.dims for w in [*sources, *(targets or [])]))
    sw = _Sweeps(ds, template, metric, values)
    src = [g for g in sw.groups if any_match(sources, g.key)]
    tgt = [g for g in sw.groups if (any_match(targets, g.key) if targets
                                     else not any_match(sources, g.key))]
    rows: list[TransferRow] = []
    boots: dict[int, Bootstrap] = {}
    for t in tgt:
        tres = sw.get(t)
        pool = [r for s in src if rest(s.key, free) == rest(t.key, free)
                and (r := sw.get(s)) is not None]
        if tres is None or not pool:
            continue
        boot = boots.get(tres.prompts)
        if boot is None:
            boot = boots[tres.prompts] = Bootstrap(tres.prompts, resamples, seed, level)
        rows.append(transfer_row(pool, tres, template, metric, boot, seed))
    return rows


@dataclass
class TransferMatrix(AsDict):
    """Every source x target along one dimension, the others fixed (``fixed``, in DIMS order
    without ``dim``). ``cells``: the rows, source-major in ``labels`` order (``cell``)."""

    dim: str
    fixed: dict[str, str]
    labels: list[str]
    cells: list[TransferRow] = field(default_factory=list)

    def cell(self, source: str, target: str) -> TransferRow | None:
        """The row of one (source value, target value) pair (None: not computed)."""
        if source not in self.labels or target not in self.labels:
            return None
        n = len(self.labels)
        k = self.labels.index(source) * n + self.labels.index(target)  # source-major order
        return self.cells[k] if k < len(self.cells) else None


def transfer_matrix(
    ds: Dataset,
    template: Leaf | Mean,
    dim: str,
    *,
    values: Sequence[float] | None = None,
    metric: str = "gap",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[TransferMatrix]:
    """All pairs along ``dim`` (task, generator, round or verifier): for each combination of
    the other dimensions, every value of ``dim`` present is a source for every value (itself
    included: loss 0). All groups share one value grid."""
    if dim not in DIMS:
        raise GvstoreError(f"--matrix takes one of {', '.join(DIMS)}, not {dim!r}")
    i = DIMS.index(dim)
    sw = _Sweeps(ds, template, metric, values)
    by: dict[tuple[object, ...], dict[str, SweepResult]] = {}
    for g in sw.groups:
        res = sw.get(g)
        if res is not None:
            by.setdefault(rest(g.key, {dim}), {})[str(g.key[i])] = res
    out: list[TransferMatrix] = []
    boots: dict[int, Bootstrap] = {}
    for fixed in sorted(by, key=str):
        part = by[fixed]
        m = TransferMatrix(dim, {d: str(v) for d, v in zip(
            [d for d in DIMS if d != dim], fixed, strict=True)}, sorted(part, key=_natural))
        for s in m.labels:
            for t in m.labels:
                tres = part[t]
                boot = boots.get(tres.prompts)
                if boot is None:
                    boot = boots[tres.prompts] = Bootstrap(tres.prompts, resamples, seed, level)
                m.cells.append(transfer_row([part[s]], tres, template, metric, boot, seed))
        out.append(m)
    return out


def _natural(text: str) -> tuple[int, int | str]:
    """Rounds in numeric order, names in text order."""
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)
