"""Projections: frames match the records, cached by segment set, rebuilt on change."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from gvstore.records import Comparison, Generation, Grade, Prompt, Verification
from gvstore.replay import Projections, handle
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate


def _write(store: Store, cfg: SynthConfig, folder: str = "synth") -> list:
    recs = list(generate(cfg))
    with store.writer(folder, flush_records=100) as w:
        w.extend(recs)
    return recs


def test_frames_match_records(tmp_path: Path) -> None:
    store = Store(tmp_path)
    recs = _write(store, SynthConfig(prompts=12, samples=5, repeats=2,
                                     methods=("mc", "cot_score", "tournament")))
    f = Projections(store).load()
    gens = [r for r in recs if isinstance(r, Generation)]
    assert f["generations"].height == len(gens)
    assert set(f["generations"]["gen"].to_list()) == {handle(g.id) for g in gens}
    assert f["prompts"].height == sum(isinstance(r, Prompt) for r in recs)
    vers = [r for r in recs if isinstance(r, Verification)]
    assert f["verifications"].height == len(vers) == 12 * 5 * 2 * 2
    # Scores and nulls survive exactly.
    got = sorted(f["verifications"]["score"].to_list(), key=lambda x: (x is None, x))
    want = sorted((v.score for v in vers), key=lambda x: (x is None, x))
    assert got == want
    grades = {handle(g.generation_id): g.strict for g in recs if isinstance(g, Grade)}
    assert dict(zip(f["grades"]["gen"], f["grades"]["strict"], strict=True)) == grades
    cmps = [r for r in recs if isinstance(r, Comparison)]
    assert f["comparisons"].height == len(cmps)
    assert f["comparisons"]["winner"].null_count() == sum(c.winner is None for c in cmps)
    # Generations join their prompt.
    joined = f["generations"].join(f["prompts"], on="prompt", how="left")
    assert joined["item_id"].null_count() == 0


def test_cache_is_used_and_rebuilt_when_segments_change(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, SynthConfig(prompts=4, samples=3))
    p1 = Projections(store)
    first = p1.load()
    assert p1.rebuilt
    p2 = Projections(store)
    again = p2.load()
    assert not p2.rebuilt  # served from Parquet
    for name in first:
        assert again[name].equals(first[name])
    _write(store, SynthConfig(prompts=4, samples=3, seed=1), folder="more")
    p3 = Projections(store)
    grown = p3.load()
    assert p3.rebuilt and grown["generations"].height == 2 * first["generations"].height
    # Only the current set's cache files are kept.
    assert len(list((tmp_path / ".cache" / "proj").glob("*.parquet"))) == 6


def test_empty_store_gives_empty_typed_frames(tmp_path: Path) -> None:
    f = Projections(Store(tmp_path / "nothing")).load()
    assert f["generations"].height == 0
    assert f["generations"].schema["gen"] == pl.UInt64


def test_damaged_segment_skipped_build_is_not_cached(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, SynthConfig(prompts=6, samples=3))
    seg = store.segments()[0]
    seg.write_bytes(seg.read_bytes()[:-3])
    skipped: list = []
    p = Projections(store, skip_damaged=True, on_skip=skipped.append)
    p.load()
    assert len(skipped) == 1
    assert not (tmp_path / ".cache" / "proj").exists()


def test_a_build_in_chunks_equals_one_build_and_drops_duplicates_across_chunks(
        tmp_path: Path) -> None:
    """The cold build projects a few hundred thousand lines at a time; with chunks of one
    line, of 7 and of everything, the frames are the same, row for row, and a record written
    in two segments (so in two chunks) is kept once, at its first place."""
    from gvstore import replay

    store = Store(tmp_path)
    recs = _write(store, SynthConfig(prompts=6, samples=4, repeats=2,
                                     methods=("mc", "cot_score", "tournament")))
    with store.writer("again", flush_records=7) as w:
        w.extend(recs[::3])  # duplicates, in later segments
    whole = replay._build(store, False, None, chunk_rows=10**9)
    for rows in (1, 7):
        parts = replay._build(store, False, None, chunk_rows=rows)
        for name in replay.FRAMES:
            assert parts[name].equals(whole[name]), (rows, name)
    n = {k: sum(type(r).__name__.lower() == k for r in recs)
         for k in ("prompt", "generation", "grade", "verification", "comparison")}
    assert whole["prompts"].height == n["prompt"]
    assert whole["generations"].height == n["generation"]
    assert whole["grades"].height == n["grade"]
    assert whole["verifications"].height == n["verification"]
    assert whole["comparisons"].height == n["comparison"]
    assert set(whole["generations"].columns) == set(replay.schemas()["generations"])
