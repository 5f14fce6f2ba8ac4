"""``gvstore verifier`` through the real app: JSON, tables, plots, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore import synth
from gvstore.cli.app import app
from gvstore.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("q") / "store"
    cfg = synth.SynthConfig(prompts=16, samples=4, seed=2,
                            methods=("mc", "cot_binary", "cot_score", "tournament"))
    with Store(root).writer("synth") as w:
        synth.write(w.add, cfg)
    return root


def run(store: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["--store", str(store), "verifier", *args])
    return res.exit_code, res.output


def test_json(store: Path, tmp_path: Path) -> None:
    code, out = run(store, "mc", "cot_score", "tournament", "--json", "--resamples", "50",
                    "--max-thresholds", "5", "--plot", str(tmp_path / "p"))
    assert code == 0, out
    data = json.loads(out)
    assert data["skipped"] == ["tournament"]
    rows = data["results"]
    assert [r["method"] for r in rows] == ["mc", "cot_score"]
    for r in rows:
        assert 0.0 <= r["auc"] <= 1.0 and r["auc_lo"] <= r["auc"] <= r["auc_hi"]
        assert len(r["curve"]["threshold"]) <= 5 and len(r["bins"]) == 10
        assert r["samples"] + r["unparsed"] == r["verified"] == 64
    assert rows[1]["scale"] == [1.0, 10.0]
    assert [Path(p).name for p in data["plots"]] == [
        "verifier_roc.png", "verifier_reliability.png", "verifier_scores.png"]
    assert all(Path(p).exists() for p in data["plots"])


def test_tables(store: Path) -> None:
    code, out = run(store, "--resamples", "20", "--bins", "5")
    assert code == 0, out
    assert "verifier quality" in out and "AUC" in out and "cot_binary" in out
    assert "precision and recall" in out and "reliability diagram" in out
    assert "[0.00, 0.20]" in out  # five bins, the first one closed
    code, out = run(store, "--summary", "--resamples", "0")
    assert code == 0 and "precision and recall" not in out and "ECE" in out


def test_errors(store: Path) -> None:
    code, out = run(store, "nope")
    assert code == 1 and "unknown method" in out
    code, out = run(store, "-v", "nobody")
    assert code == 1 and "no graded generations" in out
    code, out = run(store, "--bins", "0")
    assert code == 1 and "bins must be" in out


def test_names_print_as_text(tmp_path: Path) -> None:
    b = StoreBuilder(tmp_path / "m")
    gens = b.gens(b.prompt("p"), [1, 0, 1], model="[bold]g$x$")
    b.scores(gens, "mc", [0.9, 0.4, 0.4], verifier="[bold]g$x$")  # self-verification
    b.scores(gens, "mc", [0.2, 0.1, 0.3], verifier="[/]v")
    root = b.write().root
    code, out = run(root, "mc", "--resamples", "10", "--plot", str(tmp_path / "p"))
    assert code == 0, out
    assert "[bold]g$x$" in out and "[/]v" in out
    assert all((tmp_path / "p" / f"verifier_{n}.png").exists()
               for n in ("roc", "reliability", "scores"))
    code, out = run(root, "mc", "--json", "--resamples", "0")
    rows = {r["verifier"]: r for r in json.loads(out)["results"]}
    # accuracy 2/3; self mean 1.7/3, cross 0.6/3: self-bias 1.1/3
    assert rows["[bold]g$x$"]["self_bias"] == pytest.approx(1.1 / 3)
    assert rows["[bold]g$x$"]["auc"] == pytest.approx(0.75)  # 0.9 > 0.4; 0.4 ties 0.4
