"""The tournament step: single elimination over brackets of 2**r samples of one prompt.

Brackets. The generations of one prompt by one generator (model, weights digest and round)
are ordered by sample index; the first 2**r form bracket 0, the next 2**r bracket 1, and so
on; the last bracket may be short. In each bracket round the survivors, in bracket order, are
paired (1st with 2nd, 3rd with 4th, ...); an odd survivor out (the last) has a bye and
advances without a match (no record). A match's winner advances to the pair's place; a match
whose verdict did not parse (``winner`` null) advances side A. This is what
``gvstore.analysis`` reads back: a generation survives r rounds when it lost no match of
bracket rounds 0..r-1. A bracket of k samples needs ceil(log2 k) <= r rounds.

Matches. The verifier sees the problem and the two solutions as A and B; which of the pair is
A is a coin flip: the low bit of the match's recorded ``seed``, which also seeds the back end.
The seed derives from the base seed, the prompt, the pair (in bracket order), the bracket, its
size, the round, the repeat index and the sampling parameters (a ``Comparison`` key has no
sampling field, so the seed carries them: other sampling, other keys). The share of decided
matches won by A is the verifier's position bias (``VerifySummary.position_bias``).

Rounds depend on earlier winners, so the step runs round by round; each round is one request
list (by repeat, prompt, group, bracket, match) cut into batches of ``batch_size``. Resuming
reads the comparisons already stored, rebuilds every bracket from them and asks only for the
missing matches, in the same layouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gvstore.backends.base import Backend, Sample, SampleRequest
from gvstore.digest import seed as derive_seed
from gvstore.records import Comparison, Generation, Provenance, Record, record_key
from gvstore.steps.base import (
    Batches,
    ProgressCallback,
    auto_compact,
    cut,
    on_ray,
    write_batches,
)
from gvstore.steps.verify import Selection, VerifySpec, VerifySummary
from gvstore.store import Store
from gvstore.verifiers.common import problem_text, sampling_tag, solution_text
from gvstore.verifiers.parse import parse_choice
from gvstore.verifiers.templates import Template, get_template

if TYPE_CHECKING:
    from gvstore.params import RunnerParams

GroupKey = tuple[str, str, str, int]
"""(prompt id, generator model, model digest, round): the samples that compete."""


def brackets(gens: Sequence[Generation], rounds: int) -> list[list[Generation]]:
    """The brackets of one group's generations (already in sample order)."""
    size = 2 ** rounds
    return [list(gens[k:k + size]) for k in range(0, len(gens), size)]


def pairings(survivors: Sequence[Generation]
             ) -> tuple[list[tuple[Generation, Generation]], Generation | None]:
    """The matches of one bracket round (in bracket order) and the bye, if any."""
    pairs = [(survivors[k], survivors[k + 1]) for k in range(0, len(survivors) - 1, 2)]
    bye = survivors[-1] if len(survivors) % 2 else None
    return pairs, bye


def advancing(match: Comparison) -> str:
    """The id of the generation a recorded match sends on (side A if undecided)."""
    return match.winner if match.winner is not None else match.generation_a


@dataclass
class Bracket:
    """One bracket of one tournament (repeat ``index``) and its current survivors."""

    index: int
    group: GroupKey
    bracket: int
    survivors: list[Generation]
    problem: str
    template: Template


@dataclass(frozen=True)
class Match:
    bracket: Bracket
    a: Generation
    b: Generation
    seed: int
    key: str
    text: str


def _record(spec: VerifySpec, br: Bracket, rnd: int, a: Generation, b: Generation,
            seed: int, **outputs: object) -> Comparison:
    return Comparison(
        prompt_id=br.group[0], generation_a=a.id, generation_b=b.id, verifier=spec.verifier,
        verifier_digest=spec.verifier_digest, method="tournament",
        template=br.template.digest, backend=spec.backend, bracket=br.bracket,
        bracket_round=rnd, sample_index=br.index, seed=seed, **outputs,  # type: ignore[arg-type]
    )


def groups(selection: Selection) -> dict[GroupKey, list[Generation]]:
    """The competing samples of each prompt and generator, in sample order."""
    out: dict[GroupKey, list[Generation]] = {}
    for g in selection.generations:  # already ordered by prompt, sample index, id
        out.setdefault((g.prompt_id, g.model, g.model_digest, g.round), []).append(g)
    return out


def start(selection: Selection, spec: VerifySpec) -> list[Bracket]:
    """Every bracket of every tournament, before round 0."""
    out: list[Bracket] = []
    grouped = groups(selection)
    for i in range(spec.repeats):
        for key, gens in grouped.items():
            tpl = get_template("tournament", gens[0].task, spec.verifier_kind)
            problem = problem_text(selection.prompts[key[0]])
            for b, members in enumerate(brackets(gens, spec.rounds)):
                out.append(Bracket(i, key, b, members, problem, tpl))
    return out


def matches(brs: Sequence[Bracket], spec: VerifySpec, rnd: int) -> list[Match]:
    """The matches of bracket round ``rnd``, given each bracket's survivors."""
    out: list[Match] = []
    tag = sampling_tag(spec.sampling)
    for br in brs:
        pairs, _ = pairings(br.survivors)
        for x, y in pairs:
            seed = derive_seed(spec.seed, "tournament", br.group[0], x.id, y.id, br.bracket,
                                2 ** spec.rounds, rnd, br.index, tag)
            a, b = (y, x) if seed & 1 else (x, y)
            key = record_key(_record(spec, br, rnd, a, b, seed))
            text = br.template.render(problem=br.problem, solution_a=solution_text(a),
                                      solution_b=solution_text(b))
            out.append(Match(br, a, b, seed, key, text))
    return out


def total_matches(brs: Sequence[Bracket]) -> int:
    """Matches a full run plays: k - 1 per bracket of k samples."""
    return sum(max(len(br.survivors) - 1, 0) for br in brs)


class _Lazy:
    """The back end, made on the first batch that needs it; ``made`` then reports progress."""

    def __init__(self, factory: Callable[[], Backend], made: Callable[[], None]) -> None:
        self.factory, self.made = factory, made
        self.backend: Backend | None = None

    def __call__(self) -> Backend:
        if self.backend is None:
            self.backend = self.factory()
            self.made()
        return self.backend


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
    """Play every missing match, round by round; see the module docstring. With a ``ray``
    runner each round's missing matches run on a fresh actor pool."""
    spec.check()
    t_start = time.monotonic()
    summary = VerifySummary(method="tournament", verifier=spec.verifier,
                            generations=len(selection.generations),
                            no_prompt=selection.no_prompt)
    stored = _stored(store, spec, set(selection.prompts))
    brs = start(selection, spec)
    total = summary.requested = total_matches(brs)
    by_id = {g.id: g for g in selection.generations}
    settled = [0]

    def report() -> None:
        if progress is not None:
            progress(settled[0], total, 0)

    backend = _Lazy(backend_factory, report)
    on_pool = runner is not None and runner.kind == "ray"
    with store.writer(folder, flush_seconds=flush_seconds) as w:
        for rnd in range(spec.rounds):
            round_matches = matches(brs, spec, rnd)
            if not round_matches:
                break
            summary.rounds_played = rnd + 1
            if rnd == 0:
                summary.foreign = _foreign(stored, round_matches, spec.repeats)
            missing = {m.key for m in round_matches if m.key not in stored}
            how, batches = _batches(spec, rnd, stored), cut(round_matches, spec.batch_size)
            if on_pool and missing:
                assert runner is not None
                on_ray(runner, w, batches, missing, summary, backend_factory, how)
            elif not on_pool:
                write_batches(w, batches, missing, summary, backend, how)
            _advance(brs, round_matches, stored, by_id, summary)
            settled[0] += len(round_matches)
            if backend.backend is not None or (on_pool and summary.batches_run):
                report()
    if summary.made:
        auto_compact(store, folder)
    summary.present = summary.requested - summary.made
    summary.seconds = time.monotonic() - t_start
    return summary


def _stored(store: Store, spec: VerifySpec, prompt_ids: set[str]) -> dict[str, Comparison]:
    """The tournament matches this verifier already played on these prompts, by key."""
    stored: dict[str, Comparison] = {}
    for rec in store.iter_records(kinds=("comparison",)):
        if (isinstance(rec, Comparison) and rec.method == "tournament"
                and rec.verifier == spec.verifier and rec.prompt_id in prompt_ids):
            stored.setdefault(rec.key, rec)
    return stored


def _foreign(stored: dict[str, Comparison], round0: Sequence[Match], repeats: int) -> int:
    """Stored round-0 matches of these repeats that this plan does not name."""
    planned = {m.key for m in round0}
    return sum(1 for c in stored.values()
               if c.bracket_round == 0 and c.sample_index < repeats and c.key not in planned)


def _batches(spec: VerifySpec, rnd: int, stored: dict[str, Comparison]
             ) -> Batches[Match, Sample]:
    """How one bracket round's matches are asked and recorded (into ``stored`` too)."""

    def call(backend: Backend, batch: Sequence[Match]) -> list[Sample]:
        return backend.sample([SampleRequest(m.text, spec.sampling, m.seed) for m in batch])

    def make(m: Match, s: Sample, prov: Provenance) -> Record:
        got = parse_choice(s.text)
        winner = None
        if got.value == "A":
            winner = m.a.id
        elif got.value == "B":
            winner = m.b.id
        return _record(spec, m.bracket, rnd, m.a, m.b, m.seed, raw=s.text, winner=winner,
                       parse_status=got.status, prov=prov)

    def written(recs: list[Record]) -> None:
        for rec in recs:
            stored[rec.key] = rec  # type: ignore[assignment]

    return Batches(call, make, written)


def _advance(brs: Sequence[Bracket], round_matches: Sequence[Match],
             stored: dict[str, Comparison], by_id: dict[str, Generation],
             summary: VerifySummary) -> None:
    """Advance every bracket from the round's records (stored before or written now)."""
    winners: dict[int, list[Generation]] = {}
    for m in round_matches:
        rec = stored[m.key]
        winners.setdefault(id(m.bracket), []).append(by_id[advancing(rec)])
        _count(summary, rec)
    for br in brs:
        nxt = winners.get(id(br))
        if nxt is None:
            continue  # no match this round: the bracket is decided
        _, bye = pairings(br.survivors)
        if bye is not None:
            nxt.append(bye)
            summary.byes += 1
        br.survivors = nxt


def _count(summary: VerifySummary, rec: Comparison) -> None:
    summary.statuses[rec.parse_status] = summary.statuses.get(rec.parse_status, 0) + 1
    if rec.winner is not None:
        summary.decided += 1
        if rec.winner == rec.generation_a:
            summary.a_wins += 1
