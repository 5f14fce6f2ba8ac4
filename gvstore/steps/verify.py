"""The verify step: turn generations into proxy utilities, asking the verifier only for
missing keys.

Like ``gvstore.steps.generate``: every request's record key is known before any model call (the
seed comes from the base seed, the generation id, the method and the repeat index); the store
says which keys are missing; the back end is made (``backend_factory``) only if any is; each
batch is written whole (one ``add_batch``). The batch layout is fixed by the request list:
requests are ordered by repeat index, then the generation's sample index, then prompt, and
cut into batches of ``batch_size`` within each (repeat, sample index). A killed run therefore
resumes with the same layouts, and on the same back end gets the same outputs.

``mc`` and the ``cot_*`` methods write ``Verification`` records here; ``tournament`` writes
``Comparison`` records, round by round (``gvstore.verifiers.tournament``). The library prints
nothing: progress goes to the callback, results into the returned ``VerifySummary``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gvstore.backends.base import Backend, SampleRequest
from gvstore.records import Generation, Provenance, Verification, record_key
from gvstore.store import Store
from gvstore.verifiers import cot, mc
from gvstore.verifiers.common import (
    ProgressCallback,
    Selection,
    VerifySpec,
    VerifySummary,
    cut,
    histogram,
    problem_text,
    request_seed,
    solution_text,
)
from gvstore.verifiers.templates import Template, get_template, mc_answers


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
        sampling=None if spec.method == "mc" else spec.sampling,
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
        for _, gens in sorted(by_index.items()):
            row = []
            for g in gens:
                tpl = get_template(spec.method, g.task, spec.verifier_kind)
                seed = 0 if spec.method == "mc" else request_seed(
                    spec.seed, g.id, spec.method, i)
                text = tpl.render(problem=problem_text(selection.prompts[g.prompt_id]),
                                  solution=solution_text(g))
                key = record_key(_record(spec, g, tpl, i, seed))
                row.append(Request(g, text, tpl, i, seed, key))
            batches.extend(cut(row, spec.batch_size))
    return batches


def _call(backend: Backend, spec: VerifySpec,
          batch: Sequence[Request]) -> list[dict[str, object]]:
    """The output fields of each request of one batch."""
    if spec.method == "mc":
        answers = mc_answers(spec.verifier_kind)
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
        score, status = cot.parse(spec.method, s.text)
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
) -> VerifySummary:
    """Verify what is missing with ``spec.method``. ``backend_factory`` is called only if
    anything is."""
    if spec.method == "tournament":
        from gvstore.verifiers import tournament

        return tournament.run(store, folder, selection, spec, backend_factory,
                              progress=progress, flush_seconds=flush_seconds)
    start = time.monotonic()
    summary = VerifySummary(method=spec.method, verifier=spec.verifier,
                            generations=len(selection.generations),
                            no_prompt=selection.no_prompt)
    batches = plan(selection, spec)
    keys = [r.key for b in batches for r in b]
    summary.requested = len(keys)
    # The folder's lock is taken before planning: a second writer stops here, before it
    # loads a model or repeats the first one's work.
    with store.writer(folder, flush_seconds=flush_seconds) as w:
        missing = set(store.missing(keys, kind="verification"))
        summary.present = summary.requested - len(missing)
        todo = [b for b in batches if any(r.key in missing for r in b)]
        made: list[Verification] = []
        if todo:
            host = socket.gethostname()
            backend = backend_factory()
            if progress is not None:
                progress(0, len(missing))
            for batch in todo:
                t0 = time.monotonic()
                outputs = _call(backend, spec, batch)
                dt = time.monotonic() - t0
                summary.model_seconds += dt
                summary.batches_run += 1
                recs = []
                for r, out in zip(batch, outputs, strict=True):
                    if r.key not in missing:
                        summary.extra += 1
                        continue
                    prov = Provenance(time=time.time(), host=host, duration_s=dt / len(batch))
                    recs.append(_record(spec, r.generation, r.template, r.sample_index, r.seed,
                                        prov=prov, **out))
                made.extend(w.add_batch(recs))  # type: ignore[arg-type]
                summary.verified += len(recs)
                if progress is not None:
                    progress(summary.verified, len(missing))
    _tally(store, summary, set(keys), made)
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
    summary.histogram = histogram(summary.method, (r.score for r in recs.values()))
