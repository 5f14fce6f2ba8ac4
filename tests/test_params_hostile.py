"""Hostile params files: each is one line of error naming what and where, exit status 1, before
any model loads (issue 12, item 9). Through the real CLI (`gvstore params validate`) and a
stage script."""

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


def _raw() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _with(edit: dict) -> str:  # type: ignore[type-arg]
    raw = _raw()
    for dotted, value in edit.items():
        node = raw
        *path, last = dotted.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    return yaml.safe_dump(raw, sort_keys=False)


def _one_line_error(tmp_path: Path, data: bytes | str) -> str:
    """Validate a params file with the real CLI; its one stderr line (exit status 1)."""
    path = tmp_path / "params.yaml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    res = runner.invoke(app, ["params", "validate", "--no-data", str(path)])
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("error: ") and str(path) in line, line
    assert "Traceback" not in res.output and "internal error" not in res.output
    return line


# ---- encodings ----------------------------------------------------------------------------


def test_utf16_file_is_named(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text()
    line = _one_line_error(tmp_path, text.encode("utf-16"))
    assert "UTF-16" in line and "save it as UTF-8" in line


def test_utf16_without_bom(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, "base: {seed: 0}\n".encode("utf-16-le"))
    assert "UTF-16" in line


def test_latin1_file_names_the_byte_and_line(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("# The gvstore study.",
                                                      "# The gvstore étude.", 1)
    data = text.encode("latin-1")
    offset = data.index(b"\xe9")
    line = _one_line_error(tmp_path, data)
    assert f"not UTF-8 text (byte 0xe9 at offset {offset}, line 1)" in line


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (REPO / "params.yaml").read_bytes())
    res = runner.invoke(app, ["params", "validate", "--no-data", str(path)])
    assert res.exit_code == 0, res.output


def test_file_over_the_size_bound(tmp_path: Path) -> None:
    from gvstore.io import MAX_BYTES

    text = (REPO / "params.yaml").read_text() + "#" * MAX_BYTES + "\n"
    line = _one_line_error(tmp_path, text)
    assert f"over {MAX_BYTES} bytes" in line


# ---- structure ----------------------------------------------------------------------------


def test_duplicate_key_names_path_and_lines(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text()
    assert "  n: 8 " in text
    text = text.replace("  n: 8 ", "  n: 8\n  n: 4 ", 1)
    first = text.splitlines().index("  n: 8") + 1
    line = _one_line_error(tmp_path, text)
    assert f"duplicate key 'n' at `$.sample.n` (line {first + 1}; first given at line {first})" \
        in line


def test_duplicate_section(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text() + "\nsample:\n  n: 2\n"
    line = _one_line_error(tmp_path, text)
    assert "duplicate key 'sample' at `$.sample`" in line


def test_duplicate_model_entry(tmp_path: Path) -> None:
    text = _with({})
    assert "models:\n" in text
    text = text.replace("models:\n", "models:\n  a: {package: x}\n  a: {package: y}\n", 1)
    line = _one_line_error(tmp_path, text)
    assert "duplicate key 'a' at `$.models.a`" in line


@pytest.mark.parametrize("shape", ["[", "{a: "])
def test_flow_nesting_20000_deep(tmp_path: Path, shape: str) -> None:
    close = "]" if shape == "[" else "}"
    text = _with({}) + f"weights_extra: {shape * 20_000}1{close * 20_000}\n"
    line = _one_line_error(tmp_path, text)
    assert "nested deeper than 32 levels" in line


def test_block_nesting_deep(tmp_path: Path) -> None:
    deep = "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
    line = _one_line_error(tmp_path, _with({}) + deep)
    assert "nested deeper than 32 levels at `$.k0.k1." in line


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    line = _one_line_error(tmp_path, _with({}) + bomb)
    assert "an alias (*name) at `$.b[0]`" in line


# ---- numbers ------------------------------------------------------------------------------


NUMBERS = {
    "n 1e29": ({"sample.n": 10**29}, "sample.n must be <= 100000", "`$.sample.n`"),
    "temperature inf": ({"sample.temperature": float("inf")},
                        "sample.temperature must be a finite number", "`$.sample.temperature`"),
    "temperature nan": ({"sample.temperature": float("nan")},
                        "sample.temperature must be a finite number", "`$.sample.temperature`"),
    "top_p 0": ({"sample.top_p": 0.0}, "sample.top_p must be > 0", "`$.sample.top_p`"),
    "max_tokens huge": ({"sample.max_tokens": 10**12}, "sample.max_tokens must be <= 1e+06",
                        "`$.sample.max_tokens`"),
    "resamples 1e12": ({"report.resamples": 10**12}, "report.resamples must be <= 100000",
                       "`$.report.resamples`"),
    "tournament_rounds 62": ({"verify.tournament_rounds": 62},
                             "verify.tournament_rounds must be <= 20",
                             "`$.verify.tournament_rounds`"),
    "negative seed": ({"base.seed": -1}, "base.seed must be >= 0", "`$.base.seed`"),
    "seed past int64": ({"base.seed": 2**64}, "base.seed must be <= ", "`$.base.seed`"),
    "passk huge": ({"report.passk": [1, 10**9]}, "report.passk[1] must be <= 100000",
                   "`$.report.passk[1]`"),
    "prompts huge": ({"tasks.arith": {"prompts": 10**15}}, "tasks.arith.prompts must be <= ",
                     "`$.tasks.arith.prompts`"),
    "flops inf": ({"models.smollm2-135m-instruct.flops": float("inf")},
                  "models.smollm2-135m-instruct.flops must be a finite number",
                  "`$.models.smollm2-135m-instruct.flops`"),
    "threads huge": ({"rounds.threads": 10**6}, "rounds.threads must be <= 4096",
                     "`$.rounds.threads`"),
}


@pytest.mark.parametrize("case", list(NUMBERS))
def test_numbers_out_of_bounds(case: str, tmp_path: Path) -> None:
    edit, message, where = NUMBERS[case]
    line = _one_line_error(tmp_path, _with(edit))
    assert message in line and where in line, line


def test_the_bounds_allow_a_paper_scale_study(tmp_path: Path) -> None:
    """The bounds are past what a study needs: n=128, 4096 tokens, 10000 resamples pass."""
    path = tmp_path / "params.yaml"
    path.write_text(_with({"sample.n": 128, "sample.max_tokens": 4096,
                           "report.resamples": 10_000, "verify.tournament_rounds": 7,
                           "sample.temperature": 1.5}))
    res = runner.invoke(app, ["params", "validate", "--no-data", str(path)])
    assert res.exit_code == 0, res.output


def test_rounds_hyperparameter_inf(tmp_path: Path) -> None:
    edit = {"rounds.start": ["smollm2-135m-instruct"],
            "rounds.steps": {"r1": "smollm2-135m-instruct"},
            "rounds.hyperparameters": {"learning_rate": float("inf")}}
    line = _one_line_error(tmp_path, _with(edit))
    assert "rounds.hyperparameters" in line and "<= 1" in line and "learning_rate" in line


# ---- specs ---------------------------------------------------------------------------------


def test_non_ascii_digit_in_a_spec(tmp_path: Path) -> None:
    line = _one_line_error(tmp_path, _with({"report.specs": ["mc:tau=\u0663"]}))
    assert "report.specs" in line and "expected a number after tau=" in line


def test_spec_nested_3000_deep(tmp_path: Path) -> None:
    spec = "and(" * 3000 + "mc:tau=1" + ",mc:tau=1)" * 3000
    line = _one_line_error(tmp_path, _with({"weights.specs": [spec]}))
    assert "weights.specs" in line and "at most 4096 characters" in line


def test_spec_nested_past_the_depth_limit(tmp_path: Path) -> None:
    spec = "and(" * 40 + "mc:tau=1" + ",mc:tau=1)" * 40
    assert len(spec) < 4096
    line = _one_line_error(tmp_path, _with({"report.specs": [spec]}))
    assert "report.specs" in line and "nest at most 16 deep" in line


# ---- a stage script ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["duplicate", "utf16", "inf"])
def test_stage_refuses_before_any_model_loads(kind: str, tmp_path: Path) -> None:
    text = _with({"base.models_dir": str(tmp_path / "models"),
                  "base.store": str(tmp_path / "store")})
    data: bytes
    if kind == "duplicate":
        data = text.replace("  n: 8\n", "  n: 8\n  n: 9\n", 1).encode()
    elif kind == "utf16":
        data = text.encode("utf-16")
    else:
        data = text.replace("  temperature: 0.7\n", "  temperature: .inf\n", 1).encode()
    assert data != text.encode()
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, str(REPO / "stages" / "prepare_model.py"),
                          "--model", "smollm2-135m-instruct", "--params", str(path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "models").exists()
