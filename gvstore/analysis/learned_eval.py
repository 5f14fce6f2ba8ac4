"""Learned ensembles next to the best single method and the best hand-made ensemble, on the
same folds over prompts (``gvstore ensembles``).

Per (task, generator, round, verifier) group and its P graded prompts, the prompts are dealt
into k folds by ``learned.fold_of`` (the deal of every ``learned(...)`` spec with those folds
and seed). Four candidates, each with one held-out gap per prompt:

* ``learned lr`` / ``learned nb``: ``learned(lr|nb,m1,...):RULE,norm=N,folds=k,seed=S``; a
  prompt's weights come from a model fitted on the other folds (cross-fitted by construction).
  With a fixed rule (``Settings.rule``) that is the spec's gap; by default the rule is a
  quantile q of the grid chosen, for fold f, by the best mean gap over the other folds'
  prompts under fold f's own model (fitted on them: in-sample there), so neither the model
  nor q of fold f has seen fold f's grades;
* ``best single``: among ``m:quantile=q`` for each method m and each q of the grid (``GRID``
  points from 0 to 1), the spec with the highest mean gap over the prompts of the other k - 1
  folds (on ties the first candidate: methods in the order given, then q ascending) is
  applied to fold f's prompts;
* ``best hand-made`` (two or more methods): the same choice among ``mean(m1,...):quantile=q``,
  ``and(m1:quantile=q,...)`` and ``or(m1:quantile=q,...)`` (one q for every part).

A fold with no other graded prompt chooses the first candidate (quantile 0 of the first
method, or of ``mean``). The held-out gap of a candidate is the mean over prompts of its
per-prompt gap, each prompt scored by a choice (or a model) that never saw it; its interval is
the percentile bootstrap over prompts (``gap.Bootstrap``: the same draws for every candidate,
so the differences are paired). ``vs single`` is the paired difference of a candidate's
per-prompt gaps and the best single's, with its interval and verdict (``verdicts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES, verdicts
from gvstore.analysis.frames import Dataset, Group
from gvstore.analysis.gap import AsDict, Bootstrap, Graded
from gvstore.analysis.learned import fold_models, fold_of
from gvstore.analysis.specs import Combine, Leaf, Learned, Mean, Rule, Spec, with_value
from gvstore.analysis.sweep import best_index
from gvstore.analysis.weights import Weigher
from gvstore.errors import GvstoreError

GRID = 21
CANDIDATES = ("learned lr", "learned nb", "best single", "best hand-made")


@dataclass
class EnsembleRow(AsDict):
    """One candidate of one group, scored on held-out folds."""

    task: str
    generator: str
    round: int
    verifier: str
    candidate: str
    spec: str
    """The learned spec, or the folds' choices (``summary``)."""
    prompts: int
    folds: int
    gap: float
    gap_lo: float
    gap_hi: float
    rel_gap: float
    rel_gap_lo: float
    rel_gap_hi: float
    vs_single: float | None
    vs_single_lo: float | None
    vs_single_hi: float | None
    vs_single_verdict: str | None
    vs_single_prompts_to_decide: int | None
    resamples: int
    seed: int
    level: float
    choices: list[str] = field(default_factory=list)
    """Per fold: the chosen spec ("" for a fold with no graded prompt); empty for a learned
    spec with a fixed rule."""


def grid_values(grid: int) -> list[float]:
    """``grid`` evenly spaced quantiles from 0 to 1."""
    return [round(float(q), 10) for q in np.linspace(0.0, 1.0, grid)]


def candidates(methods: Sequence[str], grid: int) -> tuple[list[Spec], list[Spec]]:
    """The single-method specs and the hand-made ensembles the choice is made among."""
    qs = grid_values(grid)
    single: list[Spec] = [Leaf(m, Rule("quantile", q)) for m in methods for q in qs]
    hand: list[Spec] = []
    if len(methods) >= 2:
        hand += [Mean(tuple(methods), Rule("quantile", q)) for q in qs]
        for op in ("and", "or"):
            hand += [Combine(op, tuple(Leaf(m, Rule("quantile", q)) for m in methods))
                     for q in qs]
    return single, hand


def per_prompt(weigher: Weigher, graded: Graded, specs: Sequence[Spec]) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Per-prompt gap and relative gap (P x len(specs)) of each spec."""
    d = np.empty((graded.n_prompts, len(specs)))
    r = np.empty_like(d)
    for j, s in enumerate(specs):
        st = graded.stats(weigher.weights(s))
        d[:, j], r[:, j] = st.diff, st.rel
    return d, r


def cross_choose(d: np.ndarray, r: np.ndarray, fold: np.ndarray, k: int
                 ) -> tuple[np.ndarray, np.ndarray, list[int | None]]:
    """Held-out per-prompt gap and relative gap: fold f takes the column with the best mean
    gap over the other folds' prompts (the first on ties; column 0 if there are none)."""
    out_d, out_r = np.empty(d.shape[0]), np.empty(d.shape[0])
    chosen: list[int | None] = []
    for f in range(k):
        test = fold == f
        if not test.any():
            chosen.append(None)
            continue
        train = ~test
        j = int(np.argmax(d[train].mean(axis=0))) if train.any() else 0
        out_d[test], out_r[test] = d[test, j], r[test, j]
        chosen.append(j)
    return out_d, out_r, chosen


def summary(picks: Sequence[str]) -> str:
    """The choices of the folds in one text: ``every fold: X``, or ``folds 0,2: X; fold 1: Y``
    (folds with no prompt, ``""``, left out)."""
    by: dict[str, list[int]] = {}
    for f, s in enumerate(picks):
        if s:
            by.setdefault(s, []).append(f)
    if len(by) == 1 and all(picks):
        return f"every fold: {next(iter(by))}"
    return "; ".join(f"fold{'s' if len(fs) > 1 else ''} {','.join(map(str, fs))}: {s}"
                     for s, fs in by.items())


def learned_choice(weigher: Weigher, graded: Graded, spec: Learned, fold: np.ndarray,
                   grid: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Held-out per-prompt gap and relative gap of a learned spec whose quantile is chosen per
    fold on the other folds' prompts, under that fold's model (see the module doc)."""
    qs = grid_values(grid)
    _, preds = fold_models(weigher, spec, every_row=True)
    out_d, out_r = np.zeros(graded.n_prompts), np.zeros(graded.n_prompts)
    picks: list[str] = []
    key = spec.methods[0]  # the fold model's scores stand in for a method's
    for f, pred in enumerate(preds):
        test = fold == f
        if pred is None or not test.any():
            picks.append("")
            continue
        w = Weigher(replace(weigher.group, scores={key: pred}))
        d, r = per_prompt(w, graded, [Leaf(key, Rule("quantile", q)) for q in qs])
        j = best_index(d[~test].mean(axis=0), qs) if (~test).any() else 0  # sweep's tie rule
        out_d[test], out_r[test] = d[test, j], r[test, j]
        picks.append(str(with_value(spec, qs[j])))
    return out_d, out_r, picks


@dataclass(frozen=True)
class Settings:
    """How ``compare`` runs: folds and their seed, the learned specs' rule (None: a quantile
    chosen on the training folds) and normalisation, the quantile grid, and the bootstrap."""

    folds: int = 5
    fold_seed: int = 0
    rule: Rule | None = None
    norm: str = "rank"
    grid: int = GRID
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    level: float = DEFAULT_LEVEL


def compare_group(g: Group, methods: Sequence[str], cfg: Settings) -> list[EnsembleRow]:
    """The four candidates of one group (three with a single method); [] if nothing graded."""
    graded = Graded(g)
    p = graded.n_prompts
    if p == 0:
        return []
    weigher = Weigher(g)
    fold = fold_of(g.n_prompts, cfg.folds, cfg.fold_seed)[graded.present]
    cols: dict[str, tuple[np.ndarray, np.ndarray, str, list[str]]] = {}
    for model in ("lr", "nb"):
        spec = Learned(tuple(methods), cfg.rule or Rule("quantile", None), False, model,
                       cfg.norm, cfg.folds, cfg.fold_seed)
        if cfg.rule is None:
            d, r, picks = learned_choice(weigher, graded, spec, fold, cfg.grid)
            cols[f"learned {model}"] = (d, r, summary(picks), picks)
        else:
            st = graded.stats(weigher.weights(spec))
            cols[f"learned {model}"] = (st.diff, st.rel, str(spec), [])
    single, hand = candidates(methods, cfg.grid)
    for name, specs in (("best single", single), ("best hand-made", hand)):
        if not specs:
            continue
        d, r, chosen = cross_choose(*per_prompt(weigher, graded, specs), fold, cfg.folds)
        picks = [str(specs[j]) if j is not None else "" for j in chosen]
        cols[name] = (d, r, summary(picks), picks)
    names = list(cols)
    base = cols["best single"][0]
    mat = np.column_stack([cols[n][0] for n in names] + [cols[n][1] for n in names]
                          + [cols[n][0] - base for n in names])
    boot = Bootstrap(p, cfg.resamples, cfg.seed, cfg.level)
    lo, hi = boot.interval(mat)
    mean = mat.mean(axis=0)
    k = len(names)
    rows = []
    for i, n in enumerate(names):
        d, _, text, choices = cols[n]
        diff = d - base
        vs = n != "best single"
        word = verdicts.verdict(float(lo[2 * k + i]), float(hi[2 * k + i]), prompts=p) if (
            vs and cfg.resamples) else None
        rows.append(EnsembleRow(
            task=g.task, generator=g.generator, round=g.round, verifier=g.verifier,
            candidate=n, spec=text, prompts=p, folds=cfg.folds,
            gap=float(mean[i]), gap_lo=float(lo[i]), gap_hi=float(hi[i]),
            rel_gap=float(mean[k + i]), rel_gap_lo=float(lo[k + i]),
            rel_gap_hi=float(hi[k + i]),
            vs_single=float(mean[2 * k + i]) if vs else None,
            vs_single_lo=float(lo[2 * k + i]) if vs else None,
            vs_single_hi=float(hi[2 * k + i]) if vs else None,
            vs_single_verdict=word,
            vs_single_prompts_to_decide=verdicts.prompts_to_decide(diff, cfg.level)
            if word == verdicts.INCONCLUSIVE else None,
            resamples=cfg.resamples, seed=cfg.seed, level=cfg.level, choices=choices))
    return rows


def compare(ds: Dataset, methods: Sequence[str], cfg: Settings | None = None
            ) -> list[EnsembleRow]:
    """``compare_group`` for every (task, generator, round, verifier) group of ``ds``."""
    cfg = cfg or Settings()
    if not methods:
        raise GvstoreError("name at least one score method to combine")
    if cfg.grid < 2:
        raise GvstoreError(f"the quantile grid needs at least 2 points, got {cfg.grid}")
    out: list[EnsembleRow] = []
    for g in ds.groups(tuple(methods)):
        out.extend(compare_group(g, methods, cfg))
    return out


def figure(rows: Sequence[EnsembleRow], path: Path) -> Path:
    """Held-out gap and interval of each candidate, one panel per group."""
    from gvstore.analysis.plots import _figure, save

    keys = sorted({(r.task, r.generator, r.round, r.verifier) for r in rows})
    fig, axes = _figure(6.5, 1.2 + 1.6 * len(keys), rows=len(keys))
    for ax, key in zip(axes, keys, strict=True):
        mine = [r for r in rows if (r.task, r.generator, r.round, r.verifier) == key]
        ys = np.arange(len(mine))[::-1]
        gaps = np.array([r.gap for r in mine])
        lo = np.array([r.gap_lo for r in mine])
        hi = np.array([r.gap_hi for r in mine])
        err = np.vstack([gaps - lo, hi - gaps]) if not np.isnan(lo).any() else None
        ax.errorbar(gaps, ys, xerr=err, fmt="o", capsize=3,
                    label=f"held-out gap, {mine[0].level:.0%} bootstrap interval")
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_yticks(ys, [r.candidate for r in mine])
        ax.set_xlabel("held-out gap (cross-fitted over prompt folds)")
        ax.set_title(f"{key[1]} verified by {key[3]} ({key[0]}, round {key[2]}; "
                     f"{mine[0].prompts} prompts, {mine[0].folds} folds)", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)
