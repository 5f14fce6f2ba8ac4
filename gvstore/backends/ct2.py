"""The ``ctranslate2`` back ends (CPU): a converted transformers model run by CTranslate2.

Two names, one per compute type, so records of one never mix with the other's (the name is
the records' ``backend``): ``ctranslate2`` (int8 weights, the fast default) and
``ctranslate2-float32`` (agrees with the transformers back end to float rounding). The model
is converted once (``ct2_convert``); prompts are rendered and tokenised by the model's own
transformers tokenizer exactly as the ``transformers`` back end does (``hf_text``), and token
ids go in as the converted vocabulary's tokens (the same ids, tested).

Reproducibility: CTranslate2 seeds a worker thread's random generator once, when the thread
first samples, from the process-wide ``set_random_seed``. So each sampled part (at most
``ROWS`` consecutive requests of a batch) runs on a freshly loaded generator, seeded from its
requests' seeds and made to sample once under a lock (loading takes about 0.05 s int8, 0.3 s
float32 for a 135M model): the same part gives the same texts whatever ran before it or beside
it, and a resumed generate step reproduces them. Greedy parts and scoring share a few loaded
generators.

Speed: the rows of a part share their chat template, instruction and k-shot exemplars; that
shared start runs once, as CTranslate2's static prompt (``ct2_rows.split_shared``).
``loglik`` reads both of ``mc``'s answers from one row (``ct2_rows.scoring_rows``).

Stop strings end a row's decoding through CTranslate2's per-token callback (the row stops at
the token that completes the string; the text is cut there and the finish reason is
``"stop"``), like transformers' ``stop_strings``. Threads: the CPU thread count of
``backends/threads.py`` (``threads`` option, else ``$GVSTORE_THREADS``, else the CPUs this
process may use) is split into single-threaded workers (``workers_for``) that run parts side
by side; the bundled GNU OpenMP follows the passive wait policy set there.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from gvstore.backends.ct2_rows import SCORE_TOKENS, chunks, scoring_rows, split_shared  # noqa: E402
from gvstore.backends.hf import batch_seed  # noqa: E402

NAMES = {"int8": "ctranslate2", "float32": "ctranslate2-float32"}


def ct2_seed(seeds: Sequence[int]) -> int:
    """CTranslate2's 32-bit seed for a batch (never 2**32 - 1, which means 'random')."""
    return batch_seed(seeds) % 0xFFFFFFFF


ROWS = 16
"""Rows per CTranslate2 call when sampling: a sampled batch of the step is run in parts of at
most this many rows, each on its own freshly seeded generator, so its texts depend on its own
rows and seeds only (not on the worker count). On 2 cores, two workers of 16 rows gave 181
tokens/s against 113 for one worker of 32 (the same 128 arith samples)."""
MAX_WORKERS = 4


def workers_for(threads: int) -> tuple[int, int]:
    """(workers, CPU threads each) for ``threads`` CPU threads: one single-threaded worker per
    thread up to ``MAX_WORKERS`` (a 135M model's small matrices scale better across
    independent batches than across the threads of one)."""
    workers = max(1, min(threads, MAX_WORKERS))
    return workers, max(1, threads // workers)


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
        self.workers, self.intra = workers_for(self.threads)
        src = self.converted.source
        kwargs = {"revision": model.revision} if model.source == "hub" and model.revision else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(src.path), **kwargs)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._eos = sorted(hf_text.eos_ids(self.tokenizer))
        self._seeding = threading.Lock()  # set_random_seed is process-wide
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()  # generators for greedy/scoring
        self._idle.put(self._load())
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self.loads = 1  # generators loaded (one per sampled part), for tests
        self.calls = 0  # requests answered (sample + loglik), for tests and summaries

    def _load(self) -> Any:
        return ctranslate2.Generator(str(self.converted.path), device="cpu",
                                     compute_type=self.compute_type, inter_threads=1,
                                     intra_threads=self.intra)

    def _reseeded(self, seed: int) -> Any:
        """A fresh generator whose worker thread samples from ``seed``: loaded and made to
        sample once (one token) while the process-wide seed is ``seed``, which is when its
        thread seeds its random generator."""
        with self._seeding:
            ctranslate2.set_random_seed(seed)
            generator = self._load()
            generator.generate_batch([self._tokens(self._eos[:1])], max_length=1,
                                     sampling_topk=2, include_prompt_in_result=False)
            self.loads += 1
        return generator

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` on the workers (in order)."""
        if self._pool is None or len(items) < 2:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))

    def _borrow(self) -> Any:
        """An idle shared generator (greedy sampling, scoring), or a new one when all are in
        use (at most one per worker thread ever is). Give it back with ``self._idle.put``."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._seeding:
                self.loads += 1
                return self._load()

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
        """Tokenising and decoding happen here, in the calling thread; the workers only run
        CTranslate2 (a fast tokenizer is not to be shared across threads)."""
        parts = hf_text.batches(requests, min(self.batch_size, ROWS))
        starts = [[self._tokens(self.prompt_ids(r.prompt)) for r in reqs] for reqs, _ in parts]
        done = self._map(lambda i: self._run_part(parts[i][0], parts[i][1], starts[i]),
                         range(len(parts)))
        self.calls += len(requests)
        return [hf_text.finish(self.tokenizer, ids, sp)
                for (_, sp), rows in zip(parts, done, strict=True) for ids in rows]

    def _run_part(self, reqs: Sequence[SampleRequest], sp: Sampling,
                  starts: list[list[str]]) -> list[list[int]]:
        """The generated token ids of one part (on a worker)."""
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
            generator = self._borrow()
        if sp.stop:
            kwargs["callback"] = self._stopper(len(reqs), sp.stop)
        shared, rest = split_shared(starts)
        if shared:
            kwargs["static_prompt"] = shared
        try:
            results = generator.generate_batch(rest, **kwargs)
        finally:
            if sp.temperature <= 0:
                self._idle.put(generator)
        return [list(r.sequences_ids[0]) for r in results]

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
        [rows, positions, vocabulary]) for a few rows at a time (``forward_batch``), a round
        of chunks (one per worker) at a time."""
        import numpy as np

        def score(chunk: Sequence[tuple[int, ...]]) -> Any:
            generator = self._borrow()
            try:
                return np.asarray(generator.forward_batch([list(r) for r in chunk],
                                                          return_log_probs=True))
            finally:
                self._idle.put(generator)

        per = max(1, min(self.batch_size, -(-len(rows) // self.workers)))  # a chunk a worker
        parts = list(chunks(rows, per, SCORE_TOKENS))
        first = 0
        for k in range(0, len(parts), self.workers):
            for part, logp in zip(parts[k:k + self.workers],
                                  self._map(score, parts[k:k + self.workers]), strict=True):
                yield first, logp
                first += len(part)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        while not self._idle.empty():
            self._idle.get_nowait()


def int8(model: ModelSpec, **options: Any) -> CTranslate2Backend:
    """The ``ctranslate2`` back end: int8 weights."""
    return CTranslate2Backend(model, compute_type="int8", **options)


def float32(model: ModelSpec, **options: Any) -> CTranslate2Backend:
    """The ``ctranslate2-float32`` back end: float32 weights."""
    return CTranslate2Backend(model, compute_type="float32", **options)

