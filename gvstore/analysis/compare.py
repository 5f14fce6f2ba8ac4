"""Paired comparison of two filter specs, verifiers, rounds or stores on their shared prompts.

Side A is a spec on the groups of one dataset that meet the ``a`` conditions
(``transfer.Where``); side B a spec (the same or another) on the groups of the same or another
dataset (another store) that meet the ``b`` conditions. A group of A is paired with each group
of B that agrees with it on every dimension (task, generator, round, verifier) neither side
names; with no conditions each group is paired with the group of the same key. Within a pair
the prompts are matched by prompt handle (the prompt record's id, so the same prompt in two
stores matches; the generations may differ); prompts graded on one side only are left out and
counted (``only_a``, ``only_b``).

On the P shared prompts: ``gap_a``, ``gap_b`` (each side's gap on those prompts), ``diff`` =
gap_a - gap_b (= the mean of the per-prompt differences), ``reweighted_diff`` likewise; one
bootstrap draw matrix (``gap.Bootstrap``) for every column, so the difference's interval is
paired. The verdict reads the difference's interval (``verdicts.verdict``): ``A better``
(above 0), ``B better`` (below 0), ``no difference`` (inside +-0.005), ``inconclusive``
(with ``prompts_to_decide``). ``docs/metrics.md`` (Paired comparison). Call::

    rep = compare(ds, parse("mc:quantile=0.8"), parse("cot_score:tau=8"))
    rep = compare(ds, spec, spec, a=[parse_where("round=0")], b=[parse_where("round=1")])
    rep = compare(ds, spec, spec, ds_b=Dataset(Projections(Store(other))))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES, verdicts
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import AsDict, Bootstrap, Graded, PromptStats
from gvstore.analysis.specs import Spec, methods_of
from gvstore.analysis.transfer import Key, Where, any_match, differs, label, rest
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError

A_BETTER = "A better"
B_BETTER = "B better"
NO_DIFFERENCE = "no difference"
WORDS = {verdicts.IMPROVABLE: A_BETTER, verdicts.WORSE: B_BETTER,
         verdicts.NO_GAP: NO_DIFFERENCE}


def difference_verdict(lo: float, hi: float, prompts: int | None = None) -> str:
    """The verdict of an interval of A - B over ``prompts`` shared prompts:
    ``verdicts.verdict`` in comparison words."""
    word = verdicts.verdict(lo, hi, prompts=prompts)
    return WORDS.get(word, word)


@dataclass
class CompareRow(AsDict):
    """One pair of groups compared on their shared prompts (see the module doc)."""

    task: str
    generator: str
    round: int
    verifier: str
    """Side A's group."""
    b_differs: str
    """Where side B's group differs from A's (``round=1``; empty: the same key)."""
    a: str
    b: str
    """The groups, ``task/generator/round/verifier`` each."""
    spec_a: str
    spec_b: str
    shared_prompts: int
    only_a: int
    only_b: int
    """Prompts graded on one side only (left out)."""
    base_a: float
    base_b: float
    reweighted_a: float
    reweighted_b: float
    gap_a: float
    gap_a_lo: float
    gap_a_hi: float
    gap_b: float
    gap_b_lo: float
    gap_b_hi: float
    diff: float
    diff_lo: float
    diff_hi: float
    """gap_a - gap_b on the shared prompts, with its paired interval."""
    reweighted_diff: float
    reweighted_diff_lo: float
    reweighted_diff_hi: float
    verdict: str
    prompts_to_decide: int | None
    resamples: int
    seed: int
    level: float


@dataclass
class CompareReport(AsDict):
    """The rows, and the groups of either side that found no partner."""

    rows: list[CompareRow] = field(default_factory=list)
    unpaired_a: list[str] = field(default_factory=list)
    unpaired_b: list[str] = field(default_factory=list)


def side(group: Group, spec: Spec) -> tuple[np.ndarray, PromptStats]:
    """The handles of a group's graded prompts and its per-prompt numbers under ``spec``."""
    graded = Graded(group)
    return group.prompts[graded.present], graded.stats(Weigher(group).weights(spec))


def compare_pair(ga: Group, gb: Group, spec_a: Spec, spec_b: Spec, boot_args: tuple[int, int],
                 level: float = DEFAULT_LEVEL) -> CompareRow | None:
    """The row of one pair (None: no shared graded prompt). ``boot_args``: (resamples, seed)."""
    ha, sa = side(ga, spec_a)
    hb, sb = side(gb, spec_b)
    _, ia, ib = np.intersect1d(ha, hb, assume_unique=True, return_indices=True)
    if ia.size == 0:
        return None
    cols = np.column_stack([
        sa.acc[ia], sb.acc[ib], sa.acc_w[ia], sb.acc_w[ib], sa.diff[ia], sb.diff[ib],
        sa.diff[ia] - sb.diff[ib], sa.acc_w[ia] - sb.acc_w[ib]])
    mean = cols.mean(axis=0)
    boot = Bootstrap(int(ia.size), boot_args[0], boot_args[1], level)
    lo, hi = boot.interval(cols)
    word = difference_verdict(float(lo[6]), float(hi[6]), int(ia.size)) if boot.resamples \
        else verdicts.UNKNOWN
    return CompareRow(
        task=ga.task, generator=ga.generator, round=ga.round, verifier=ga.verifier,
        b_differs=differs(gb.key, ga.key),
        a=label(ga.key), b=label(gb.key), spec_a=str(spec_a), spec_b=str(spec_b),
        shared_prompts=int(ia.size), only_a=int(ha.size - ia.size),
        only_b=int(hb.size - ib.size), base_a=float(mean[0]), base_b=float(mean[1]),
        reweighted_a=float(mean[2]), reweighted_b=float(mean[3]),
        gap_a=float(mean[4]), gap_a_lo=float(lo[4]), gap_a_hi=float(hi[4]),
        gap_b=float(mean[5]), gap_b_lo=float(lo[5]), gap_b_hi=float(hi[5]),
        diff=float(mean[6]), diff_lo=float(lo[6]), diff_hi=float(hi[6]),
        reweighted_diff=float(mean[7]), reweighted_diff_lo=float(lo[7]),
        reweighted_diff_hi=float(hi[7]), verdict=word,
        prompts_to_decide=(verdicts.prompts_to_decide(cols[:, 6], level)
                           if word == verdicts.INCONCLUSIVE else None),
        resamples=boot.resamples, seed=boot_args[1], level=level)


def pairs(groups_a: Sequence[Group], groups_b: Sequence[Group], a: Sequence[Where],
          b: Sequence[Where]) -> tuple[list[tuple[Group, Group]], list[Key], list[Key]]:
    """The (A, B) group pairs (see the module doc), and the keys of each side left unpaired."""
    free = set().union(*(w.dims for w in [*a, *b]))
    left = [g for g in groups_a if any_match(a, g.key)]
    right = [g for g in groups_b if any_match(b, g.key)]
    out = [(ga, gb) for ga in left for gb in right
           if rest(ga.key, free) == rest(gb.key, free) and ga.task == gb.task]
    got_a = {id(ga) for ga, _ in out}
    got_b = {id(gb) for _, gb in out}
    return (out, [g.key for g in left if id(g) not in got_a],
            [g.key for g in right if id(g) not in got_b])


def compare(
    ds: Dataset,
    spec_a: Spec,
    spec_b: Spec | None = None,
    *,
    a: Sequence[Where] = (),
    b: Sequence[Where] = (),
    ds_b: Dataset | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> CompareReport:
    """Side A: ``spec_a`` on ``ds``'s groups meeting ``a``; side B: ``spec_b`` (default
    ``spec_a``) on ``ds_b``'s (default ``ds``) groups meeting ``b``. Give ``a`` and ``b``
    both or neither. A pair with no shared graded prompt counts as unpaired."""
    if bool(a) != bool(b):
        raise GvstoreError("give the group conditions of both sides (--a and --b) or neither")
    spec_b = spec_a if spec_b is None else spec_b
    other = ds if ds_b is None else ds_b
    got, un_a, un_b = pairs(ds.groups(methods_of(spec_a)), other.groups(methods_of(spec_b)),
                            a, b)
    rep = CompareReport()
    paired_a: set[Key] = set()
    paired_b: set[Key] = set()
    for ga, gb in got:
        row = compare_pair(ga, gb, spec_a, spec_b, (resamples, seed), level)
        if row is not None:
            rep.rows.append(row)
            paired_a.add(ga.key)
            paired_b.add(gb.key)
    rep.unpaired_a = [label(k) for k in un_a] + sorted(
        {label(ga.key) for ga, _ in got if ga.key not in paired_a})
    rep.unpaired_b = [label(k) for k in un_b] + sorted(
        {label(gb.key) for _, gb in got if gb.key not in paired_b})
    return rep
