"""Data loading: search order, digest checks, the missing-file message, and fetch."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from gvstore.errors import GvstoreError
from gvstore.io import sha256_file
from gvstore.tasks import data

pytestmark = pytest.mark.shared_data("gsm8k/test.jsonl")  # for the shared_data fixture


@pytest.fixture
def empty_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("GVSTORE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_table_matches_the_shared_files(shared_data: Path) -> None:
    for name, files in data.DATASETS.items():
        for f in files:
            p = shared_data / name / f.rel
            assert p.stat().st_size == f.size, p
            assert sha256_file(p) == f.sha256, p
            assert f.url.startswith("https://raw.githubusercontent.com/")


def test_missing_file_says_what_to_do(empty_env: Path) -> None:
    with pytest.raises(GvstoreError) as exc:
        data.locate("gsm8k", "test.jsonl")
    msg = str(exc.value)
    assert "data/raw/gsm8k/test.jsonl" in msg
    assert "gvstore data fetch gsm8k" in msg
    assert "GVSTORE_DATA" in msg and "pass its path" in msg


def test_search_order_and_explicit_paths(shared_data: Path, empty_env: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # data/raw under the working directory
    raw = empty_env / "data" / "raw" / "gsm8k"
    raw.mkdir(parents=True)
    shutil.copy(shared_data / "gsm8k" / "test.jsonl", raw / "test.jsonl")
    assert data.locate("gsm8k", "test.jsonl") == Path("data/raw/gsm8k/test.jsonl")
    # $GVSTORE_DATA comes first
    monkeypatch.setenv("GVSTORE_DATA", str(shared_data))
    assert data.locate("gsm8k", "test.jsonl") == shared_data / "gsm8k" / "test.jsonl"
    # a caller's folder (a data root, or the dataset folder itself) comes before both
    assert data.locate("gsm8k", "test.jsonl", empty_env / "data" / "raw") == raw / "test.jsonl"
    assert data.locate("gsm8k", "test.jsonl", raw) == raw / "test.jsonl"
    # a caller's file
    assert data.locate("gsm8k", "test.jsonl", raw / "test.jsonl") == raw / "test.jsonl"


def test_wrong_digest_is_an_error(shared_data: Path, empty_env: Path) -> None:
    raw = empty_env / "data" / "raw" / "gsm8k"
    raw.mkdir(parents=True)
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines(keepends=True)
    (raw / "test.jsonl").write_text("".join(lines[:10]))
    with pytest.raises(GvstoreError, match="does not match the known digest"):
        data.locate("gsm8k", "test.jsonl")
    # an edited copy named directly is accepted when asked
    rows = data.load_jsonl("gsm8k", "test.jsonl", raw / "test.jsonl", verify=False)
    assert len(rows) == 10
    with pytest.raises(GvstoreError, match="verify=False"):
        data.locate("gsm8k", "test.jsonl", raw / "test.jsonl")


def test_status(shared_data: Path) -> None:
    rows = data.status()
    assert {(r.name, r.rel) for r in rows} == {
        (n, f.rel) for n, fs in data.DATASETS.items() for f in fs
    }
    assert all(r.ok for r in rows)


def test_bad_names() -> None:
    with pytest.raises(GvstoreError, match="unknown dataset"):
        data.locate("nope", "x")
    with pytest.raises(GvstoreError, match="has no file"):
        data.locate("gsm8k", "x.jsonl")


def test_fetch_from_a_file_mirror(shared_data: Path, tmp_path: Path) -> None:
    dest = tmp_path / "raw"
    got = data.fetch("nq_open", dest, mirror=(shared_data).as_uri())
    assert [f.action for f in got] == ["downloaded", "downloaded"]
    for f in data.DATASETS["nq_open"]:
        assert sha256_file(dest / "nq_open" / f.rel) == f.sha256
    assert not [p for p in (dest / "nq_open").iterdir() if p.name.startswith(".")]
    again = data.fetch("nq_open", dest, mirror=(shared_data).as_uri())
    assert [f.action for f in again] == ["present", "present"]


def test_fetch_refuses_a_wrong_digest(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "nq_open"
    mirror.mkdir(parents=True)
    for f in data.DATASETS["nq_open"]:
        (mirror / f.rel).write_text('{"question": "q", "answer": ["a"]}\n')
    dest = tmp_path / "raw"
    with pytest.raises(GvstoreError, match="nothing was written"):
        data.fetch("nq_open", dest, mirror=(tmp_path / "mirror").as_uri())
    assert not (dest / "nq_open" / "NQ-open.dev.jsonl").exists()
    assert not list(dest.rglob("*.part"))


def test_fetch_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GvstoreError, match="cannot download"):
        data.fetch("nq_open", tmp_path / "raw", mirror=(tmp_path / "nowhere").as_uri())


def test_derived_exemplars_from_official_sources(shared_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The two exemplar files are rebuilt byte for byte from lm-eval-shaped sources."""
    gsm = [json.loads(x) for x in (shared_data / "gsm8k" / "cot_exemplars.jsonl").open()]
    src = tmp_path / "src"
    src.mkdir()
    doc = {"task": "gsm8k_cot", "fewshot_config": {
        "sampler": "first_n",
        "samples": [{"question": r["question"], "target": r["answer"]} for r in gsm]}}
    (src / "gsm8k-cot.yaml").write_text(
        "process_results: !function utils.process\n" + yaml.safe_dump(doc))
    minerva = [json.loads(x) for x in (shared_data / "math" / "minerva_exemplars.jsonl").open()]
    (src / "utils.py").write_text(
        "import os\n\ndef list_fewshot_samples() -> list[dict]:\n"
        f"    return {minerva!r}\n")
    table = dict(data.DATASETS)
    for name, fname in (("gsm8k", "gsm8k-cot.yaml"), ("math", "utils.py")):
        table[name] = tuple(
            data.DataFile(f.rel, f.sha256, f.size, (src / fname).as_uri(), f.derive)
            if f.derive else
            data.DataFile(f.rel, f.sha256, f.size, (shared_data / name / f.rel).as_uri())
            for f in data.DATASETS[name]
        )
    monkeypatch.setattr(data, "DATASETS", table)
    for name in ("gsm8k", "math"):
        got = data.fetch(name, tmp_path / "raw")
        assert all(f.action == "downloaded" for f in got)
    for rel in ("gsm8k/cot_exemplars.jsonl", "math/minerva_exemplars.jsonl"):
        a = hashlib.sha256((tmp_path / "raw" / rel).read_bytes()).hexdigest()
        assert a == hashlib.sha256((shared_data / rel).read_bytes()).hexdigest()
