"""Which token rows the ``ctranslate2`` back end hands CTranslate2: a batch's shared start as
one static prompt, the fewest rows that cover a set of log-likelihood requests, and chunks of
rows sized for memory. Pure functions over token lists (no engine), tested on their own."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

MIN_SHARED = 8
"""Tokens a batch's rows must share at their start before they are run as one static prompt."""
SCORE_TOKENS = 2048
"""Tokens per ``forward_batch`` call of ``loglik`` (its log-probabilities over the whole
vocabulary take 4 bytes x 49,152 a token on SmolLM2: about 400 MB a call)."""


def split_shared(rows: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """The token prefix all ``rows`` share (at least ``MIN_SHARED`` tokens, each row keeping
    one of its own) and each row after it; ``([], rows)`` when they share less.

    CTranslate2 runs a shared prefix once, as a static prompt, and starts every row from its
    state: a study's prompts share their instruction and k-shot exemplars (181 of arith's 195
    tokens), its verifier prompts their instruction."""
    lists = [list(r) for r in rows]
    if len(lists) < 2:
        return [], lists
    common = os.path.commonprefix(lists)
    k = min(len(common), min(len(r) for r in lists) - 1)
    if k < MIN_SHARED:
        return [], lists
    return list(common[:k]), [r[k:] for r in lists]


def scoring_rows(needs: Sequence[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], list[int]]:
    """Rows to score so that every needed sequence is a prefix of one of them, and for each
    need the index of its row: a need that starts another (a one-token continuation's prompt,
    inside a longer one's) is read from that one's row instead of a row of its own.

    In sorted order a sequence that is a prefix of any later one is a prefix of the next."""
    order = sorted(range(len(needs)), key=lambda i: needs[i])
    rows: list[tuple[int, ...]] = []
    where = [0] * len(needs)
    after: int | None = None
    for i in reversed(order):
        need = needs[i]
        if after is not None and needs[after][:len(need)] == need:
            where[i] = where[after]
        else:
            where[i] = len(rows)
            rows.append(need)
        after = i
    return rows, where


def chunks(rows: Sequence[tuple[int, ...]], size: int,
            tokens: int) -> Iterator[Sequence[tuple[int, ...]]]:
    """Consecutive rows, at most ``size`` a chunk and (beyond its first row) at most ``tokens``
    padded tokens."""
    i = 0
    while i < len(rows):
        j, longest = i + 1, len(rows[i])
        while j < len(rows) and j - i < size and (j + 1 - i) * max(longest,
                                                                  len(rows[j])) <= tokens:
            longest = max(longest, len(rows[j]))
            j += 1
        yield rows[i:j]
        i = j
