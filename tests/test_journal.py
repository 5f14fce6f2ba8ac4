"""The per-folder journal: a deleted segment is noticed by verify and by analysis; the
projection cache is checked; crashes mid-commit and stores from before journals still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from writer_child import records as child_records

from gvstore.cli.app import app
from gvstore.errors import DamagedSegment
from gvstore.journal import HEADER, JOURNAL_NAME, MissingSegment, read_journal
from gvstore.replay import Projections
from gvstore.segments import write_segment
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate

runner = CliRunner()


def _write(store: Store, folder: str = "gen", n: int = 30, flush: int = 10) -> list:
    recs = child_records(n)
    with store.writer(folder, flush_records=flush) as w:
        w.extend(recs)
    return recs


def _synth(store: Store, flush: int = 100) -> None:
    with store.writer("synth", flush_records=flush) as w:
        w.extend(generate(SynthConfig(prompts=8, samples=4)))


def test_journal_lists_every_committed_segment_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = store.writer("gen", flush_records=10)
    w.extend(child_records(30))
    w.close()
    j = read_journal(tmp_path / "gen")
    assert j is not None and not j.torn and not j.bad_lines
    assert j.names == [p.name for p in w.written]  # commit order, 3 segments
    assert len(j.names) == 3
    lines = (tmp_path / "gen" / JOURNAL_NAME).read_text().splitlines()
    assert lines == [HEADER] + j.names


def test_deleted_segment_is_named_by_verify_and_refused_by_reads(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store)
    assert store.verify().ok
    gone = store.segments()[1]
    gone.unlink()
    rep = store.verify()
    assert not rep.ok
    assert rep.missing_segments == [(str(gone), str(tmp_path / "gen" / JOURNAL_NAME))]
    assert rep.segments == 2 and rep.records == 20
    with pytest.raises(MissingSegment) as info:
        store.records()
    assert str(gone) in str(info.value) and "missing" in str(info.value)
    with pytest.raises(MissingSegment):
        store.keys()  # so a stage does not silently recompute (or report) without it
    skipped: list[DamagedSegment] = []
    got = store.records(skip_damaged=True, on_skip=skipped.append)
    assert [e.path for e in skipped] == [gone] and len(got) == 20


def test_analysis_refuses_a_store_with_a_deleted_segment_even_from_cache(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _synth(store)
    first = Projections(store).load()  # cached for this segment set
    with store.writer("more") as w:
        w.extend(generate(SynthConfig(prompts=3, samples=2, seed=5)))
    extra = next(p for p in store.segments() if p.parent.name == "more")
    extra.unlink()  # the segment set is again the cached one: the cache alone would not notice
    with pytest.raises(MissingSegment) as info:
        Projections(store).load()
    assert str(extra) in str(info.value)
    skipped: list[DamagedSegment] = []
    p = Projections(store, skip_damaged=True, on_skip=skipped.append)
    frames = p.load()
    assert [e.path for e in skipped] == [extra]
    assert frames["generations"].height == first["generations"].height == 32


def test_store_level_skip_damaged_reaches_projections(tmp_path: Path) -> None:
    _synth(Store(tmp_path), flush=40)
    seg = Store(tmp_path).segments()[0]
    seg.unlink()
    seen: list[DamagedSegment] = []
    frames = Projections(Store(tmp_path, skip_damaged=True, on_skip=seen.append)).load()
    assert [e.path for e in seen] == [seg]
    assert frames["generations"].height < 32


def test_crash_between_rename_and_journal_is_accepted_then_adopted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, n=20)
    folder = tmp_path / "gen"
    # A segment renamed into place whose journal line never made it (the writer was killed).
    jtext = (folder / JOURNAL_NAME).read_text()
    extra = write_segment(folder, b"")  # any bytes: an empty zstd-less segment is fine here
    (folder / JOURNAL_NAME).write_text(jtext)
    rep = store.verify()
    assert rep.unjournalled == [str(extra)] and not rep.missing_segments
    assert not store.check_journals()  # reads accept it: its bytes match its name
    store.writer("gen").close()  # the next writer adopts it
    j = read_journal(folder)
    assert j is not None and extra.name in j.names
    assert store.verify().unjournalled == []


def test_torn_last_journal_line_is_ignored_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, n=20)
    jpath = tmp_path / "gen" / JOURNAL_NAME
    with open(jpath, "ab") as fh:
        fh.write(b"0123abc")  # half a name, no newline: a crash mid-append
    j = read_journal(tmp_path / "gen")
    assert j is not None and j.torn and not j.bad_lines and len(j.names) == 2
    rep = store.verify()
    assert rep.ok and rep.torn_journals == [str(jpath)]
    _write(store, n=25)  # 5 new records, one more segment
    j = read_journal(tmp_path / "gen")
    assert j is not None and not j.torn and len(j.names) == 3
    assert b"0123abc" not in jpath.read_bytes()


def test_a_store_from_before_journals_works_and_gets_one(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, n=20)
    (tmp_path / "gen" / JOURNAL_NAME).unlink()
    assert len(store.records()) == 20
    rep = store.verify()
    assert rep.ok and rep.no_journal == [str(tmp_path / "gen")]
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify"])
    assert res.exit_code == 0 and "has no journal" in res.stdout
    _write(store, n=30)
    j = read_journal(tmp_path / "gen")
    assert j is not None and len(j.names) == 3
    assert store.verify().no_journal == []


def test_verify_fix_forgets_a_missing_segment_and_creates_journals(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _write(store, n=30)
    _write(store, folder="old", n=10)
    (tmp_path / "old" / JOURNAL_NAME).unlink()
    gone = store.segments()[0]
    gone.unlink()
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify", "--fix", "--json"])
    assert res.exit_code == 1  # the report describes the store as found
    data = json.loads(res.stdout)
    assert data["missing_segments"] == [{"path": str(gone),
                                         "journal": str(gone.parent / JOURNAL_NAME)}]
    assert any("forgot missing segment" in f and gone.name in f for f in data["fixed"])
    assert any("created journal" in f for f in data["fixed"])
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify", "--json"])
    data = json.loads(res.stdout)
    assert res.exit_code == 0 and data["ok"] and data["no_journal"] == []
    assert data["records"] == 30 and data["segments"] == 3  # gen: 2 of 3 segments left; old: 1


def test_tampered_cache_file_is_damage_for_verify_and_never_used(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _synth(store)
    good = Projections(store).load()
    cache = tmp_path / ".cache" / "proj"
    gen_file = next(cache.glob("*-generations.parquet"))
    # Forge a cache file: same schema, other numbers (every generation marked as round 7).
    good["generations"].with_columns(round=7).cast(good["generations"].schema).write_parquet(
        gen_file, compression="lz4", statistics=False)
    rep = store.verify()
    assert not rep.ok and [p for p, _ in rep.damaged_cache] == [str(gen_file)]
    assert rep.cache_files == 6
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify"])
    assert res.exit_code == 1 and "DAMAGED CACHE" in res.stdout and gen_file.name in res.stdout
    p = Projections(store)
    again = p.load()
    assert p.rebuilt and again["generations"]["round"].to_list() == [0] * 32
    assert store.verify().ok  # the rebuild rewrote the set and its manifest


def test_cli_verify_names_deleted_segment_and_gap_refuses_it(tmp_path: Path) -> None:
    res = runner.invoke(app, ["store", "synth", str(tmp_path), "--prompts", "30", "--samples",
                              "4", "--methods", "mc", "-q"])
    assert res.exit_code == 0, res.output
    with Store(tmp_path).writer("more") as w:
        w.extend(generate(SynthConfig(prompts=5, samples=4, methods=("mc",), seed=9)))
    gone = next(p for p in Store(tmp_path).segments() if p.parent.name == "more")
    base = ["--store", str(tmp_path)]
    ok = runner.invoke(app, [*base, "gap", "mc:quantile=0.8", "--json"])
    assert ok.exit_code == 0, ok.output
    gone.unlink()
    res = runner.invoke(app, [*base, "store", "verify"])
    assert res.exit_code == 1 and f"MISSING {gone}" in res.stdout.replace("\n", "")
    res = runner.invoke(app, [*base, "gap", "mc:quantile=0.8"])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith("error: missing segment") and gone.name in lines[0]
    res = runner.invoke(app, [*base, "--skip-damaged", "gap", "mc:quantile=0.8", "--json"])
    assert res.exit_code == 0, res.output
    assert "warning: skipped missing segment" in res.stderr and gone.name in res.stderr
    assert json.loads(res.stdout)["results"][0]["prompts"] == 30
