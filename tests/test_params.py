"""params.yaml: typed parsing, semantic checks, the paper-scale configs, and stage refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gvstore.cli.app import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _validate(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["params", "validate", *args])
    return res.exit_code, res.stderr + res.stdout


def test_default_params_validate() -> None:
    code, out = _validate(str(REPO / "params.yaml"))
    assert code == 0, out
    assert "15 stages" in out


CPU_CONFIGS = {"rounds-arith.yaml"}  # the default study's extension, checked in test_rounds


@pytest.mark.parametrize("config", sorted(p for p in (REPO / "configs").glob("*.yaml")
                                          if p.name not in CPU_CONFIGS), ids=lambda p: p.name)
def test_paper_scale_configs_validate(config: Path, shared_data: Path) -> None:
    code, out = _validate(str(config))
    assert code == 0, out
    raw = yaml.safe_load(config.read_text())
    assert raw["sample"]["n"] == 128 and raw["sample"]["backend"] == "vllm"


def _bad(tmp_path: Path, edit: dict) -> Path:  # type: ignore[type-arg]
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in edit.items():
        node = raw
        *path, last = dotted.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


MISTAKES = {
    "unknown method": ({"study.methods": ["mc", "telepathy"]}, "unknown method 'telepathy'"),
    "negative n": ({"sample.n": -4}, "sample.n must be >= 1"),
    "quantile 1.5": ({"report.specs": ["mc:quantile=1.5"]}, "between 0 and 1"),
    "unknown model source": ({"models.smollm2-135m-instruct.source": "ftp"},
                             "$.models.smollm2-135m-instruct.source"),
    "wrong type": ({"sample.temperature": "hot"}, "$.sample.temperature"),
    "typo in a key": ({"sample.temprature": 0.5}, "temprature"),
    "unknown task": ({"study.tasks": ["arith", "chess"]}, "unknown task 'chess'"),
    "missing data file": ({"study.tasks": ["gsm8k"], "tasks.gsm8k": {"prompts": 4}},
                          "gvstore data fetch gsm8k"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistakes_are_one_line_errors(name: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GVSTORE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/raw here: the gsm8k file is missing
    edit, expect = MISTAKES[name]
    path = _bad(tmp_path, edit)
    res = runner.invoke(app, ["params", "validate", str(path)])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert expect in lines[0]


@pytest.mark.parametrize("stage", ["generate.py --task arith", "report.py",
                                   "prepare_model.py --model smollm2-135m-instruct"])
def test_stages_refuse_bad_params_before_writing(stage: str, tmp_path: Path) -> None:
    path = _bad(tmp_path, {"study.methods": ["mc", "telepathy"],
                           "base.store": str(tmp_path / "store"),
                           "base.models_dir": str(tmp_path / "models"),
                           "base.reports": str(tmp_path / "reports")})
    script, *args = stage.split()
    out = subprocess.run([sys.executable, str(REPO / "stages" / script), *args,
                          "--params", str(path)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "unknown method" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "models").exists()
    assert not (tmp_path / "reports").exists()
