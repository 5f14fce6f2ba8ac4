"""Tournament bracket logic with a scripted comparator (no model: this is about brackets)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import FakeBackend, StoreBuilder

from gvstore.backends.base import Sample, SampleRequest
from gvstore.records import Comparison, Sampling
from gvstore.steps.tournament import advancing
from gvstore.steps.verify import VerifySpec, run, select
from gvstore.store import Store
from gvstore.tasks.registry import get_task

QUALITY = re.compile(r"Solution A:\nquality=(\d+)\n\nSolution B:\nquality=(\d+)")


def scripted(undecided: Callable[[int, int], bool] = lambda a, b: False) -> FakeBackend:
    """A fake back end that prefers the solution of higher ``quality`` (the comparator's
    script), or answers with no verdict where ``undecided(a, b)`` says so."""

    def compare(r: SampleRequest) -> Sample:
        m = QUALITY.search(r.prompt)
        assert m is not None, r.prompt
        a, b = int(m.group(1)), int(m.group(2))
        if undecided(a, b):
            text = "Both look plausible to me."
        else:
            text = f"I compared them.\nBetter: {'A' if a > b else 'B'}"
        return Sample(text, 5, "stop")

    return FakeBackend("scripted", on_sample=compare)


def build(store: Store, n: int, prompts: int = 2, seed: int = 7) -> dict[str, int]:
    """Prompts of the arith task, each with n generations of distinct, shuffled quality.
    Returns quality by generation id."""
    task = get_task("arith")
    rng = np.random.default_rng(seed)
    quality: dict[str, int] = {}
    b = StoreBuilder(store, "arith")
    for item in task.items()[:prompts]:
        p = b.add(task.prompt_record(item))
        for i, q in enumerate(rng.permutation(n) + 10):
            g = b.generation(p, i, f"quality={q}", model="gen")
            quality[g.id] = int(q)
    b.write("generate")
    return quality


def spec(rounds: int, batch_size: int = 4, repeats: int = 1) -> VerifySpec:
    return VerifySpec(method="tournament", verifier="judge", verifier_digest="sha256:judge",
                      backend="scripted", sampling=Sampling(temperature=0.7, max_tokens=16),
                      rounds=rounds, batch_size=batch_size, repeats=repeats)


def comparisons(store: Store) -> list[Comparison]:
    return [c for c in store.records(["comparison"]) if isinstance(c, Comparison)]


def replay_brackets(store: Store, rounds: int) -> dict[tuple[str, int], list[set[str]]]:
    """From the records alone: the survivors of each (prompt, bracket) after each round,
    checking that every round's players are survivors of the round before."""
    sel = select(store, "arith")
    size = 2 ** rounds
    gens: dict[str, list[str]] = {}
    for g in sel.generations:
        gens.setdefault(g.prompt_id, []).append(g.id)
    comps = comparisons(store)
    out: dict[tuple[str, int], list[set[str]]] = {}
    for pid, ids in gens.items():
        for b in range(0, len(ids), size):
            alive = set(ids[b:b + size])
            history = [set(alive)]
            for r in range(rounds):
                played = [c for c in comps if c.prompt_id == pid and c.bracket == b // size
                          and c.bracket_round == r and c.sample_index == 0]
                players = [x for c in played for x in (c.generation_a, c.generation_b)]
                assert len(players) == len(set(players)) and set(players) <= alive
                assert len(alive) - len(players) in ((0, 1) if len(alive) > 1 else (1,))
                alive = {advancing(c) for c in played} | (alive - set(players))
                history.append(set(alive))
            out[(pid, b // size)] = history
    return out


@pytest.mark.parametrize(("n", "rounds"), [(8, 3), (32, 5), (13, 3), (6, 2)])
def test_bracket_logic(tmp_path: Path, n: int, rounds: int) -> None:
    store = Store(tmp_path)
    quality = build(store, n)
    fake = scripted()
    s = run(store, "verify", select(store, "arith"), spec(rounds), fake.factory)
    comps = comparisons(store)
    size = 2 ** rounds
    brackets = [min(size, n - k) for k in range(0, n, size)]
    per_prompt = sum(k - 1 for k in brackets)
    assert len(comps) == s.made == s.requested == 2 * per_prompt
    assert s.statuses == {"ok": len(comps)} and s.parse_failure_rate == 0.0
    # Every match is won by the better solution, wherever the coin put it.
    for c in comps:
        assert c.winner == max((c.generation_a, c.generation_b), key=quality.__getitem__)
        assert c.parse_status == "ok" and c.raw.startswith("I compared")
    # Survivors per round are those the records say won; each bracket ends with its best.
    history = replay_brackets(store, rounds)
    for (_, b), rounds_alive in history.items():
        k = brackets[b]
        assert len(rounds_alive[-1]) == 1
        members = rounds_alive[0]
        assert rounds_alive[-1] == {max(members, key=quality.__getitem__)}
        for r, alive in enumerate(rounds_alive):
            assert len(alive) == -(-k // 2 ** r) if 2 ** r <= k else len(alive) == 1
    # The A/B order is a recorded coin flip: both orders occur, and A's share is reported.
    assert {c.seed & 1 for c in comps} == {0, 1}
    assert s.decided == len(comps) and s.position_bias == s.a_wins / s.decided
    assert 0 < s.a_wins < len(comps)


def test_byes_and_undecided_matches(tmp_path: Path) -> None:
    store = Store(tmp_path)
    quality = build(store, 5, prompts=1)
    fake = scripted(lambda a, b: (a + b) % 3 == 0)
    s = run(store, "verify", select(store, "arith"), spec(3), fake.factory)
    comps = comparisons(store)
    assert len(comps) == 4 and s.byes == 2  # 5 -> 3 (bye) -> 2 (bye) -> 1
    undecided = [c for c in comps if c.winner is None]
    assert undecided and all(c.parse_status == "no_verdict" for c in undecided)
    assert s.statuses["no_verdict"] == len(undecided) == len(comps) - s.decided
    # An undecided match sends side A on, as the analysis reads it.
    history = replay_brackets(store, 3)
    for c in undecided:
        r = c.bracket_round
        assert c.generation_a in history[(c.prompt_id, 0)][r + 1]
        assert c.generation_b not in history[(c.prompt_id, 0)][r + 1]
    assert len(quality) == 5


def test_idempotent_and_resume_gives_the_same_records(tmp_path: Path) -> None:
    full = Store(tmp_path / "full")
    build(full, 8, prompts=3)

    def undecided(a: int, b: int) -> bool:
        return (a * b) % 5 == 0

    fake = scripted(undecided)
    run(full, "verify", select(full, "arith"), spec(3, batch_size=4), fake.factory)
    want = {c.key: c.id for c in comparisons(full)}
    assert len(want) == 3 * 7 and fake.calls == 21
    # A second run asks the back end nothing, and does not even build it.
    again = run(full, "verify", select(full, "arith"), spec(3, batch_size=4), fake.factory)
    assert (again.made, again.present, fake.calls, fake.factory_calls) == (0, 21, 21, 1)
    assert sum(again.statuses.values()) == 21
    # A run killed inside round 1: round 0 whole, one of round 1's two batches written.
    part = Store(tmp_path / "part")
    with part.writer("generate") as w:
        w.extend(full.records(["prompt", "generation"]))
    comps = sorted(comparisons(full), key=lambda c: (c.bracket_round, c.key))
    round1 = [c for c in comps if c.bracket_round == 1]
    keep = [c for c in comps if c.bracket_round == 0] + round1[:3]
    with part.writer("verify") as w:
        w.extend(keep)
    fake2 = scripted(undecided)
    s = run(part, "verify", select(part, "arith"), spec(3, batch_size=4), fake2.factory)
    assert s.made == 21 - len(keep) and s.present == len(keep)
    assert fake2.calls == s.made + s.extra
    assert {c.key: c.id for c in comparisons(part)} == want


def test_repeats_are_separate_tournaments(tmp_path: Path) -> None:
    store = Store(tmp_path)
    build(store, 4, prompts=1)
    s = run(store, "verify", select(store, "arith"), spec(2, repeats=3), scripted().factory)
    comps = comparisons(store)
    assert s.made == len(comps) == 3 * 3
    assert sorted({c.sample_index for c in comps}) == [0, 1, 2]
    assert len({c.seed for c in comps}) == 9


def test_another_bracket_size_is_flagged(tmp_path: Path) -> None:
    store = Store(tmp_path)
    build(store, 8, prompts=1)
    run(store, "verify", select(store, "arith"), spec(3), scripted().factory)
    s = run(store, "verify", select(store, "arith"), spec(2), scripted().factory)
    assert s.foreign == 4 and s.made == 6  # two brackets of 4: new keys throughout


def test_analysis_reads_the_same_survivors(tmp_path: Path) -> None:
    from gvstore.analysis.frames import Dataset
    from gvstore.analysis.specs import parse
    from gvstore.analysis.weights import Weigher
    from gvstore.replay import Projections, handle

    store = Store(tmp_path)
    build(store, 13, prompts=2)
    run(store, "verify", select(store, "arith"),
        spec(3), scripted(lambda a, b: (a + b) % 4 == 0).factory)
    history = replay_brackets(store, 3)
    ids = {handle(g.id): g.id for g in select(store, "arith").generations}
    (group,) = Dataset(Projections(store), utility=None).groups(["tournament"])
    for r in (1, 2, 3):
        w = Weigher(group).weights(parse(f"tournament:rounds={r}"))
        kept = {ids[h] for h, x in zip(group.gen.tolist(), w.tolist(), strict=True) if x}
        assert kept == set().union(*(h[r] for h in history.values()))


def test_a_tournament_compacts_its_folder_at_the_end(tmp_path: Path) -> None:
    """One segment per match (batch 1, flushed at once): 70 prompts x a bracket of 2 make 70
    segments, merged into one when the writer closes; the matches are all still there."""
    store = Store(tmp_path / "s")
    build(store, n=2, prompts=70)
    sel = select(store, "arith")
    s = run(store, "tour", sel, spec(1, batch_size=1), scripted().factory,
            flush_seconds=0)
    assert s.made == 70 and s.batches_run == 70
    names = [p for p in (store.root / "tour").iterdir() if p.name.endswith(".jsonl.zst")]
    assert len(names) == 1
    assert len(comparisons(store)) == 70
