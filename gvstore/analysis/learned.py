"""Learned ensembles: ``learned(lr|nb,m1,m2,...)``, a model's P(correct) from verifier scores.

Per (task, generator, round, verifier) group, every sample gets a feature vector from the
methods' scores, **normalised within its prompt** (``norm=``; over the prompt's k non-null
scores of that method, nulls excluded):

* ``rank`` (default): r = (average rank - 1) / (k - 1), ties sharing their average rank, 0.5
  when k = 1: the rank rule of ``mean(...)``;
* ``minmax``: (s - min) / (max - min), 0.5 when max = min;
* ``z``: (s - mean) / sd (population sd, ddof 0), 0 when sd = 0;
* ``none``: the raw score.

A null score (no parse, or no verification) is imputed with the middle of its scale (``IMPUTE``:
0.5 for rank and minmax, 0 for z and none) and flagged: the features of a sample are, per
method in the spec's order, (normalised score or IMPUTE, 1 if null else 0). The model is
scikit-learn's ``LogisticRegression(C=1, lbfgs, max_iter=1000)`` (``lr``) or ``GaussianNB()``
(``nb``); its label is "correct", utility >= 0.5.

**Cross-fitting** (the honesty of it): the group's prompts (in prompt-handle order) are dealt
into ``folds`` folds by a seeded permutation (``fold_of``: numpy ``default_rng(seed)``,
prompt ``perm[i]`` goes to fold ``i % folds``; the same prompts and seed give the same folds,
whatever the grades). The scores of fold f's samples are P(correct) from a model fitted on
the graded samples of the other folds only; ground truth is read for nothing else. So a
prompt's own grades never reach its own weights, and a gap of a learned spec is a
cross-fitted (held-out) estimate. Training data with one class only (every training sample
correct, or every one wrong) gives the constant prediction of that class (1 or 0); no graded
training sample at all gives 0.5. A group with no graded sample is an error (nothing to
learn from). The score is never null.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from gvstore.analysis.specs import Leaf, Learned, Rule
from gvstore.errors import GvstoreError

if TYPE_CHECKING:
    from gvstore.analysis.weights import Weigher

IMPUTE = {"rank": 0.5, "minmax": 0.5, "z": 0.0, "none": 0.0}
"""The value a null score takes as a feature, per normalisation (its is-null flag is 1)."""
NO_TRAINING = 0.5
"""The prediction where the other folds hold no graded sample."""


def fit_key(spec: Learned) -> str:
    """What a learned spec's scores depend on: everything but its rule."""
    return (f"learned({spec.model},{','.join(spec.methods)}):norm={spec.norm},"
            f"folds={spec.folds},seed={spec.seed}")


def fold_of(n_prompts: int, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each of ``n_prompts`` prompts: a seeded, balanced deal."""
    perm = np.random.default_rng(seed).permutation(n_prompts)
    out = np.empty(n_prompts, dtype=np.int64)
    out[perm] = np.arange(n_prompts) % folds
    return out


def normalised(weigher: Weigher, method: str, norm: str) -> np.ndarray:
    """One method's scores normalised within each prompt (see the module doc); NaN = null."""
    leaf = Leaf(method, Rule("tau", 0.0))
    if norm == "rank":
        return weigher.sorted(leaf).ranks()
    s = weigher.score(leaf)
    if norm == "none":
        return s.copy()
    g = weigher.group
    first, p = g.starts[:-1], g.pidx
    ok = ~np.isnan(s)
    with np.errstate(invalid="ignore", divide="ignore"):
        if norm == "minmax":
            lo, hi = np.fmin.reduceat(s, first)[p], np.fmax.reduceat(s, first)[p]
            out = np.where(hi > lo, (s - lo) / (hi - lo), 0.5)
        else:
            n = np.bincount(p[ok], minlength=g.n_prompts).astype(np.float64)
            mean = (np.bincount(p[ok], s[ok], minlength=g.n_prompts) / n)[p]
            dev = np.where(ok, s - mean, 0.0)
            sd = np.sqrt(np.bincount(p, dev * dev, minlength=g.n_prompts) / n)[p]
            out = np.where(sd > 0, dev / sd, 0.0)
    out[~ok] = np.nan
    return out


def features(weigher: Weigher, spec: Learned) -> np.ndarray:
    """The (samples x 2 methods) feature matrix: per method, its normalised score (nulls
    imputed with ``IMPUTE[norm]``) and its is-null flag."""
    cols = []
    for m in spec.methods:
        r = normalised(weigher, m, spec.norm)
        null = np.isnan(r)
        cols += [np.where(null, IMPUTE[spec.norm], r), null.astype(np.float64)]
    return np.column_stack(cols)


def fit_predict(model: str, x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """P(correct) of the rows of ``x_new`` from a model fitted on (``x``, ``y``); constant where
    ``y`` has one class (that class) or no row (``NO_TRAINING``)."""
    if y.size == 0:
        return np.full(len(x_new), NO_TRAINING)
    if y.all() or not y.any():
        return np.full(len(x_new), float(y[0]))
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    clf = LogisticRegression(C=1.0, max_iter=1000) if model == "lr" else GaussianNB()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return np.asarray(clf.predict_proba(x_new)[:, list(clf.classes_).index(True)],
                      dtype=np.float64)


def fold_models(weigher: Weigher, spec: Learned, every_row: bool = False
                ) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Each row's fold and, per fold f, the P(correct) of the model fitted on the graded
    samples of the other folds: for fold f's rows, or for every row with ``every_row`` (the
    other folds' rows then get in-sample predictions); None for a fold with no prompt."""
    g = weigher.group
    for m in spec.methods:
        if m not in g.scores:
            raise GvstoreError(f"no {m} scores loaded for {g.key}")
    u = g.utility
    graded = ~np.isnan(u)
    if not graded.any():
        raise GvstoreError(
            f"{spec} learns from graded samples, and {g.generator}/{g.task} round {g.round} "
            f"(verifier {g.verifier}) has none")
    x = features(weigher, spec)
    y = np.where(graded, u, 0.0) >= 0.5
    fold = fold_of(g.n_prompts, spec.folds, spec.seed)[g.pidx]
    preds: list[np.ndarray | None] = []
    for f in range(spec.folds):
        test = fold == f
        train = graded & ~test
        preds.append(fit_predict(spec.model, x[train], y[train], x if every_row else x[test])
                     if test.any() else None)
    return fold, preds


def learned_scores(weigher: Weigher, spec: Learned) -> np.ndarray:
    """Cross-fitted P(correct) of every row of the weigher's group (see the module doc)."""
    fold, preds = fold_models(weigher, spec)
    out = np.full(fold.size, NO_TRAINING)
    for f, pred in enumerate(preds):
        if pred is not None:
            out[fold == f] = pred
    return out
