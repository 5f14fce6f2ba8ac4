"""The generate step: sample n answers per prompt, asking the model only for missing keys.

For a model, a task, a prompt subset and n, every (prompt, sample index) pair is a request
whose ``Generation`` key is known before any model call (the seed comes from the base seed,
the prompt id and the sample index). The store says which keys are missing; only those
batches run, and a run writes segments as it goes.

Batch layout is fixed by the request list: requests are ordered by sample index, then prompt,
and cut into batches of ``batch_size`` within each sample index; with fewer prompts than
``batch_size``, whole sample indices share a batch (``steps.base.pack``). So raising n from 8
to 16 runs the new samples (and, when few prompts share a batch, the last block's present
ones again, discarded), and a batch is written whole or not at all (one segment), so a
killed run resumes with the same layouts and therefore the same texts on the same back end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gvstore.backends.base import Backend, Sample, SampleRequest
from gvstore.digest import seed as derive_seed
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Prompt, Provenance, Record, Sampling, record_key, seal
from gvstore.steps.base import (
    Batches,
    Progress,
    ProgressCallback,
    StepSummary,
    announced,
    finished,
    pack,
    run_batches,
    ticks,
)
from gvstore.store import Store
from gvstore.writer import Writer

if TYPE_CHECKING:
    from gvstore.models import ModelSpec
    from gvstore.params import RunnerParams, SampleParams, TaskEntry


@dataclass(frozen=True)
class Request:
    prompt: Prompt
    sample_index: int
    seed: int
    key: str


@dataclass
class GenerateSummary(StepSummary):
    """What a generate run did. ``extra``: samples computed again only to keep a partly
    written batch's layout (not written)."""

    prompts: int = 0
    tokens: int = 0
    finish: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "prompts": self.prompts, **self.counts("generated", "extra_samples"),
            "tokens": self.tokens, **self.timings(),
            "samples_per_s": round(self.made / self.model_seconds, 3)
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
        self.sampling.check()


def _record(spec: GenerateSpec, prompt: Prompt, i: int, seed: int,
            sample: Sample | None = None, prov: Provenance | None = None) -> Generation:
    """The generation of request ``(prompt, i)``; without ``sample``, the text-less template
    whose key is the request's."""
    out = {} if sample is None else {"text": sample.text, "n_tokens": sample.n_tokens,
                                     "finish_reason": sample.finish_reason}
    return Generation(
        prompt_id=prompt.id, task=prompt.task, model=spec.model,
        model_digest=spec.model_digest, backend=spec.backend, sampling=spec.sampling,
        sample_index=i, seed=seed, round=spec.round, prov=prov,
        **({"text": ""} | out),  # type: ignore[arg-type]
    )


def plan(prompts: Sequence[Prompt], spec: GenerateSpec) -> list[list[Request]]:
    """Every request, in batches: by sample index, then prompt order."""
    spec.check()
    rows: list[list[Request]] = []
    for i in range(spec.n):
        row = []
        for p in prompts:
            seed = derive_seed(spec.seed, p.id, i)
            row.append(Request(p, i, seed, record_key(_record(spec, p, i, seed))))
        rows.append(row)
    return pack(rows, spec.batch_size)


def run(
    store: Store,
    folder: str,
    prompts: Sequence[Prompt],
    spec: GenerateSpec,
    backend_factory: Callable[[], Backend],
    *,
    progress: ProgressCallback | None = None,
    flush_seconds: float = 30.0,
    runner: RunnerParams | None = None,
) -> GenerateSummary:
    """Generate what is missing. ``backend_factory`` is called only if anything is (on the
    workers, with a ``ray`` runner)."""
    start = time.monotonic()
    prompts = [p if p.id else seal(p) for p in prompts]
    summary = GenerateSummary(prompts=len(prompts))
    batches = plan(prompts, spec)
    todo = [0]

    def add_prompts(w: Writer) -> None:
        new_prompts = set(store.missing([p.key for p in prompts], kind="prompt"))
        if new_prompts:
            w.add_batch([p for p in prompts if p.key in new_prompts])

    def started(n: int) -> None:
        todo[0] = n
        if progress is not None:
            progress(0, n, 0)

    def written(recs: list[Record]) -> None:
        for g in recs:
            assert isinstance(g, Generation)
            summary.tokens += g.n_tokens
            summary.finish[g.finish_reason] = summary.finish.get(g.finish_reason, 0) + 1
        if progress is not None:
            progress(summary.made, todo[0], summary.tokens)

    how: Batches[Request, Sample] = Batches(
        lambda backend, batch: backend.sample(
            [SampleRequest(r.prompt.text, spec.sampling, r.seed) for r in batch]),
        lambda r, s, prov: _record(spec, r.prompt, r.sample_index, r.seed, s, prov),
        written)
    run_batches(store, folder, "generation", batches, summary, backend_factory, how,
                flush_seconds=flush_seconds, before=add_prompts, started=started,
                runner=runner)
    summary.seconds = time.monotonic() - start
    return summary


def task_prompts(task: str, entry: TaskEntry, *, seed: int) -> list[Prompt]:
    """The prompt records of one task's table entry (split, selection, k-shot); ``seed`` is
    the base seed (a stratified selection draws with it)."""
    from gvstore.tasks.registry import get_task
    from gvstore.tasks.select import entry_items

    t = get_task(task, entry.data)
    return [t.prompt_record(it, entry.kshot) for it in entry_items(t, entry, seed)]


def generate_task(
    store: Store,
    spec: ModelSpec,
    task: str,
    entry: TaskEntry,
    sample: SampleParams,
    *,
    seed: int,
    round_: int | None,
    models_dir: Path,
    folder: str,
    progress: Progress | None = None,
    more: Sequence[TaskEntry] = (),
    runner: RunnerParams | None = None,
) -> GenerateSummary:
    """Generate one model's missing samples of one task: ``entry``'s prompts, then those of
    each entry of ``more`` (disjoint prompts: the rounds' held-out set), in one batch loop. The
    model's weights are resolved (and digested) now; the model loads only if some sample is
    missing (on the workers, with a ``ray`` runner)."""
    from gvstore.backends import get_backend
    from gvstore.backends.base import model_digest

    prompt_recs = [p for e in (entry, *more) for p in task_prompts(task, e, seed=seed)]
    gspec = GenerateSpec(
        model=spec.name, model_digest=model_digest(sample.backend, spec, models_dir),
        backend=sample.backend,
        sampling=sample.sampling(), n=sample.n, seed=seed,
        round=spec.round if round_ is None else round_, batch_size=sample.batch_size,
    )
    gspec.check()

    def factory() -> Backend:
        return get_backend(sample.backend, spec, batch_size=sample.batch_size,
                           models_dir=models_dir)

    summary = run(store, folder, prompt_recs, gspec, announced(factory, progress),
                  progress=ticks(progress), runner=runner)
    return finished(summary, progress)
