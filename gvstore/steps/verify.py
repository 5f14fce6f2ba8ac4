"""The verify step: turn generations into proxy utilities, asking the verifier only for
missing keys.

Like ``gvstore.steps.generate``: every request's record key is known before any model call (the
seed comes from the base seed, the generation id, the method and the repeat index); the store
says which keys are missing; the back end is made (``backend_factory``) only if any is; each
batch is written whole (one ``add_batch``). The batch layout is fixed by the request list:
requests are ordered by repeat index, then the generation's sample index, then prompt, and
cut into batches of ``batch_size`` within each (repeat, sample index), whole sample indices
sharing a batch when they are short (``steps.base.pack``). A killed run therefore
resumes with the same layouts, and on the same back end gets the same outputs.

``mc`` and the ``cot_*`` methods write ``Verification`` records here; ``tournament`` writes
``Comparison`` records, round by round (``gvstore.steps.tournament``). The library prints
nothing: progress goes to the callback, results into the returned ``VerifySummary``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gvstore.backends.base import Backend, SampleRequest
from gvstore.digest import seed as derive_seed
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Prompt, Record, Sampling, Verification, record_key
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
from gvstore.verifiers import mc
from gvstore.verifiers.common import problem_text, solution_text
from gvstore.verifiers.registry import get_method
from gvstore.verifiers.templates import Template, get_template

if TYPE_CHECKING:
    from gvstore.models import ModelSpec
    from gvstore.params import Params, RunnerParams

DEFAULT_SAMPLING = Sampling(temperature=0.7, top_p=1.0, max_tokens=128)


@dataclass(frozen=True)
class VerifySpec:
    """What one verify run asks for (the generations are selected apart).

    ``sampling`` applies to the sampled methods (``cot_*``, ``tournament``); ``mc`` scores
    log-likelihoods and records no sampling. ``repeats`` is m, the verifications per
    generation (for a tournament: independent tournaments, each with its own A/B orders and
    seeds; the analysis reads the first). ``rounds`` is r: tournament brackets hold 2**r
    samples. ``verifier_kind`` is the verifier model's kind (``instruct`` or ``base``), which
    decides how ``mc`` phrases its answers.
    """

    method: str
    verifier: str
    verifier_digest: str
    backend: str = "transformers"
    verifier_kind: str = "instruct"
    sampling: Sampling = DEFAULT_SAMPLING
    repeats: int = 1
    rounds: int = 3
    seed: int = 0
    batch_size: int = 8

    def check(self) -> None:
        get_method(self.method)  # an unknown name: a one-line error listing the known
        if self.repeats < 1:
            raise GvstoreError(f"repeats (verifications per generation) must be >= 1, "
                               f"got {self.repeats}")
        if get_method(self.method).deterministic and self.repeats != 1:
            raise GvstoreError(
                "mc scores log-likelihoods, which are deterministic: a repeat would give the "
                f"same score again. Use repeats 1 for mc (got {self.repeats}); repeats measure "
                "the variance of the sampled methods (cot_binary, cot_score, tournament)"
            )
        if self.batch_size < 1:
            raise GvstoreError(f"batch size must be >= 1, got {self.batch_size}")
        if not 1 <= self.rounds <= 16:
            raise GvstoreError(f"tournament rounds must be 1..16 (brackets of 2**rounds "
                               f"samples), got {self.rounds}")
        self.sampling.check()


@dataclass(kw_only=True)
class VerifySummary(StepSummary):
    """What a verify run did. ``statuses`` and ``histogram`` cover every record the run's plan
    names (those already stored and those made now); timings cover the calls made now.
    ``made``: records written now (verifications, or tournament matches)."""

    method: str
    verifier: str
    generations: int = 0
    no_prompt: int = 0
    """Generations skipped because the store holds no prompt record for them."""
    statuses: dict[str, int] = field(default_factory=dict)
    histogram: dict[str, int] = field(default_factory=dict)
    # tournament only
    rounds_played: int = 0
    byes: int = 0
    decided: int = 0
    a_wins: int = 0
    foreign: int = 0
    """Round-0 matches already stored for these prompts by this verifier that this plan does
    not name (another bracket size, base seed, sampling or template): the analysis would read
    both tournaments together."""

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def parse_failure_rate(self) -> float | None:
        n = self.total
        return (n - self.statuses.get("ok", 0)) / n if n else None

    @property
    def seconds_per_call(self) -> float | None:
        return self.model_seconds / self.made if self.made else None

    @property
    def position_bias(self) -> float | None:
        """Share of decided tournament matches won by side A (0.5: no bias)."""
        return self.a_wins / self.decided if self.decided else None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "method": self.method, "verifier": self.verifier,
            "generations": self.generations, "no_prompt": self.no_prompt,
            **self.counts("verified", "extra"), **self.timings(),
            "seconds_per_call": _round(self.seconds_per_call),
            "parse_failure_rate": _round(self.parse_failure_rate),
            "statuses": dict(sorted(self.statuses.items())), "histogram": self.histogram,
        }
        if self.method == "tournament":
            out |= {"rounds_played": self.rounds_played, "byes": self.byes,
                    "decided": self.decided, "a_wins": self.a_wins,
                    "position_bias": _round(self.position_bias), "foreign": self.foreign}
        return out


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


# ---- the generations to verify ----------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Generations of one task (and optionally one generator and round), with their prompts,
    in a fixed order: prompt (by item id), then sample index, then id."""

    generations: list[Generation]
    prompts: dict[str, Prompt]
    no_prompt: int = 0


def select(store: Store, task: str, generator: str | None = None,
           round_: int | None = None, prompt_ids: Collection[str] | None = None) -> Selection:
    """The generations of ``task`` in the store (one scan), filtered by generator, round and
    (``prompt_ids``) prompt record id."""
    gens: list[Generation] = []
    prompts: dict[str, Prompt] = {}
    for rec in store.iter_records(kinds=("prompt", "generation")):
        if isinstance(rec, Prompt):
            prompts[rec.id] = rec
        elif isinstance(rec, Generation) and rec.task == task:
            if generator is not None and rec.model != generator:
                continue
            if round_ is not None and rec.round != round_:
                continue
            gens.append(rec)
    kept = [g for g in gens if g.prompt_id in prompts
            and (prompt_ids is None or g.prompt_id in prompt_ids)]

    def order(g: Generation) -> tuple[str, str, int, str]:
        p = prompts[g.prompt_id]
        return (p.item_id, p.id, g.sample_index, g.id)

    kept.sort(key=order)
    used = {g.prompt_id for g in kept}
    return Selection(kept, {k: v for k, v in prompts.items() if k in used},
                     len(gens) - len(kept))



@dataclass(frozen=True)
class Request:
    """One verification to make: the generation, its prompt text for the verifier, its key."""

    generation: Generation
    text: str
    template: Template
    sample_index: int
    seed: int
    key: str


def _record(spec: VerifySpec, gen: Generation, tpl: Template, i: int, seed: int,
            **outputs: object) -> Verification:
    return Verification(
        generation_id=gen.id, verifier=spec.verifier, verifier_digest=spec.verifier_digest,
        method=spec.method, template=tpl.digest, backend=spec.backend,
        sampling=None if get_method(spec.method).deterministic else spec.sampling,
        sample_index=i, seed=seed, **outputs,  # type: ignore[arg-type]
    )


def plan(selection: Selection, spec: VerifySpec) -> list[list[Request]]:
    """Every verification request of ``mc`` or a ``cot_*`` method, in batches."""
    spec.check()
    by_index: dict[int, list[Generation]] = {}
    for g in selection.generations:
        by_index.setdefault(g.sample_index, []).append(g)
    batches: list[list[Request]] = []
    for i in range(spec.repeats):
        rows: list[list[Request]] = []
        for _, gens in sorted(by_index.items()):
            row = []
            for g in gens:
                tpl = get_template(spec.method, g.task, spec.verifier_kind)
                seed = 0 if get_method(spec.method).deterministic else derive_seed(
                    spec.seed, g.id, spec.method, i)
                text = tpl.render(problem=problem_text(selection.prompts[g.prompt_id]),
                                  solution=solution_text(g))
                key = record_key(_record(spec, g, tpl, i, seed))
                row.append(Request(g, text, tpl, i, seed, key))
            rows.append(row)
        batches.extend(pack(rows, spec.batch_size))
    return batches


def _call(backend: Backend, spec: VerifySpec,
          batch: Sequence[Request]) -> list[dict[str, object]]:
    """The output fields of each request of one batch (by the method's call kind)."""
    method = get_method(spec.method)
    if method.call == "loglik":
        answers = method.loglik_answers(spec.verifier_kind)
        reqs = [lr for r in batch for lr in mc.requests(r.text, answers)]
        ll = backend.loglik(reqs)
        out: list[dict[str, object]] = []
        for k in range(len(batch)):
            res = mc.result(answers, ll[2 * k], ll[2 * k + 1])
            out.append({"raw": res.raw, "score": res.score, "parse_status": "ok",
                        "p_correct": res.p_correct, "p_incorrect": res.p_incorrect})
        return out
    samples = backend.sample([SampleRequest(r.text, spec.sampling, r.seed) for r in batch])
    out = []
    for s in samples:
        score, status = method.verdict(s.text)
        out.append({"raw": s.text, "score": score, "parse_status": status})
    return out


def run(
    store: Store,
    folder: str,
    selection: Selection,
    spec: VerifySpec,
    backend_factory: Callable[[], Backend],
    *,
    progress: ProgressCallback | None = None,
    flush_seconds: float = 30.0,
    runner: RunnerParams | None = None,
) -> VerifySummary:
    """Verify what is missing with ``spec.method``. ``backend_factory`` is called only if
    anything is (on the workers, with a ``ray`` runner)."""
    if get_method(spec.method).call == "pairwise":
        from gvstore.steps import tournament

        return tournament.run(store, folder, selection, spec, backend_factory,
                              progress=progress, flush_seconds=flush_seconds, runner=runner)
    start = time.monotonic()
    summary = VerifySummary(method=spec.method, verifier=spec.verifier,
                            generations=len(selection.generations),
                            no_prompt=selection.no_prompt)
    batches = plan(selection, spec)
    made: list[Record] = []
    todo = [0]

    def written(recs: list[Record]) -> None:
        made.extend(recs)
        if progress is not None:
            progress(summary.made, todo[0], 0)

    def started(n: int) -> None:
        todo[0] = n
        if progress is not None:
            progress(0, n, 0)

    how: Batches[Request, dict[str, object]] = Batches(
        lambda backend, batch: _call(backend, spec, batch),
        lambda r, out, prov: _record(spec, r.generation, r.template, r.sample_index, r.seed,
                                     prov=prov, **out),
        written)
    run_batches(store, folder, "verification", batches, summary, backend_factory, how,
                flush_seconds=flush_seconds, started=started, runner=runner)
    _tally(store, summary, {r.key for b in batches for r in b}, made)  # type: ignore[arg-type]
    summary.seconds = time.monotonic() - start
    return summary


def _tally(store: Store, summary: VerifySummary, keys: set[str],
           made: Sequence[Verification]) -> None:
    """Parse statuses and the score histogram over every planned record (stored or new)."""
    recs: dict[str, Verification] = {r.key: r for r in made}
    if summary.present:
        for rec in store.iter_records(kinds=("verification",)):
            if isinstance(rec, Verification) and rec.key in keys:
                recs.setdefault(rec.key, rec)
    for rec in recs.values():
        summary.statuses[rec.parse_status] = summary.statuses.get(rec.parse_status, 0) + 1
    summary.histogram = get_method(summary.method).histogram(r.score for r in recs.values())


def verify_task(
    store: Store,
    verifier: ModelSpec,
    method: str,
    task: str,
    *,
    sampling: Sampling,
    repeats: int,
    rounds: int,
    seed: int,
    backend: str,
    batch_size: int,
    models_dir: Path,
    folder: str,
    generator: str | None = None,
    round_: int | None = None,
    prompt_ids: Collection[str] | None = None,
    progress: Progress | None = None,
    runner: RunnerParams | None = None,
) -> VerifySummary:
    """Verify one task's stored generations with one verifier and method. The verifier's
    weights are resolved (and digested) now; the model loads only if some verification is
    missing."""
    from gvstore.backends import get_backend
    from gvstore.backends.base import model_digest

    # The generations first: with nothing to verify, no model is converted or digested.
    selection = select(store, task, generator, round_, prompt_ids)
    if not selection.generations:
        raise GvstoreError(f"no generations of task {task!r} in {store.root}"
                           + (f" by {generator!r}" if generator else "")
                           + (f" in round {round_}" if round_ is not None else "")
                           + "; run `gvstore generate` first")
    vspec = VerifySpec(
        method=method, verifier=verifier.name,
        verifier_digest=model_digest(backend, verifier, models_dir), backend=backend,
        verifier_kind=verifier.kind, sampling=sampling, repeats=repeats, rounds=rounds,
        seed=seed, batch_size=batch_size,
    )
    vspec.check()

    def factory() -> Backend:
        return get_backend(backend, verifier, batch_size=batch_size, models_dir=models_dir)

    summary = run(store, folder, selection, vspec, announced(factory, progress),
                  progress=ticks(progress), runner=runner)
    return finished(summary, progress)


def verify_with_params(params: Params, store: Store, verifier: ModelSpec, method: str,
                       task: str, *, folder: str, progress: Progress | None = None,
                       generator: str | None = None, round_: int | None = None,
                       prompt_ids: Collection[str] | None = None) -> VerifySummary:
    """``verify_task`` with the ``verify`` section and base seed of a params file. ``mc``
    always makes one verification per generation (its scores are deterministic), so
    ``verify.repeats`` applies to the sampled methods only."""
    v = params.verify
    return verify_task(
        store, verifier, method, task,
        sampling=Sampling(temperature=v.temperature, max_tokens=v.max_tokens),
        repeats=1 if get_method(method).deterministic else v.repeats,
        rounds=v.tournament_rounds, seed=params.base.seed, backend=v.backend,
        batch_size=v.batch_size, models_dir=Path(params.base.models_dir), folder=folder,
        generator=generator, round_=round_, prompt_ids=prompt_ids, progress=progress,
        runner=params.runner)
