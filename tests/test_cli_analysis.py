"""The analysis commands (gap, sweep, cross, weights, export) through the real ``gvstore`` app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gvstore import synth
from gvstore.cli.app import app as gvstore_app
from gvstore.store import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return gvstore_app


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    cfg = synth.SynthConfig(prompts=40, samples=8, seed=1,
                            methods=("mc", "cot_binary", "cot_score", "tournament"))
    with Store(root).writer("synth") as w:
        synth.write(w.add, cfg)
    return root


def run(app: typer.Typer, store: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["--store", str(store), *args])
    return res.exit_code, res.output


def test_gap_json(app: typer.Typer, store: Path) -> None:
    code, out = run(app, store, "gap", "mc:quantile=0.8", "cot_score:tau=8", "--json",
                    "--resamples", "200")
    assert code == 0, out
    rows = json.loads(out)["results"]
    assert [r["spec"] for r in rows] == ["mc:quantile=0.8", "cot_score:tau=8"]
    for r in rows:
        assert r["prompts"] == 40 and r["generations"] == 320
        assert r["gap_lo"] <= r["gap"] <= r["gap_hi"]
    # the verdict reads the gap's interval (docs/metrics.md), computed here on the same store
    from gvstore.analysis.frames import Dataset
    from gvstore.analysis.gap import gap_table
    from gvstore.analysis.specs import parse
    from gvstore.replay import Projections

    want = gap_table(Dataset(Projections(Store(store))),
                     [parse("mc:quantile=0.8"), parse("cot_score:tau=8")], resamples=200)
    assert [r["verdict"] for r in rows] == [w.verdict for w in want]
    # the simulated verifier separates right from wrong (discrimination 1.5): both gaps > 0
    assert [w.verdict for w in want] == ["improvable", "improvable"]
    for r in rows:
        lo, hi = r["gap_lo"], r["gap_hi"]
        assert r["verdict"] == ("improvable" if lo > 0 else "worse" if hi < 0
                                else "no gap" if lo >= -0.005 and hi <= 0.005
                                else "inconclusive")
    code2, out2 = run(app, store, "gap", "mc:quantile=0.8", "cot_score:tau=8", "--json",
                      "--resamples", "200")
    assert out2 == out  # seeded: same output
    code, table = run(app, store, "gap", "mc:quantile=0.8")
    assert code == 0 and "generation-verification gap" in table


def test_bad_spec_points_at_the_fault(app: typer.Typer, store: Path) -> None:
    code, out = run(app, store, "gap", "mc:quantile=1.5")
    assert code == 1
    assert "between 0 and 1" in out and "at position 12" in out
    assert "  mc:quantile=1.5\n" in out and "\n              ^" in out


def test_filters_and_empty(app: typer.Typer, store: Path) -> None:
    code, out = run(app, store, "gap", "mc:tau=0.5", "--generator", "nobody")
    assert code == 1 and "no graded generations" in out
    code, out = run(app, store, "gap", "mc:tau=0.5", "--task", "synth", "--round", "0",
                    "--verifier", "sim-ver", "--utility", "flexible", "--json",
                    "--resamples", "0")
    assert code == 0 and json.loads(out)["results"][0]["utility"] == "flexible"


def test_sweep_select_and_plot(app: typer.Typer, store: Path, tmp_path: Path) -> None:
    png = tmp_path / "sweep.png"
    code, out = run(app, store, "sweep", "mc:quantile", "--range", "0:1:11", "--select-on",
                    "gap", "--plot", str(png), "--json", "--resamples", "100")
    assert code == 0, out
    data = json.loads(out)
    (sw,) = data["sweeps"]
    assert [p["value"] for p in sw["points"]][:3] == [0.0, 0.1, 0.2]
    (sel,) = data["selection"]
    assert sel["select_prompts"] == 20 and sel["eval_prompts"] == 20
    assert "held_out_gap" in sel and "in_sample_gap" in sel
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, out = run(app, store, "sweep", "tournament:rounds", "--resamples", "0")
    assert code == 0 and "in-sample" not in out
    code, out = run(app, store, "sweep", "mc:quantile", "--select-on", "gap")
    assert code == 0 and "held-out" in out and "in-sample" in out
    code, out = run(app, store, "sweep", "mc:quantile", "--values", "x")
    assert code == 1 and "--values" in out


def test_cross(app: typer.Typer, store: Path, tmp_path: Path) -> None:
    png = tmp_path / "cross.png"
    code, out = run(app, store, "cross", "cot_binary:tau=1", "--json", "--plot", str(png),
                    "--resamples", "50")
    assert code == 0, out
    (m,) = json.loads(out)["matrices"]
    assert m["generators"] == ["sim-gen"] and m["verifiers"] == ["sim-ver"]
    assert png.exists()


def test_export_and_weights(app: typer.Typer, store: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "sft.jsonl"
    code, out = run(app, store, "export", "sft", "--spec", "mc:quantile=0.8", "--out",
                    str(out_file), "--json")
    assert code == 0, out
    rep = json.loads(out)
    assert rep["lines"] == len(out_file.read_text().splitlines()) == 80
    code, out = run(app, store, "export", "pairs", "--spec", "cot_score:tau=8", "--out",
                    str(tmp_path / "pairs.jsonl"), "--json")
    assert code == 0 and json.loads(out)["lines"] > 0
    code, out = run(app, store, "weights", "mc:quantile=0.8", "--json")
    assert code == 0 and json.loads(out)["written"] == 320
    code, out = run(app, store, "weights", "mc:quantile=0.8", "--json")
    assert json.loads(out)["written"] == 0 and json.loads(out)["present"] == 320


def test_stage(store: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("weights_stage", REPO / "stages/weights.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--store", str(store), "--spec", "cot_binary:tau=1"]) == 0
    assert mod.main(["--store", str(store), "--spec", "cot_binary:tau=1"]) == 0
    assert len(Store(store).records(kinds=("weight",))) == 320
    assert mod.main(["--store", str(store), "--spec", "cot_binary:tau"]) == 1
