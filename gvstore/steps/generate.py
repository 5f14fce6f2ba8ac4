"""The generate step: sample n answers per prompt, asking the model only for missing keys.

For a model, a task, a prompt subset and n, every (prompt, sample index) pair is a request
whose ``Generation`` key is known before any model call (the seed comes from the base seed,
the prompt id and the sample index). The store says which keys are missing; only those
batches run, and a run writes segments as it goes.

Batch layout is fixed by the request list: requests are ordered by sample index, then prompt,
and cut into batches of ``batch_size`` within each sample index. So raising n from 8 to 16
runs exactly the new samples, and a batch is written whole or not at all (one segment), so a
killed run resumes with the same layouts and therefore the same texts on the same back end.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gvstore.backends.base import Backend, SampleRequest
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Prompt, Provenance, Sampling, record_key, seal
from gvstore.store import Store

ProgressCallback = Callable[[int, int, int], None]
"""Called as ``(samples done, samples to do, tokens so far)``."""


def sample_seed(base_seed: int, prompt_id: str, sample_index: int) -> int:
    """The seed of one request, derived from what identifies it."""
    h = hashlib.sha256(f"{base_seed}|{prompt_id}|{sample_index}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class Request:
    prompt: Prompt
    sample_index: int
    seed: int
    key: str


@dataclass
class GenerateSummary:
    prompts: int = 0
    requested: int = 0
    present: int = 0
    generated: int = 0
    batches_run: int = 0
    extra_samples: int = 0
    """Samples computed again only to keep a partly written batch's layout (not written)."""
    tokens: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    finish: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "prompts": self.prompts, "requested": self.requested, "present": self.present,
            "generated": self.generated, "batches_run": self.batches_run,
            "extra_samples": self.extra_samples, "tokens": self.tokens,
            "seconds": round(self.seconds, 3), "model_seconds": round(self.model_seconds, 3),
            "samples_per_s": round(self.generated / self.model_seconds, 3)
            if self.model_seconds else None,
            "tokens_per_s": round(self.tokens / self.model_seconds, 3)
            if self.model_seconds else None,
            "finish": self.finish,
        }


@dataclass(frozen=True)
class GenerateSpec:
    """What one generate run asks for (the model is given apart)."""

    model: str
    model_digest: str
    backend: str
    sampling: Sampling
    n: int
    seed: int = 0
    round: int = 0
    batch_size: int = 8

    def check(self) -> None:
        if self.n < 1:
            raise GvstoreError(f"n (samples per prompt) must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise GvstoreError(f"batch size must be >= 1, got {self.batch_size}")
        sp = self.sampling
        if sp.temperature < 0 or not 0 < sp.top_p <= 1 or sp.top_k < 0 or sp.max_tokens < 1:
            raise GvstoreError(
                "sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0, max_tokens >= 1"
            )


def _template(spec: GenerateSpec, prompt: Prompt, i: int, seed: int) -> Generation:
    return Generation(
        prompt_id=prompt.id, task=prompt.task, model=spec.model,
        model_digest=spec.model_digest, backend=spec.backend, sampling=spec.sampling,
        sample_index=i, seed=seed, round=spec.round, text="",
    )


def plan(prompts: Sequence[Prompt], spec: GenerateSpec) -> list[list[Request]]:
    """Every request, in batches: by sample index, then prompt order."""
    spec.check()
    batches: list[list[Request]] = []
    for i in range(spec.n):
        row = []
        for p in prompts:
            seed = sample_seed(spec.seed, p.id, i)
            row.append(Request(p, i, seed, record_key(_template(spec, p, i, seed))))
        batches.extend(row[k:k + spec.batch_size] for k in range(0, len(row), spec.batch_size))
    return batches


def run(
    store: Store,
    folder: str,
    prompts: Sequence[Prompt],
    spec: GenerateSpec,
    backend_factory: Callable[[], Backend],
    *,
    progress: ProgressCallback | None = None,
    flush_seconds: float = 30.0,
) -> GenerateSummary:
    """Generate what is missing. ``backend_factory`` is called only if anything is."""
    start = time.monotonic()
    prompts = [p if p.id else seal(p) for p in prompts]
    summary = GenerateSummary(prompts=len(prompts), requested=len(prompts) * spec.n)
    batches = plan(prompts, spec)
    host = socket.gethostname()
    # The folder's lock is taken before planning: a second writer stops here, before it
    # loads a model or repeats the first one's work.
    with store.writer(folder, flush_seconds=flush_seconds) as w:
        missing = set(store.missing([r.key for b in batches for r in b], kind="generation"))
        new_prompts = store.missing([p.key for p in prompts], kind="prompt")
        summary.present = summary.requested - len(missing)
        todo = [b for b in batches if any(r.key in missing for r in b)]
        if new_prompts:
            wanted = set(new_prompts)
            w.add_batch([p for p in prompts if p.key in wanted])
        if not todo:
            summary.seconds = time.monotonic() - start
            return summary
        backend = backend_factory()
        if progress is not None:
            progress(0, len(missing), 0)
        for batch in todo:
            t0 = time.monotonic()
            samples = backend.sample(
                [SampleRequest(r.prompt.text, spec.sampling, r.seed) for r in batch]
            )
            dt = time.monotonic() - t0
            summary.model_seconds += dt
            summary.batches_run += 1
            recs = []
            for r, s in zip(batch, samples, strict=True):
                if r.key not in missing:
                    summary.extra_samples += 1
                    continue
                recs.append(Generation(
                    prompt_id=r.prompt.id, task=r.prompt.task, model=spec.model,
                    model_digest=spec.model_digest, backend=spec.backend,
                    sampling=spec.sampling, sample_index=r.sample_index, seed=r.seed,
                    round=spec.round, text=s.text, n_tokens=s.n_tokens,
                    finish_reason=s.finish_reason,
                    prov=Provenance(time=time.time(), host=host, duration_s=dt / len(batch)),
                ))
                summary.tokens += s.n_tokens
                summary.finish[s.finish_reason] = summary.finish.get(s.finish_reason, 0) + 1
            w.add_batch(recs)
            summary.generated += len(recs)
            if progress is not None:
                progress(summary.generated, len(missing), summary.tokens)
    summary.seconds = time.monotonic() - start
    return summary
