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

from collections.abc import Callable, Sequence
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
        results = generator.generate_batch(starts, **kwargs)
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
        transformers back end does. ``score_batch`` gives the log-probability of each token
        after the first given the ones before it, so the continuation's are the last ones."""
        out: list[tuple[float, int]] = []
        for i in range(0, len(requests), self.batch_size):
            chunk = requests[i:i + self.batch_size]
            rows = []
            for r in chunk:
                p = self.prompt_ids(r.prompt)
                c: list[int] = self.tokenizer(r.continuation,
                                              add_special_tokens=False)["input_ids"]
                rows.append((p, c))
            results = self.generator.score_batch([self._tokens(p + c) for p, c in rows],
                                                 max_input_length=0)
            for (_, c), res in zip(rows, results, strict=True):
                logp = list(res.log_probs)
                total = 0.0
                for v in logp[len(logp) - len(c):]:
                    total += float(v)
                out.append((total, len(c)))
            self.calls += len(chunk)
        return out

    def close(self) -> None:
        self.generator = None


def int8(model: ModelSpec, **options: Any) -> CTranslate2Backend:
    """The ``ctranslate2`` back end: int8 weights."""
    return CTranslate2Backend(model, compute_type="int8", **options)


def float32(model: ModelSpec, **options: Any) -> CTranslate2Backend:
    """The ``ctranslate2-float32`` back end: float32 weights."""
    return CTranslate2Backend(model, compute_type="float32", **options)
