"""The report step on synthetic stores: metrics.json, series, PNGs, and degenerate methods."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gvstore.params import load
from gvstore.report import build
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[1]


def _params(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(models=["g", "v"], generators=["g"], verifiers=["v"], tasks=["arith"])
    raw["models"] = {"g": {"package": "x"}, "v": {"package": "x"}}
    raw["report"].update(specs=["mc:quantile=0.8", "cot_score:tau=8"],
                         sweeps=["mc:quantile", "cot_score:tau"], resamples=50)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_report_with_a_method_that_never_parsed(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with store.writer("synth") as w:
        # cot_score fails to parse every time (as the 135M model does on sudoku)
        w.extend(generate(SynthConfig(prompts=12, samples=4, methods=("mc", "cot_score"),
                                      parse_failure=1.0, task="arith", generator="g",
                                      verifier="v")))
    params = load(_params(tmp_path))
    out = tmp_path / "reports"
    metrics = build(store, params, out).metrics
    gap = metrics["gap"]["arith"]["g"]["v"]["round0"]
    assert gap["cot_score:tau=8"]["empty_prompts"] == 12  # nothing kept: falls back to base
    assert gap["cot_score:tau=8"]["gap"] == 0.0
    assert "held_out_gap" in metrics["selection"]["arith"]["g"]["v"]["round0"]["mc:quantile"]
    assert json.loads((out / "report.json").read_text()) == metrics
    assert (out / "plots" / "passk.csv").read_text().startswith("group,k,pass_at_k")
    assert (out / "sweep-mc_quantile.png").stat().st_size > 1000


def test_report_command_takes_store_after_its_name(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gvstore.cli.app import app

    store = Store(tmp_path / "store")
    with store.writer("synth") as w:
        w.extend(generate(SynthConfig(prompts=12, samples=4, methods=("mc", "cot_score"),
                                      task="arith", generator="g", verifier="v")))
    path = _params(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["base"].update(store=str(tmp_path / "elsewhere"), reports=str(tmp_path / "reports"))
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["report", "--params", str(path), "--build", "--store",
                                   str(store.root), "--json"], env={"GVSTORE_NO_PROGRESS": "1"})
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown == json.loads((tmp_path / "reports" / "report.json").read_text())
    assert shown["gap"]["arith"]["g"]["v"]["round0"]["mc:quantile=0.8"]["prompts"] == 12
    missing = CliRunner().invoke(app, ["report", "--params", str(path), "--build", "--store",
                                       str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert "no store at" in missing.output
