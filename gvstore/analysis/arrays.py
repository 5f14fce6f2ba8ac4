"""Array helpers of the analysis frames: finding handles among handles, the canonical row
order, per-row means of repeated scores and the per-prompt sort order (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping

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


def prompt_order(starts: np.ndarray, pidx: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The row order that sorts ``s`` ascending within each prompt (rows in prompt order,
    ``starts`` the first row of each prompt), NaN last, ties in row order (stable)."""
    sizes = np.diff(starts)
    if sizes.size and (sizes == sizes[0]).all():
        # Every prompt has n samples: sort the (P, n) matrix row by row (NaN sort last).
        o = np.argsort(s.reshape(sizes.size, int(sizes[0])), axis=1, kind="stable")
        return (o + starts[:-1, None]).ravel()
    return np.lexsort((np.where(np.isnan(s), np.inf, s), pidx))


class PromptSort:
    """The per-prompt ascending order of one score array ``s``: ``order`` (``prompt_order``),
    ``sorted`` (``s[order]``), ``count`` (per prompt, its non-null scores: the first
    ``count`` of its sorted rows, NaN sorting last) and ``ranks`` (``weights.Sorted.ranks``).
    Each is computed on first use, unless ``given`` has it (the group cache saves them; a
    warm call does not sort or rank)."""

    def __init__(self, starts: np.ndarray, pidx: np.ndarray, s: np.ndarray,
                 given: Mapping[str, np.ndarray] | None = None) -> None:
        self.starts, self.pidx, self.s = starts, pidx, s
        self.given = given if given is not None else {}
        self._got: dict[str, np.ndarray] = {}

    def _get(self, name: str) -> np.ndarray | None:
        if name not in self._got and name in self.given:
            self._got[name] = self.given[name]
        return self._got.get(name)

    @property
    def order(self) -> np.ndarray:
        got = self._get("order")
        if got is None:
            got = self._got["order"] = prompt_order(self.starts, self.pidx, self.s)
        return got

    @property
    def sorted(self) -> np.ndarray:
        got = self._get("sorted")
        if got is None:
            got = self._got["sorted"] = self.s[self.order]
        return got

    @property
    def count(self) -> np.ndarray:
        got = self._get("count")
        if got is None:
            got = self._got["count"] = np.bincount(
                self.pidx, ~np.isnan(self.sorted), minlength=self.starts.size - 1
            ).astype(np.int64)
        return got

    @property
    def ranks(self) -> np.ndarray:
        """Per row: (average rank - 1) / (k - 1) among its prompt's k non-null scores (0.5 if
        k = 1; ties share their average rank); NaN for a null score (read-only use)."""
        got = self._get("ranks")
        if got is None:
            got = self._got["ranks"] = self._ranks()
        return got

    def _ranks(self) -> np.ndarray:
        v = self.sorted
        n = v.size
        pidx = self.pidx  # rows are in prompt order, so the sorted rows' prompts are pidx too
        i = np.arange(n)
        head = np.ones(n, dtype=bool)
        head[1:] = (v[1:] != v[:-1]) | (pidx[1:] != pidx[:-1])
        tail = np.ones(n, dtype=bool)
        tail[:-1] = head[1:]
        first = np.maximum.accumulate(np.where(head, i, 0))
        last = np.minimum.accumulate(np.where(tail, i, n)[::-1])[::-1]
        rank0 = (first + last) / 2.0 - self.starts[:-1][pidx]  # 0-based average rank
        k = self.count[pidx].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(k > 1, rank0 / (k - 1.0), 0.5)
        r[np.isnan(v)] = np.nan
        out = np.empty(n)
        out[self.order] = r
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """All four (computed now if need be): what the group cache saves."""
        return {"order": self.order, "sorted": self.sorted, "count": self.count,
                "ranks": self.ranks}
