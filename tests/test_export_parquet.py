"""``gvstore export parquet``: the layout, the incremental export, and the queries of
docs/scale.md run on an export (taken from the page itself) against gvstore's own figures."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from helpers import StoreBuilder, subprocess_env
from typer.testing import CliRunner

from gvstore.analysis.frames import Dataset, base_frame
from gvstore.analysis.gap import gap_table
from gvstore.analysis.parquet_export import export_parquet
from gvstore.analysis.parquet_layout import MANIFEST, load_manifest, part_value
from gvstore.analysis.passk import pass_at_k_table
from gvstore.analysis.specs import parse, parse_template
from gvstore.analysis.sweep import sweep
from gvstore.cli.app import build_app
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Grade, Verification, kind_of, seal
from gvstore.replay import Projections
from gvstore.store import Store

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "../ev il/m=1%2e"  # a model name that is no safe path part
TOL = 1e-12


def _section() -> str:
    text = (REPO / "docs" / "scale.md").read_text()
    start = text.index("## Parquet export and warehouse queries")
    end = text.index("\n## ", start + 3)
    return text[start:end]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(), flags=re.S)


def build(root: Path) -> Store:
    """Edge cases (values in the comments are the hand computation of test_gap_by_hand):
    ties at tau, a prompt the filter keeps nothing of, repeats, nulls, ungraded samples, two
    grader versions, two verifiers, a round 1, a second task with a hostile model name, an
    orphan grade and verification, a record held by two segments, and verifications written
    in a folder that sorts before the generations'."""
    b = StoreBuilder(root)
    p1 = b.prompt("1")
    g1 = b.gens(p1, [1, 0, 1, 0])
    b.scores(g1, "mc", [0.9, 0.5, 0.5, 0.1])  # ties kept: acc 1/2, acc_w 2/3
    b.scores(g1, "mc", [0.2, 0.8, None, 0.5], verifier="v2")  # v2: acc_w 0
    p2 = b.prompt("2")
    b.scores(b.gens(p2, [1, 0, 0]), "mc", [0.1, 0.2, 0.49])  # keeps nothing: empty
    p3 = b.prompt("3")
    b.scores(b.gens(p3, [1, 1]), "mc", [0.7, None])  # perfect prompt
    p4 = b.prompt("4")
    g4 = b.gens(p4, [0, 1, 1, None])  # the 4th is ungraded
    b.repeats(g4, "mc", [[0.4, 0.6], [0.3, None], [None, None], [0.9]])  # means .5 .3 null .9
    p5 = b.prompt("5")
    b.scores(b.gens(p5, 2), "mc", [0.9, 0.8])  # nothing graded: left out
    p6 = b.prompt("6")
    g6 = b.gens(p6, [1, 1], version="2")
    b.grade(g6[0], 0, version="10")  # the newest version ("10" > "2") counts: u = (0, 1)
    b.scores(g6, "mc", [0.8, 0.2])
    b.scores(b.gens(p1, [1, 1, 0], rnd=1), "mc", [0.1, 0.9, 0.95])  # round 1
    q1, q2 = b.prompt("1", task="u"), b.prompt("2", task="u")
    b.scores(b.gens(q1, [1, 0], model=HOSTILE), "mc", [0.6, 0.7])
    b.scores(b.gens(q2, [0, 1], model=HOSTILE), "mc", [0.5, 0.4])
    ghost = seal(Generation(prompt_id=p1.id, task="t", model="g", sample_index=99, seed=99,
                            text="never written"))
    b.add(Grade(generation_id=ghost.id, grader="t", strict=1.0, flexible=1.0))
    b.add(Verification(generation_id=ghost.id, verifier="v", method="mc", score=0.9))
    recs, b.recs = b.recs, []
    with b.store.writer("a-verify") as w:  # sorts before "gen": resolved at the end
        w.extend([r for r in recs if kind_of(r) == "verification"])
    with b.store.writer("gen") as w:
        w.extend([r for r in recs if kind_of(r) != "verification"])
    dup = [r for r in recs if getattr(r, "prompt_id", None) == p1.id or r.id == p1.id]
    with b.store.writer("dup") as w:  # the same records again, in another segment
        w.extend(dup + [r for r in recs if getattr(r, "generation_id", None)
                        in {g.id for g in g1}])
    return b.store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build(tmp_path / "store")


def _duck(folder: Path, block: str) -> list[dict[str, Any]]:
    con = duckdb.connect()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        con.execute(_blocks("sql")[0])
        rel = con.sql(block)
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    finally:
        os.chdir(cwd)


def _polars(folder: Path, name: str, index: int) -> list[dict[str, Any]]:
    blocks = _blocks("python")
    ns: dict[str, Any] = {}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(blocks[0], ns)  # noqa: S102 - the documented code
        exec(blocks[index], ns)  # noqa: S102
    finally:
        os.chdir(cwd)
    return ns[name].to_dicts()


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=0, abs_tol=TOL)


def _gvstore_gap(store: Store) -> dict[tuple[Any, ...], Any]:
    rows = gap_table(Dataset(Projections(store), cache=False), [parse("mc:tau=0.5")],
                     resamples=0)
    return {(r.task, r.generator, r.round, r.verifier): r for r in rows}


def _exported(store: Store, tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    export_parquet(store, folder / "export")
    return folder


def test_gap_by_hand(store: Store) -> None:
    got = {k: r.gap for k, r in _gvstore_gap(store).items()}
    assert got == pytest.approx({
        ("t", "g", 0, "v"): (1 / 6 + 0 + 0 - 2 / 3 - 1 / 2) / 5,
        ("t", "g", 0, "v2"): -0.5 / 5, ("t", "g", 1, "v"): -1 / 6,
        ("u", HOSTILE, 0, "v"): -0.25}, abs=TOL)


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_documented_gap_is_gvstores(store: Store, tmp_path: Path, engine: str) -> None:
    folder = _exported(store, tmp_path)
    rows = (_duck(folder, _blocks("sql")[1]) if engine == "duckdb"
            else _polars(folder, "gap", 1))
    want = _gvstore_gap(store)
    assert len(rows) == len(want) == 4
    for row in rows:
        gv = want[(row["task"], row.get("generator", row.get("model")), row["round"],
                   row["verifier"])]
        for col in ("base", "reweighted", "gap", "rel_gap"):
            assert _close(row[col], getattr(gv, col)), (col, row, gv)
        assert (row["prompts"], row["kept"], row["empty_prompts"]) == (
            gv.prompts, gv.kept, gv.empty_prompts)


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_documented_sweep_is_gvstores(store: Store, tmp_path: Path, engine: str) -> None:
    folder = _exported(store, tmp_path)
    rows = (_duck(folder, _blocks("sql")[2]) if engine == "duckdb"
            else _polars(folder, "sweep", 2))
    res = sweep(Dataset(Projections(store), cache=False), parse_template("mc:tau"),
                [0.2, 0.5, 0.8], resamples=0)  # type: ignore[arg-type]
    want = {(r.task, r.generator, r.round, r.verifier, p.value): p
            for r in res for p in r.points}
    assert len(rows) == len(want) == 12
    for row in rows:
        p = want[(row["task"], row.get("generator", row.get("model")), row["round"],
                  row["verifier"], row["tau"])]
        for col in ("reweighted", "gap", "rel_gap"):
            assert _close(row[col], getattr(p, col)), (col, row, p)
        assert (row["kept"], row["empty_prompts"]) == (p.kept, p.empty_prompts)


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_documented_passk_is_gvstores(store: Store, tmp_path: Path, engine: str) -> None:
    folder = _exported(store, tmp_path)
    rows = (_duck(folder, _blocks("sql")[3]) if engine == "duckdb"
            else _polars(folder, "passk", 3))
    table = pass_at_k_table(base_frame(Projections(store)), [1, 2, 4])
    want = {(r["task"], r["model"], r["round"], r["k"]): r for r in table.to_dicts()}
    assert len(rows) == len(want) == 9
    for row in rows:
        w = want[(row["task"], row["model"], row["round"], row["k"])]
        assert _close(row["pass_at_k"], w["pass_at_k"]), (row, w)
        assert (row["prompts"], row["excluded"]) == (w["prompts"], w["excluded"])
    # By hand: t/g round 0 at k=4 counts only p1 (4 graded samples, 2 correct): pass@4 = 1;
    # at k=2: p1 1 - C(2,2)/C(4,2) = 5/6, p2 1 - C(2,2)/C(3,2) = 2/3, p3 1, p4 1 - 0 = 1,
    # p6 1 - 0 = 1 (n 2, c 1): mean 0.9.
    assert want[("t", "g", 0, 4)]["pass_at_k"] == 1.0
    assert want[("t", "g", 0, 2)]["pass_at_k"] == pytest.approx((5 / 6 + 2 / 3 + 3) / 5)


def test_layout_hostile_names_and_duplicates(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = export_parquet(store, out)
    assert (summary.exported, summary.skipped, summary.removed) == (3, 0, 0)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert all(f.startswith("kind=") and f.count("/") == 3 for f in files)
    enc = "%2E%2E%2Fev%20il%2Fm%3D1%252e"
    assert part_value(HOSTILE, "model") == enc
    assert any(f.startswith(f"kind=generations/task=u/model={enc}/") for f in files)
    assert any(f.startswith("kind=grades/task=__HIVE_DEFAULT_PARTITION__/model="
                            "__HIVE_DEFAULT_PARTITION__/") for f in files)  # the orphan
    for p in out.rglob("*"):
        assert p.resolve().is_relative_to(out.resolve())
    gens = pl.scan_parquet(out / "kind=generations/*/*/*.parquet", hive_partitioning=True,
                           hive_schema={"kind": pl.String, "task": pl.String,
                                        "model": pl.String}).collect()
    assert sorted(set(gens["model"])) == sorted({"g", HOSTILE})
    n_gens = Projections(store).generations.height
    assert gens.height == n_gens + 7  # p1's 4 + 3 (round 1) generations: two segments
    assert gens["id"].n_unique() == n_gens
    assert summary.total_rows["generations"] == n_gens + 7
    man = json.loads((out / MANIFEST).read_text())
    assert set(man["segments"]) == {p.relative_to(store.root).as_posix()
                                    for p in store.segments()}


def test_incremental(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "w" / "export"
    export_parquet(store, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    again = export_parquet(store, out)
    assert (again.exported, again.skipped, again.parts_written, again.bytes_written) == (
        0, 3, 0, 0)
    b = StoreBuilder(store, task="t")
    b.scores(b.gens(b.prompt("new"), [1, 0]), "mc", [0.9, 0.1])
    b.write("later")
    third = export_parquet(store, out)
    assert (third.exported, third.skipped, third.removed) == (1, 3, 0)
    assert third.rows["generations"] == 2 and third.rows["prompts"] == 1
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    assert {p: after[p] for p in before} == before  # nothing old rewritten
    assert len(after) - len(before) == third.parts_written == 4
    # A compaction-like change: the "dup" folder's segment leaves the store.
    dup = next((store.root / "dup").glob("*.jsonl.zst"))
    dup_parts = [out / p.path for p in load_manifest(out).segments[  # type: ignore[union-attr]
        dup.relative_to(store.root).as_posix()].parts]
    for f in (store.root / "dup").iterdir():
        f.unlink()
    fourth = export_parquet(store, out)
    assert (fourth.exported, fourth.removed) == (0, 1)
    assert dup_parts and not any(p.exists() for p in dup_parts)
    want = _gvstore_gap(store)
    for row in _duck(tmp_path / "w", _blocks("sql")[1]):  # the same figures after it
        assert _close(row["gap"], want[(row["task"], row["generator"], row["round"],
                                        row["verifier"])].gap)


def test_orphans_find_their_partition_later(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "s")
    g = b.gens(b.prompt("1"), [1, 0])
    recs, b.recs = b.recs, []
    with b.store.writer("grade") as w:
        w.extend([r for r in recs if kind_of(r) == "grade"])
    out = tmp_path / "out"
    first = export_parquet(b.store, out)
    assert first.rows["grades"] == 2
    assert load_manifest(out).segments[next(iter(load_manifest(out).segments))].orphans == 2  # type: ignore[union-attr]
    with b.store.writer("gen") as w:
        w.extend([r for r in recs if kind_of(r) != "grade"])
    second = export_parquet(b.store, out)
    assert (second.exported, second.retried) == (1, 1)
    grades = sorted(p.relative_to(out).as_posix() for p in out.glob("kind=grades/*/*/*"))
    assert len(grades) == 1 and grades[0].startswith("kind=grades/task=t/model=g/")
    assert second.total_rows["grades"] == 2 and len(g) == 2


def test_texts(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_parquet(store, out)
    s = export_parquet(store, out, texts=True)  # another layout: everything again
    assert s.exported == 3 and s.texts
    read = pl.read_parquet(out / "kind=generations/task=u/*/*.parquet")
    assert sorted(read["text"]) == sorted(f"answer {i}/{HOSTILE}/{j}" for i in "12"
                                          for j in range(2))
    prompts = pl.read_parquet(out / "kind=prompts/*/*/*.parquet")
    assert "question 4" in set(prompts["text"])
    vers = pl.read_parquet(out / "kind=verifications/*/*/*.parquet")
    assert "raw" in vers.columns
    assert "text" not in pl.read_parquet(next(out.glob("kind=grades/*/*/*.parquet"))).columns


def test_refused_names(tmp_path: Path) -> None:
    assert part_value("ok-1.b_c", "model") == "ok-1.b_c"
    assert part_value(None, "model") == "__HIVE_DEFAULT_PARTITION__"
    for bad in ("", "__HIVE_DEFAULT_PARTITION__", "\ud800", "é" * 40):
        with pytest.raises(GvstoreError, match="cannot be a Parquet partition value"):
            part_value(bad, "model name")
    b = StoreBuilder(tmp_path / "s")
    b.gens(b.prompt("1"), [1], model="")
    b.write()
    with pytest.raises(GvstoreError, match="model name '' cannot be"):
        export_parquet(b.store, tmp_path / "out")


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(build_app(["export"]), list(args))
    return res.exit_code, res.output


def test_cli(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "cli-out"
    code, text = _cli("--store", str(store.root), "export", "parquet", str(out), "--json")
    assert code == 0, text
    d = json.loads(text)
    assert (d["exported"], d["segments"]) == (3, 3) and d["bytes_written"] > 0
    code, text = _cli("--store", str(store.root), "export", "parquet", str(out))
    assert code == 0 and "already exported" in text


def test_cli_errors(store: Store, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("x")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / MANIFEST).write_text('{"format": 1, "version": "1/3", "texts": false, '
                                    '"segments": {"x": {"orphans": 0, "parts": [{"path": '
                                    '"../../etc/x.parquet", "frame": "grades", "task": "t", '
                                    '"model": "g", "rows": 1, "bytes": 1}]}}}')
    cases = {afile: "is a file, not a folder", afile / "sub": "cannot create export folder",
             store.root / "inside": "is inside the store",
             full: "is not empty and holds no _gvstore_export.json",
             damaged: "is damaged (bad part path"}
    for folder, msg in cases.items():
        code, text = _cli("--store", str(store.root), "export", "parquet", str(folder))
        assert code == 1, (folder, text)
        assert text.startswith("error: ") and msg in text and text.count("\n") == 1, text
    assert (full / "mine.txt").read_text() == "x"


def test_a_link_out_of_the_folder_is_refused(store: Store, tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / MANIFEST).write_text('{"format": 1, "version": "1/3", "texts": false, '
                                '"segments": {}}')
    (out / "kind=generations").symlink_to(elsewhere)
    with pytest.raises(GvstoreError, match="outside the export folder"):
        export_parquet(store, out)
    assert list(elsewhere.iterdir()) == []


def _newer(folder: Path, t0: float) -> list[Path]:
    """The files under ``folder`` changed since ``t0`` (an export may remove some meanwhile)."""
    out = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                if os.stat(os.path.join(dirpath, name)).st_mtime >= t0:
                    out.append(Path(dirpath, name))
            except FileNotFoundError:
                continue
    return out


def test_sigkill_mid_export_leaves_a_consistent_manifest(tmp_path: Path) -> None:
    """Real SIGKILLs of a real export process at several points; after each the manifest
    names only whole part files, and a rerun gives the export a clean run gives."""
    root = tmp_path / "s"
    b = StoreBuilder(root)
    for i in range(30):
        g = b.gens(b.prompt(str(i)), [1, 0, 1])
        b.scores(g, "mc", [0.1 * (i % 10), 0.5, 0.9])
        b.write(f"f{i:02d}")
    clean = tmp_path / "clean"
    export_parquet(Store(root), clean)
    code = ("import sys; from gvstore.store import Store; "
            "from gvstore.analysis.parquet_export import export_parquet; "
            "export_parquet(Store(sys.argv[1]), sys.argv[2])")
    out = tmp_path / "out"
    mid = 0
    for target in (".part", 1, 40, 80, 115):  # of the 120 parts; kill once there
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(out)],
                                env=subprocess_env())
        while proc.poll() is None:
            files = _newer(out, t0)
            if (any(f.name.endswith(".part") for f in files) if target == ".part" else
                    sum(f.suffix == ".parquet" for f in files) >= int(target)):
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        man = load_manifest(out)
        if man is None:  # killed while writing the first (empty) manifest
            assert not list(out.rglob("*.parquet"))
            continue
        mid += len(man.segments) < 30
        for part in man.parts():
            assert pl.read_parquet(out / part.path).height == part.rows
    assert mid >= 3  # the kills came mid-export, not after it
    export_parquet(Store(root), out)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}
    assert files == {p.relative_to(clean).as_posix() for p in clean.rglob("*.parquet")}
    assert not list(out.rglob("*.part"))
    assert load_manifest(out).to_json() == load_manifest(clean).to_json()  # type: ignore[union-attr]


def test_a_long_export_resumes_from_its_checkpoint(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from gvstore.analysis import parquet_export as pe

    root = tmp_path / "s"
    b = StoreBuilder(root)
    for i in range(6):
        b.scores(b.gens(b.prompt(str(i)), [1, 0]), "mc", [0.9, 0.1])
        b.write(f"f{i}")
    monkeypatch.setattr(pe, "CHECKPOINT_S", 0.0)  # a checkpoint before every segment
    real, calls = pe._Run.segment, []

    def dies_at_the_fourth(self: Any, name: str, path: Path) -> None:
        calls.append(name)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill would, mid-export
        real(self, name, path)

    monkeypatch.setattr(pe._Run, "segment", dies_at_the_fourth)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export_parquet(Store(root), out)
    man = load_manifest(out)
    assert man is not None and len(man.segments) == 3
    assert all((out / p.path).is_file() for p in man.parts())
    monkeypatch.setattr(pe._Run, "segment", real)
    again = export_parquet(Store(root), out)
    assert (again.exported, again.skipped) == (3, 3)


def test_failed_writes_locks_and_damage_are_one_line(store: Store, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import fcntl

    from gvstore.analysis import parquet_export as pe

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".gvstore_export.lock", "w") as fh:  # another export holds the folder
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(GvstoreError, match="being written by another export"):
            export_parquet(store, out)

    def full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    monkeypatch.setattr(pe, "write_atomic", full)
    with pytest.raises(GvstoreError, match="No space left on device; free space"):
        export_parquet(store, out)
    monkeypatch.undo()
    seg = next((store.root / "gen").glob("*.jsonl.zst"))
    raw = bytearray(seg.read_bytes())
    raw[-3] ^= 0xFF
    seg.write_bytes(bytes(raw))
    code, text = _cli("--store", str(store.root), "export", "parquet", str(out))
    assert code == 1 and text.startswith("error: damaged segment ") and text.count("\n") == 1
    assert "does not match its name" in text
    code, text = _cli("--store", str(store.root), "--skip-damaged", "export", "parquet",
                      str(out), "--json")
    assert code == 0, text
    d = json.loads(text[text.index("{"):])
    assert (d["segments"], d["exported"]) == (3, 2)
    assert seg.relative_to(store.root).as_posix() not in load_manifest(out).segments  # type: ignore[union-attr]


def test_a_part_deleted_or_truncated_by_hand_is_exported_again(store: Store,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_parquet(store, out)
    man = load_manifest(out)
    assert man is not None
    parts = man.parts()
    (out / parts[0].path).unlink()
    (out / parts[-1].path).write_bytes(b"PAR1")
    again = export_parquet(store, out)
    assert again.exported in (1, 2) and again.skipped == 3 - again.exported
    for p in load_manifest(out).parts():  # type: ignore[union-attr]
        assert pl.read_parquet(out / p.path).height == p.rows


def test_a_real_compaction_is_mirrored(store: Store, tmp_path: Path) -> None:
    b = StoreBuilder(store, task="t")
    for i in range(3):  # three small segments in one folder
        b.scores(b.gens(b.prompt(f"c{i}"), [1, 0, 1], model="h"), "mc", [0.9, 0.5, 0.2])
        b.write("more")
    out = tmp_path / "w" / "export"
    assert export_parquet(store, out).exported == 6
    code, text = _cli_all("--store", str(store.root), "store", "compact", "more", "-q")
    assert code == 0, text
    assert len(list((store.root / "more").glob("*.jsonl.zst"))) == 1
    after = export_parquet(store, out)
    assert (after.exported, after.removed, after.skipped) == (1, 3, 3)
    assert after.total_rows["generations"] == Projections(store).generations.height + 7
    want = _gvstore_gap(store)
    rows = _duck(tmp_path / "w", _blocks("sql")[1])
    assert len(rows) == len(want) == 5
    for row in rows:
        assert _close(row["gap"], want[(row["task"], row["generator"], row["round"],
                                        row["verifier"])].gap)


def _cli_all(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(build_app(), list(args))
    return res.exit_code, res.output
