"""Array helpers of the analysis frames: finding handles among handles, the canonical row
order, and per-row means of repeated scores (numpy only)."""

from __future__ import annotations

import numpy as np


def lookup(
    keys: np.ndarray, wanted: np.ndarray, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(index into ``wanted``, index into ``keys``) of the ``wanted`` found among ``keys``
    (distinct values); ``order`` is ``np.argsort(keys)`` if already known."""
    if keys.size == 0 or wanted.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(keys) if order is None else order
    sk = keys[order]
    # Looking up sorted needles walks the haystack in order: several times faster than
    # random probes on large arrays.
    ow = np.argsort(wanted)
    sw = wanted[ow]
    pos = np.minimum(np.searchsorted(sk, sw), sk.size - 1)
    hit = sk[pos] == sw
    return ow[hit], order[pos[hit]]


def canonical_order(prompt: np.ndarray, sample_index: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """The permutation that sorts rows by (prompt, sample_index, gen).

    Replayed generations mostly come in runs of one prompt in sample order (a prompt's run
    may be split across segments); then sorting the runs is enough, which is checked. Only
    if that check fails is every row sorted (a full lexicographic sort, several times slower).
    """
    n = prompt.size
    if n == 0:
        return np.zeros(0, np.int64)
    change = prompt[1:] != prompt[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    lengths = np.diff(np.append(starts, n))
    ro = np.lexsort((gen[starts], sample_index[starts], prompt[starts]))
    new_starts = np.cumsum(lengths[ro]) - lengths[ro]
    perm = np.repeat(starts[ro] - new_starts, lengths[ro]) + np.arange(n)
    p, s, g = prompt[perm], sample_index[perm], gen[perm]
    ok = (p[1:] > p[:-1]) | ((p[1:] == p[:-1]) & (
        (s[1:] > s[:-1]) | ((s[1:] == s[:-1]) & (g[1:] > g[:-1]))))
    if bool(ok.all()):
        return perm
    return np.lexsort((gen, sample_index, prompt))


def mean_scores(
    n_rows: int, rows: np.ndarray, score: np.ndarray
) -> np.ndarray:
    """Per row: the mean of the non-NaN ``score`` aimed at it (NaN if none): repeats averaged."""
    ok = ~np.isnan(score)
    total = np.bincount(rows[ok], score[ok], minlength=n_rows)
    count = np.bincount(rows[ok], minlength=n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
