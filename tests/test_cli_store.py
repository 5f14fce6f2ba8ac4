"""`gvstore store ...` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.store import Store

runner = CliRunner()


def _synth(path: Path, *extra: str) -> None:
    res = runner.invoke(app, ["store", "synth", str(path), "--prompts", "10", "--samples", "4",
                              "--methods", "mc,cot_binary,cot_score,tournament", "-q", *extra])
    assert res.exit_code == 0, res.output


def test_synth_stats_json(tmp_path: Path) -> None:
    _synth(tmp_path)
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "stats", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["by_kind"] == {"prompt": 10, "generation": 40, "grade": 40,
                               "verification": 120, "comparison": 30}
    assert data["models"] == {"sim-gen": 40}
    assert data["methods"]["tournament"] == 30
    assert data["compression_ratio"] > 1.0
    assert data["bytes_on_disk"] == sum(p.stat().st_size for p in Store(tmp_path).segments())


def test_synth_is_reproducible(tmp_path: Path) -> None:
    _synth(tmp_path / "a", "--seed", "3")
    _synth(tmp_path / "b", "--seed", "3")
    ids_a = {r.id for r in Store(tmp_path / "a").records()}
    assert ids_a == {r.id for r in Store(tmp_path / "b").records()}
    _synth(tmp_path / "c", "--seed", "4")
    assert ids_a != {r.id for r in Store(tmp_path / "c").records()}


def test_store_option_defaults_to_env(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _synth(tmp_path / "s")
    monkeypatch.setenv("GVSTORE_STORE", str(tmp_path / "s"))
    res = runner.invoke(app, ["store", "stats", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["records"] == 240


def test_verify_ok_then_damaged(tmp_path: Path) -> None:
    _synth(tmp_path)
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify"])
    assert res.exit_code == 0 and res.stdout.startswith("ok")
    seg = Store(tmp_path).segments()[0]
    seg.write_bytes(seg.read_bytes()[:-1])
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify", "--json"])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False and data["damaged_segments"][0]["path"] == str(seg)
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "verify"])
    assert res.exit_code == 1 and seg.name in res.stdout.replace("\n", "")


def test_show(tmp_path: Path) -> None:
    _synth(tmp_path)
    rec = Store(tmp_path).records(["generation"])[0]
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "show", rec.id[7:19], "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["id"] == rec.id and data["kind"] == "generation" and data["text"] == rec.text
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "show", rec.id])
    assert res.exit_code == 0 and "generation" in res.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    cases = [
        ["--store", str(tmp_path / "none"), "store", "stats"],
        ["--store", str(tmp_path / "none"), "store", "verify"],
        ["store", "synth", str(tmp_path / "x"), "--methods", "nope"],
        ["store", "synth", str(tmp_path / "x"), "--parse-failure", "2"],
        ["store", "synth", str(tmp_path / "x"), "--prompts", "0"],
    ]
    for args in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
        assert "Traceback" not in res.output
    assert not (tmp_path / "x").exists()  # bad input wrote nothing


def test_show_unknown_id_is_an_error(tmp_path: Path) -> None:
    _synth(tmp_path)
    res = runner.invoke(app, ["--store", str(tmp_path), "store", "show", "00000000000000x"])
    assert res.exit_code == 1 and "no record" in res.stderr


def test_console_script_and_debug_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "gvstore", "--store", str(tmp_path / "none"), "store", "stats"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error: no store")
    dbg = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr


def _imported_after(stmt: str) -> list[str]:
    heavy = ("torch", "vllm", "transformers", "trl", "polars", "numpy", "matplotlib", "yaml")
    code = f"import sys; {stmt}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_gvstore_stays_light() -> None:
    # Records and the store import nothing heavier than msgspec and zstandard (not even
    # PyYAML, though gvstore.io, which the store writes through, holds the YAML reader).
    assert _imported_after("import gvstore.records, gvstore.store, gvstore.digest") == []
    assert _imported_after("from gvstore.io import read_yaml") == []
    # The CLI imports neither a model stack nor the analysis stack just to start.
    assert _imported_after("import gvstore.cli.app") == []
