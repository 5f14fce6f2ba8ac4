"""``gvstore import table``: JSONL, CSV and Parquet, both layouts, through the real app.

The source rows (3 prompts): p1 has a tie among its scores, p2 is all wrong with one unparsed
(null) score, p3 is one correct sample. With ``mc:tau=0.5`` (keep s >= 0.5, nulls rejected),
by hand: p1 keeps its two 0.9 samples (both right): 1 vs 2/3; p2 keeps e (wrong): 0 vs 0;
p3 keeps nothing (0.3 < 0.5): empty, keeps its accuracy 1. So base = (2/3 + 0 + 1) / 3 = 5/9,
reweighted = (1 + 0 + 1) / 3 = 2/3 and gap = 1/9. ``hand_gap`` recomputes this from the rows.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gvstore.cli.app import app as gvstore_app
from gvstore.store import Store

ROWS: list[dict[str, Any]] = [
    {"pid": "p1", "q": "1+1?", "y": "2", "ok": 1, "rm": 0.9, "rm2": 0.1},
    {"pid": "p1", "q": "1+1?", "y": "3", "ok": 0, "rm": 0.2, "rm2": 0.8},
    {"pid": "p1", "q": "1+1?", "y": "two", "ok": 1, "rm": 0.9, "rm2": 0.6},
    {"pid": "p2", "q": "2+2?", "y": "5", "ok": 0, "rm": None, "rm2": 0.4},
    {"pid": "p2", "q": "2+2?", "y": "6", "ok": 0, "rm": 0.5, "rm2": 0.9},
    {"pid": "p3", "q": "3+3?", "y": "6 <script>alert(1)</script>", "ok": 1, "rm": 0.3,
     "rm2": 0.7},
]
COLS = ["--prompt-id", "pid", "--prompt", "q", "--sample", "y", "--correct", "ok",
        "--score", "rm=rm", "--score", "rm2=rm2"]


def hand_gap(rows: list[dict[str, Any]], col: str, tau: float) -> tuple[float, float]:
    """(base, gap) of ``col:tau=...`` computed directly on the source rows."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["pid"], []).append(r)
    accs, diffs = [], []
    for group in by.values():
        acc = sum(r["ok"] for r in group) / len(group)
        kept = [r["ok"] for r in group if r[col] is not None and r[col] >= tau]
        accs.append(acc)
        diffs.append(sum(kept) / len(kept) - acc if kept else 0.0)
    return sum(accs) / len(accs), sum(diffs) / len(diffs)


def per_prompt(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        o = out.setdefault(r["pid"], {"pid": r["pid"], "q": r["q"], "y": [], "ok": [],
                                      "rm": [], "rm2": []})
        for k in ("y", "ok", "rm", "rm2"):
            o[k].append(r[k])
    return list(out.values())


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import polars as pl

    pl.DataFrame(rows).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return gvstore_app


def run(app: typer.Typer, store: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["--store", str(store), *args])
    return res.exit_code, res.output


def imported(app: typer.Typer, store: Path, path: Path, *extra: str) -> dict[str, Any]:
    code, out = run(app, store, "import", "table", str(path), *COLS, "--json", *extra)
    assert code == 0, out
    got: dict[str, Any] = json.loads(out)
    return got


def gap_rows(app: typer.Typer, store: Path) -> dict[str, dict[str, Any]]:
    code, out = run(app, store, "gap", "mc:tau=0.5", "--json", "--resamples", "20")
    assert code == 0, out
    return {r["verifier"]: r for r in json.loads(out)["results"]}


def n_records(store: Path) -> int:
    return len(Store(store).records()) if store.exists() else 0


@pytest.mark.parametrize("make", ["jsonl", "csv", "parquet", "jsonl-lists", "parquet-lists"])
def test_gap_equals_hand_computation(app: typer.Typer, tmp_path: Path, make: str) -> None:
    fmt, _, lists = make.partition("-")
    rows = per_prompt(ROWS) if lists else ROWS
    writer = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}[fmt]
    path = writer(tmp_path / f"s.{fmt}", rows)
    got = imported(app, tmp_path / "st", path, "--task", "toy", "--generator", "gen1")
    assert (got["rows"], got["prompts"], got["samples"], got["skipped"]) == (len(rows), 3, 6, 0)
    assert got["added"] == {"prompt": 3, "generation": 6, "grade": 6, "verification": 12}
    res = gap_rows(app, tmp_path / "st")
    assert sorted(res) == ["rm", "rm2"]
    r = res["rm"]
    assert (r["task"], r["generator"], r["prompts"], r["generations"]) == ("toy", "gen1", 3, 6)
    assert r["base"] == pytest.approx(5 / 9) and r["gap"] == pytest.approx(1 / 9)
    assert r["reweighted"] == pytest.approx(2 / 3) and r["empty_prompts"] == 1
    for verifier in ("rm", "rm2"):
        base, gap = hand_gap(ROWS, verifier, 0.5)
        assert res[verifier]["base"] == pytest.approx(base)
        assert res[verifier]["gap"] == pytest.approx(gap)
    # provenance: the file's digest in every generation and verification, text kept verbatim
    recs = Store(tmp_path / "st").records(["generation", "verification"])
    assert {getattr(x, "model_digest", None) or getattr(x, "verifier_digest", None)
            for x in recs} == {got["sha256"]}
    assert any("<script>" in getattr(x, "text", "") for x in recs)


def test_reimport_adds_nothing_and_an_edited_file_is_refused(app: typer.Typer,
                                                              tmp_path: Path) -> None:
    store = tmp_path / "st"
    path = write_jsonl(tmp_path / "s.jsonl", ROWS)
    first = imported(app, store, path)
    before = n_records(store)
    assert first["written"] == before == 27
    again = imported(app, store, path)
    assert (again["written"], again["already"]) == (0, 27) and n_records(store) == before
    # the same file through a YAML mapping: the same records, nothing added
    mapping = tmp_path / "m.yaml"
    mapping.write_text("prompt_id: pid\nprompt: q\nsample: y\ncorrect: ok\n"
                       "scores:\n  rm: rm\n  rm2: {column: rm2, method: mc}\n")
    code, out = run(app, store, "import", "table", str(path), "--map", str(mapping), "--json")
    assert code == 0 and json.loads(out)["written"] == 0, out
    # an edited file under the same generator would double-count samples: refused
    edited = write_jsonl(tmp_path / "e.jsonl", [{**ROWS[0], "y": "22"}, *ROWS[1:]])
    code, out = run(app, store, "import", "table", str(edited), *COLS)
    assert code == 1 and "another --generator" in out and n_records(store) == before
    # under another generator it is its own group (sharing the 3 prompts)
    assert imported(app, store, edited, "--generator", "gen2")["written"] == 27 - 3


BAD = [
    ("jsonl", b'{"pid": "p1", "y": "a", "ok": 1, "rm": 0.5, "rm2": 0.5}\n'
              b'{"pid": "p1", "y": "b", "ok": 0, "rm": 0.5, "rm2": 0.5}\n'
              b'{"pid": "p2", "y": "c", oops\n', "s.jsonl line 3: not JSON"),
    ("jsonl", b'{"pid": "p1", "y": "a", "ok": 1, "rm": 1.5, "rm2": 0.5}\n',
     "s.jsonl line 1: score column 'rm': 1.5 is outside the range [0, 1] of method 'mc'"),
    ("jsonl", b'{"pid": "p1", "y": "a", "ok": 2, "rm": 0.5, "rm2": 0.5}\n',
     "s.jsonl line 1: correctness column 'ok': 2 is outside [0, 1]"),
    ("jsonl", b'\n{"pid": "p1", "y": ["a", "b"], "ok": [1], "rm": [0, 0], "rm2": [0, 0]}\n',
     "s.jsonl line 2: column 'ok': 1 values for 2 samples"),
    ("jsonl", b'{"pid": "p1", "ok": 1, "rm": 0.5, "rm2": 0.5}\n',
     "s.jsonl line 1: no column 'y'"),
    ("csv", b'pid,y,ok,rm,rm2\np1,a,1,0.5,0.5\np1,"b\nstill b",0,0.5\n',
     "s.csv line 4: 4 fields, the header has 5"),
    ("csv", b'pid,y,ok,rm,rm2\np1,a,1,0.5,0.5\np1,b,maybe,0.5,0.5\n',
     "s.csv line 3: correctness column 'ok': expected a number, got 'maybe'"),
    ("csv", b'pid,y,ok,rm,rm2\np1,a,1,0.5,0.5\np1,b,0,yes,0.5\n',
     "s.csv line 3: score column 'rm': expected a number, got 'yes'"),
]


@pytest.mark.parametrize(("fmt", "data", "message"), BAD)
def test_bad_row_names_file_and_line_and_writes_nothing(app: typer.Typer, tmp_path: Path,
                                                        fmt: str, data: bytes,
                                                        message: str) -> None:
    path = tmp_path / f"s.{fmt}"
    path.write_bytes(data)
    store = tmp_path / "st"
    code, out = run(app, store, "import", "table", str(path), "--prompt-id", "pid", "--sample",
                    "y", "--correct", "ok", "--score", "rm", "--score", "rm2")
    assert code == 1, out
    assert message in out and "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert n_records(store) == 0


def test_duplicate_sample_and_skip_bad(app: typer.Typer, tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in ROWS]
    lines.insert(2, "[1, 2]")  # line 3: not an object
    lines.insert(4, json.dumps({**ROWS[0], "ok": "?"}))  # line 5: bad correctness
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = tmp_path / "st"
    code, out = run(app, store, "import", "table", str(path), *COLS)
    assert code == 1 and "s.jsonl line 3: expected a JSON object, got list" in out
    got = imported(app, store, path, "--skip-bad")
    assert (got["rows"], got["skipped"], got["samples"]) == (8, 2, 6)
    assert [w.rsplit(" ", 2)[1:] for w in got["skipped_at"]] == [["line", "3"], ["line", "5"]]
    # an explicit sample index given twice is a bad row
    dup = write_jsonl(tmp_path / "d.jsonl", [{**ROWS[0], "i": 0}, {**ROWS[1], "i": 0}])
    code, out = run(app, tmp_path / "st2", "import", "table", str(dup), *COLS,
                    "--sample-index", "i")
    assert code == 1 and "d.jsonl line 2: sample 0 of prompt 'p1' is already at" in out


@pytest.mark.parametrize("args", [
    ["--generator", "../../etc"], ["--task", "a/b"], ["--task", ".hidden"],
    ["--score", "../evil=rm"], ["--score", "rm", "--method", "tournament"],
])
def test_hostile_names_are_refused(app: typer.Typer, tmp_path: Path, args: list[str]) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", ROWS)
    code, out = run(app, tmp_path / "st", "import", "table", str(path), *COLS[:8], *args)
    assert code == 1 and "Traceback" not in out, out
    assert n_records(tmp_path / "st") == 0 and not (tmp_path / "etc").exists()


def test_data_text_in_errors_is_printed_as_text(app: typer.Typer, tmp_path: Path) -> None:
    hostile = "[bold red]x[/bold red]\x1b[2J"
    path = write_jsonl(tmp_path / "s.jsonl", [{**ROWS[0], "ok": hostile}])
    code, out = run(app, tmp_path / "st", "import", "table", str(path), *COLS)
    assert code == 1 and "[bold red]x[/bold red]" in out and "\x1b" not in out


def test_a_known_task_is_graded_by_its_own_grader_too(app: typer.Typer, tmp_path: Path) -> None:
    rows = [{"id": "a1", "q": "What is 2+3?", "ref": "5", "y": "The answer is 5.", "ok": 0,
             "rm": 0.8},
            {"id": "a1", "q": "What is 2+3?", "ref": "5", "y": "The answer is 6.", "ok": 0,
             "rm": 0.4}]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    store = tmp_path / "st"
    code, out = run(app, store, "import", "table", str(path), "--prompt-id", "id", "--prompt",
                    "q", "--reference", "ref", "--sample", "y", "--correct", "ok", "--score",
                    "rm", "--task", "arith", "--generator", "m1")
    assert code == 0, out
    code, out = run(app, store, "grade", "--json")
    assert code == 0, out
    code, out = run(app, store, "gap", "mc:tau=0.5", "--resamples", "10", "--json")
    assert code == 1 and "several graders (arith, imported)" in out
    for grader, base, gap in (("arith", 0.5, 0.5), ("imported", 0.0, 0.0)):
        code, out = run(app, store, "gap", "mc:tau=0.5", "--resamples", "10", "--json",
                        "--grader", grader)
        assert code == 0, out
        r = json.loads(out)["results"][0]
        assert (r["base"], r["gap"]) == (base, gap)
