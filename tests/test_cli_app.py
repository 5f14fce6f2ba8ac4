"""The ``gvstore`` app itself: what starting it imports, ``--store`` after a command's name, the
shared short flags and the one place errors become lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gvstore import synth
from gvstore.cli.app import app, main
from gvstore.store import Store

runner = CliRunner()
HEAVY = ("polars", "numpy", "torch", "matplotlib", "transformers", "vllm", "trl")


def _imported_after(code: str) -> list[str]:
    check = f"; import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_importing_the_app_loads_nothing_heavy() -> None:
    assert _imported_after("import gvstore.cli.app") == []


@pytest.mark.parametrize("args", [["--help"], ["gap", "--help"], ["passk", "--help"],
                                  ["store", "--help"], ["generate", "--help"]])
def test_help_loads_nothing_heavy(args: list[str]) -> None:
    code = ("import contextlib, io\nfrom gvstore.cli.app import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main({args!r}) == 0")
    assert _imported_after(code) == []


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app") / "store"
    cfg = synth.SynthConfig(prompts=12, samples=4, seed=2, methods=("mc", "cot_binary"))
    with Store(root).writer("synth") as w:
        synth.write(w.add, cfg)
    return root


def _json(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    data = json.loads(res.stdout)
    data.pop("seconds", None)  # grade's wall time: the one field that differs run to run
    return data


@pytest.mark.parametrize("command", [
    ["store", "stats"], ["grade"], ["gap", "mc:quantile=0.5", "--resamples", "0"],
    ["sweep", "mc:quantile", "--values", "0.5", "--resamples", "0"],
    ["cross", "mc:quantile=0.5", "--resamples", "0"], ["passk", "--k", "1,2"], ["corr"],
    ["variance"],
], ids=lambda c: c[0])
def test_store_after_the_command_name(store: Path, tmp_path: Path, command: list[str]) -> None:
    before = _json("--store", str(store), *command)
    after = _json(*command, "--store", str(store))
    assert after == before
    # after the name it wins over the one before it (and over $GVSTORE_STORE)
    assert _json("--store", str(tmp_path / "elsewhere"), *command, "--store", str(store)) \
        == before


def test_store_after_the_name_for_export_and_weights(store: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sft = ["export", "sft", "--spec", "mc:quantile=0.5"]
    got = _json(*sft, "--out", str(a), "--store", str(store))
    assert got == _json("--store", str(store), *sft, "--out", str(b)) | {"path": str(a)}
    assert a.read_text() == b.read_text()
    assert _json("weights", "mc:quantile=0.5", "--store", str(store))["written"] == 48


def test_store_show_and_verify_take_store_after_the_name(store: Path) -> None:
    rec = Store(store).records(["generation"])[0]
    assert _json("store", "show", rec.id, "--store", str(store))["id"] == rec.id
    res = runner.invoke(app, ["store", "verify", "--store", str(store)])
    assert res.exit_code == 0 and res.stdout.startswith("ok")


@pytest.mark.parametrize("command", [
    ["store", "stats"], ["store", "verify"], ["store", "show", "abc"], ["grade"],
    ["gap", "mc:tau=0.5"], ["sweep", "mc:tau"], ["cross", "mc:tau=0.5"],
    ["weights", "mc:tau=0.5"], ["export", "sft", "--spec", "mc:tau=0.5", "--out", "x.jsonl"],
    ["passk"], ["corr"], ["variance"],
], ids=lambda c: "-".join(c[:2]))
def test_a_missing_store_is_one_line(tmp_path: Path, command: list[str]) -> None:
    absent = tmp_path / "absent"
    res = runner.invoke(app, [*command, "--store", str(absent)])
    assert res.exit_code == 1, res.output
    assert res.stderr == f"error: no store at {absent} (set --store or GVSTORE_STORE)\n"
    assert not absent.exists()


@pytest.mark.parametrize("command", [["passk"], ["corr"], ["variance"]])
def test_the_short_filter_flags_are_shared(store: Path, command: list[str]) -> None:
    long = _json("--store", str(store), *command, "--task", "synth", "--generator", "sim-gen",
                 "--round", "0")
    short = _json("--store", str(store), *command, "-t", "synth", "-g", "sim-gen", "-r", "0")
    assert short == long
    if command != ["passk"]:
        assert _json("--store", str(store), *command, "-v", "sim-ver") \
            == _json("--store", str(store), *command, "--verifier", "sim-ver")


def test_the_utility_short_flag(store: Path) -> None:
    flexible = _json("--store", str(store), "passk", "-u", "flexible")
    assert flexible == _json("--store", str(store), "passk", "--utility", "flexible")
    assert flexible["utility"] == "flexible"


def test_a_bad_spec_keeps_its_caret_everywhere(store: Path) -> None:
    for command in (["gap", "mc:tau="], ["weights", "mc:tau="]):
        res = runner.invoke(app, ["--store", str(store), *command])
        assert res.exit_code == 1
        assert res.stderr.startswith("error: bad filter spec") and "\n  mc:tau=\n" in res.stderr
        assert res.stderr.splitlines()[-1].strip() == "^"


def test_main_returns_the_exit_status(tmp_path: Path) -> None:
    assert main(["store", "stats", "--store", str(tmp_path / "absent")]) == 1


def test_main_adds_only_the_command_it_runs() -> None:
    from gvstore.cli.app import COMMANDS, build_app, command_name

    assert command_name(["--store", "x", "gap", "mc:tau=1"]) == "gap"
    assert command_name(["--store=x", "--debug", "store", "verify"]) == "store"
    assert command_name(["--skip-damaged", "--", "passk"]) == "passk"
    assert command_name(["--store", "gap"]) is None  # "gap" is the store's path here
    assert command_name(["--help"]) is None
    # every command the full app has is in the table, so main can add it alone
    full = {c.name for c in build_app().registered_commands} | {
        g.name for g in build_app().registered_groups}
    assert full == set(COMMANDS)
    code = ("import contextlib, io, sys\nfrom gvstore.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['gap', '--help']) == 0\n"
            "assert 'gvstore.cli.generate' not in sys.modules\n"
            "assert 'gvstore.cli.quality' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
