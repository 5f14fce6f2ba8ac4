"""The ``ctranslate2`` back ends (CPU): a converted transformers model run by CTranslate2.

Two names, one per compute type, so records of one never mix with the other's (the name is
the records' ``backend``): ``ctranslate2`` (int8 weights, the fast default) and
``ctranslate2-float32`` (agrees with the transformers back end to float rounding). The model
is converted once (``ct2_convert``); prompts are rendered and tokenised by the model's own
transformers tokenizer exactly as the ``transformers`` back end does (``hf_text``), and token
ids go in as the converted vocabulary's tokens (the same ids, tested).

Reproducibility: CTranslate2 seeds a worker thread's random generator once, when the thread
first samples, from the process-wide ``set_random_seed``. So each sampled batch runs on a
freshly loaded generator seeded from its requests' seeds (loading takes about 0.05 s int8,
0.3 s float32 for a 135M model): the same batch gives the same texts whatever ran before it,
and a resumed generate step reproduces them. Greedy batches and scoring reuse one generator.

Stop strings end a row's decoding through CTranslate2's per-token callback (the row stops at
the token that completes the string; the text is cut there and the finish reason is
``"stop"``), like transformers' ``stop_strings``. Threads: ``intra_threads`` is the CPU thread
count of ``backends/threads.py`` (``threads`` option, else ``$GVSTORE_THREADS``, else the CPUs
this process may use); the bundled GNU OpenMP follows the passive wait policy set there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gvstore.backends import hf_text
from gvstore.backends.base import LoglikRequest, Sample, SampleRequest
from gvstore.backends.threads import cpu_threads, set_wait_policy
from gvstore.models import DEFAULT_MODELS_DIR, ModelSpec
from gvstore.records import Sampling

set_wait_policy()  # before ctranslate2 loads its OpenMP

import ctranslate2  # noqa: E402

from gvstore.backends.ct2_convert import convert  # noqa: E402
from gvstore.backends.hf import batch_seed  # noqa: E402

NAMES = {"int8": "ctranslate2", "float32": "ctranslate2-float32"}


def ct2_seed(seeds: Sequence[int]) -> int:
    """CTranslate2's 32-bit seed for a batch (never 2**32 - 1, which means 'random')."""
    return batch_seed(seeds) % 0xFFFFFFFF


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
    if len(rows) < 2:
        return [], [list(r) for r in rows]
    common = os.path.commonprefix([list(r) for r in rows])
    k = min(len(common), min(len(r) for r in rows) - 1)
    if k < MIN_SHARED:
        return [], [list(r) for r in rows]
    return list(common[:k]), [list(r[k:]) for r in rows]


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


class CTranslate2Backend:
    def __init__(
        self,
        model: ModelSpec,
        *,
        compute_type: str = "int8",
        batch_size: int = 8,
        models_dir: Path = DEFAULT_MODELS_DIR,
        threads: int | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        self.model = model
        self.compute_type = compute_type
        self.converted = convert(model, compute_type, models_dir)
        self.name = NAMES[compute_type]
        self.digest = self.converted.record_digest
        self.batch_size = max(1, batch_size)
        self.threads = cpu_threads(threads)
        src = self.converted.source
        kwargs = {"revision": model.revision} if model.source == "hub" and model.revision else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(src.path), **kwargs)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._eos = sorted(hf_text.eos_ids(self.tokenizer))
        self.generator: Any = self._load()
        self.loads = 1  # generators loaded (one per sampled batch), for tests
        self.calls = 0  # requests answered (sample + loglik), for tests and summaries

    def _load(self) -> Any:
        return ctranslate2.Generator(str(self.converted.path), device="cpu",
                                     compute_type=self.compute_type, inter_threads=1,
                                     intra_threads=self.threads)

    def _reseeded(self, seed: int) -> Any:
        """A fresh generator whose worker thread will sample from ``seed``."""
        self.generator = None  # free the old one (and its threads) first
        ctranslate2.set_random_seed(seed)
        self.generator = self._load()
        self.loads += 1
        return self.generator

    # ---- rendering -------------------------------------------------------------------------

    def render(self, prompt: str) -> str:
        """The text the model sees (the transformers back end's rendering)."""
        return hf_text.render(self.tokenizer, self.model.kind, prompt)

    def prompt_ids(self, prompt: str) -> list[int]:
        """The token ids of a rendered prompt (the transformers back end's ids)."""
        return hf_text.encode(self.tokenizer, self.model.kind, self.render(prompt))

    def _tokens(self, ids: list[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(ids))

    # ---- sampling --------------------------------------------------------------------------

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        return hf_text.sample_in_batches(requests, self.batch_size, self._sample_batch)

    def _sample_batch(self, reqs: Sequence[SampleRequest], sp: Sampling) -> list[Sample]:
        starts = [self._tokens(self.prompt_ids(r.prompt)) for r in reqs]
        kwargs: dict[str, Any] = {
            "max_length": sp.max_tokens, "include_prompt_in_result": False,
            "return_end_token": True, "end_token": self._eos,
        }
        if sp.temperature > 0:
            kwargs.update(sampling_topk=sp.top_k, sampling_topp=sp.top_p,
                          sampling_temperature=sp.temperature)
            generator = self._reseeded(ct2_seed([r.seed for r in reqs]))
        else:
            kwargs.update(sampling_topk=1)
            generator = self.generator
        if sp.stop:
            kwargs["callback"] = self._stopper(len(reqs), sp.stop)
        shared, rest = split_shared(starts)
        if shared:
            kwargs["static_prompt"] = shared
        results = generator.generate_batch(rest, **kwargs)
        self.calls += len(reqs)
        return [hf_text.finish(self.tokenizer, list(r.sequences_ids[0]), sp) for r in results]

    def _stopper(self, n: int, stops: Sequence[str]) -> Callable[[Any], bool]:
        """A per-token callback that ends a row once its text holds a stop string (it looks at
        the last tokens only: enough for the longest stop string, even in byte tokens)."""
        rows: list[list[int]] = [[] for _ in range(n)]
        window = 4 * max(len(s) for s in stops) + 4
        decode = self.tokenizer.decode

        def callback(step: Any) -> bool:
            row = rows[step.batch_id]
            row.append(step.token_id)
            tail = decode(row[-window:], skip_special_tokens=True)
            return any(s in tail for s in stops)

        return callback

    # ---- log-likelihoods -------------------------------------------------------------------

    def loglik(self, requests: Sequence[LoglikRequest]) -> list[tuple[float, int]]:
        """Sum of log p(continuation tokens | rendered prompt), tokenised apart as the
        transformers back end does. A continuation of k tokens needs the log-probabilities at
        the prompt's last position and its first k - 1 positions after it: one row (prompt +
        continuation minus its last token) through ``forward_batch``. Rows that another row
        starts with are not run again (``scoring_rows``): the two answers ``mc`` scores share
        one row."""
        needs: list[tuple[int, ...]] = []
        conts: list[list[int]] = []
        for req in requests:
            p = self.prompt_ids(req.prompt)
            c: list[int] = self.tokenizer(req.continuation,
                                          add_special_tokens=False)["input_ids"]
            needs.append(tuple(p + c[:-1]) if c else ())
            conts.append(c)
        live = [i for i, c in enumerate(conts) if c]
        rows, where = scoring_rows([needs[i] for i in live])
        wanted: dict[int, list[int]] = {}
        for i, r in zip(live, where, strict=True):
            wanted.setdefault(r, []).append(i)
        out: list[tuple[float, int]] = [(0.0, 0)] * len(requests)
        for first, logp in self._row_log_probs(rows):
            for r in range(first, first + len(logp)):
                for i in wanted.get(r, []):
                    c = conts[i]
                    start = len(needs[i]) - len(c)  # the position that predicts c[0]
                    total = 0.0
                    for k, t in enumerate(c):
                        total += float(logp[r - first][start + k][t])
                    out[i] = (total, len(c))
        self.calls += len(requests)
        return out

    def _row_log_probs(self, rows: Sequence[tuple[int, ...]]) -> Iterator[tuple[int, Any]]:
        """(index of the chunk's first row, its log-probabilities: a numpy array of shape
        [rows, positions, vocabulary]) for a few rows at a time (``forward_batch``)."""
        import numpy as np

        first = 0
        for chunk in _chunks(rows, self.batch_size, SCORE_TOKENS):
            view = self.generator.forward_batch([list(r) for r in chunk], return_log_probs=True)
            yield first, np.asarray(view)
            first += len(chunk)

    def close(self) -> None:
        self.generator = None


def int8(model: ModelSpec, **options: Any) -> CTranslate2Backend:
    """The ``ctranslate2`` back end: int8 weights."""
    return CTranslate2Backend(model, compute_type="int8", **options)


def float32(model: ModelSpec, **options: Any) -> CTranslate2Backend:
    """The ``ctranslate2-float32`` back end: float32 weights."""
    return CTranslate2Backend(model, compute_type="float32", **options)


def _chunks(rows: Sequence[tuple[int, ...]], size: int,
            tokens: int) -> Iterator[Sequence[tuple[int, ...]]]:
    """Consecutive rows, at most ``size`` a chunk and (beyond its first row) at most ``tokens``
    padded tokens."""
    i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and j - i < size and (j + 1 - i) * max(
                len(r) for r in rows[i:j + 1]) <= tokens:
            j += 1
        yield rows[i:j]
        i = j
