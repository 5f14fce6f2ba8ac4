"""Names and data are printed as text: markup never read, control characters shown escaped.

A generator named ``[/]`` used to crash gap, store stats, passk and sweep (rich MarkupError,
exit 70); ``[link=...]`` printed a hyperlink; ESC sequences (an OSC window title, a clear
screen) reached the terminal, through pipes and one-line errors; ``tasks show`` printed a
reference ``[a,b]`` as nothing. These tests run the real CLI on a real small store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gvstore import synth
from gvstore.cli.app import app
from gvstore.output import err_console, fmt, one_line, safe_text
from gvstore.progress import progress
from gvstore.records import kind_of
from gvstore.store import Store
from gvstore.tasks.arith import Arith
from gvstore.tasks.base import Item

REPO = Path(__file__).resolve().parents[1]
CLOSE = "[/]"
LINK = "[link=https://evil.example]x[/link]"
ESCS = "a\x1b]0;pwned\x07b\x1b[2Jc"  # an OSC window title, then clear screen
ESCS_SHOWN = "a\\x1b]0;pwned\\x07b\\x1b[2Jc"
C1 = "c1\x9b2J\u202eevil"  # an 8-bit CSI (clear screen) and a right-to-left override
C1_SHOWN = "c1\\x9b2J\\u202eevil"
NAMES = (CLOSE, LINK, ESCS, C1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("safety") / "store"
    with Store(root).writer("synth") as w:
        for i, name in enumerate(NAMES):
            synth.write(w.add, synth.SynthConfig(prompts=6, samples=4, seed=i, generator=name,
                                                 methods=("mc", "cot_score")))
    return root


def _cli(store: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["--store", str(store), *args],
                             env={"GVSTORE_NO_PROGRESS": "1"})
    return res.exit_code, res.stdout, res.stderr


def _no_escapes(*texts: str) -> None:
    for t in texts:
        for c in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
            assert c not in t, repr(t[:300])


# ---- the mechanism -------------------------------------------------------------------------

def test_safe_text_escapes_every_control_character() -> None:
    assert safe_text(ESCS) == ESCS_SHOWN
    assert safe_text("a\rb\x00c\x7fd\x9be\u202ef\u2028g") == (
        "a\\rb\\x00c\\x7fd\\x9be\\u202ef\\u2028g")
    assert safe_text("x\ny\tz") == "x\\ny\\tz"
    assert safe_text("x\ny\tz\x1b", multiline=True) == "x\ny\tz\\x1b"
    assert safe_text("[/] [bold]é 名 C:\\dir") == "[/] [bold]é 名 C:\\dir"  # text as it is
    assert one_line("  first\n\n  second\t third\r\x1b[2J ") == "first second third\\r\\x1b[2J"
    assert fmt(ESCS) == ESCS_SHOWN and fmt(None) == "-" and fmt(0.5) == "0.5000"


def test_progress_and_status_print_names_as_text() -> None:
    bar = progress(quiet=True)
    job = bar.add_task(f"grade {CLOSE} {ESCS}", total=3, rate=LINK)
    task = bar.tasks[0]
    assert task.id == job
    assert bar.columns[0].render(task).plain == f"grade [/] {ESCS_SHOWN}"  # type: ignore[union-attr]
    assert bar.columns[3].render(task).plain == LINK  # type: ignore[union-attr]
    status = err_console.status(f"converting {CLOSE}{ESCS}")
    assert status.renderable.text.plain == f"converting [/]{ESCS_SHOWN}"  # type: ignore[union-attr]


# ---- the real CLI, under a pipe ------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("gap", "mc:tau=0.5", "--resamples", "20"),
    ("store", "stats"),
    ("passk",),
    ("sweep", "mc:quantile", "--range", "0:1:3", "--resamples", "20"),
])
def test_analysis_prints_names_literally(store: Path, args: tuple[str, ...]) -> None:
    code, out, err = _cli(store, *args)
    assert code == 0, err
    _no_escapes(out, err)
    flat = out.replace("\n", " ")
    # the names, whole (tables may wrap a long cell over lines: look across them)
    for shown in (CLOSE, "[link=", ESCS_SHOWN[:12]):
        assert shown in flat, (shown, out)


def test_wide_table_shows_each_name_whole(store: Path) -> None:
    code, out, err = _cli(store, "store", "stats")
    assert code == 0, err
    lines = out.splitlines()
    for shown in (CLOSE, LINK, ESCS_SHOWN, C1_SHOWN):
        assert any(f"│ {shown} " in line for line in lines), (shown, out)


def test_json_stays_escaped(store: Path) -> None:
    code, out, err = _cli(store, "passk", "--json")
    assert code == 0, err
    _no_escapes(out)
    assert "\\u001b]0;pwned\\u0007" in out
    assert {r["model"] for r in json.loads(out)["rows"]} == set(NAMES)


def test_store_show_prints_the_record_as_text(store: Path) -> None:
    rec = next(r for r in Store(store).iter_records()
               if kind_of(r) == "generation" and getattr(r, "model", "") == C1)
    code, out, err = _cli(store, "store", "show", rec.id)
    assert code == 0, err
    _no_escapes(out, err)
    assert out.startswith(f"generation {rec.id}\n")
    assert f'"model": "{C1_SHOWN}"' in out


def test_tasks_show_prints_reference_and_text_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    class Odd(Arith):
        def items(self, split: str = "test", path: object = None) -> list[Item]:
            return [Item("i[/]", f"What is [bold]x[/bold] {ESCS}?", "[a,b]", split)]

    monkeypatch.setattr("gvstore.cli.tasks.get_task", lambda name, path=None: Odd())
    res = CliRunner().invoke(app, ["tasks", "show", "arith", "--n", "1", "--kshot", "0"])
    assert res.exit_code == 0, res.output
    _no_escapes(res.stdout)
    assert "reference: [a,b]\n" in res.stdout
    assert f"What is [bold]x[/bold] {ESCS_SHOWN}?" in res.stdout
    assert "arith test i[/] (kshot 0)" in res.stdout


def test_one_line_error_carrying_a_name(store: Path, tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    evil = f"{CLOSE}{LINK}{ESCS}\rover"
    models.write_text(json.dumps([{"name": evil, "family": "f", "flops": 1e20}] * 2))
    code, out, err = _cli(store, "scaling", "--models", str(models), "--spec", "mc:tau=0.5")
    assert code == 1, err
    _no_escapes(out, err)
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert f"model(s) listed twice: [/]{LINK}{ESCS_SHOWN}\\rover" in err


def test_spec_error_keeps_its_caret_and_escapes(store: Path) -> None:
    code, out, err = _cli(store, "gap", "mc:quantile=1.5\x1b[2J")
    assert code == 1
    _no_escapes(out, err)
    assert "\\x1b[2J" in err and "\n" in err.strip()


# ---- a forced terminal: rich writes its own styles, nothing from the data ------------------

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's colours and bold: the only escapes allowed


def _terminal(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="200",
               GVSTORE_NO_PROGRESS="1")
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "gvstore", "--store", str(store), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_forced_terminal_gets_no_escape_from_data(store: Path, tmp_path: Path) -> None:
    res = _terminal(store, "passk")
    assert res.returncode == 0, res.stderr
    assert SGR.search(res.stdout), "rich did not think it wrote to a terminal"
    plain = SGR.sub("", res.stdout)
    _no_escapes(plain, SGR.sub("", res.stderr))
    assert "\x1b]8;" not in res.stdout  # no OSC 8 hyperlink
    for shown in (CLOSE, LINK, ESCS_SHOWN, C1_SHOWN):
        assert shown in plain
    models = tmp_path / "models.json"
    models.write_text(json.dumps([{"name": ESCS, "family": "f", "flops": 1e20}] * 2))
    res = _terminal(store, "scaling", "--models", str(models), "--spec", "mc:tau=0.5")
    assert res.returncode == 1
    err = SGR.sub("", res.stderr)
    _no_escapes(err)
    assert err.count("\n") == 1 and f"listed twice: {ESCS_SHOWN}" in err


def test_stage_error_and_summary_lines_are_text(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(REPO / "stages"))
    try:
        from common import run
    finally:
        sys.path.remove(str(REPO / "stages"))
    from gvstore.cli.console import note
    from gvstore.errors import GvstoreError

    def body() -> int:
        note(f"round 1 ({LINK}{ESCS})")
        raise GvstoreError(f"no generations of model {CLOSE}{ESCS}\r\nsecond line")

    assert run(body) == 1
    err = capsys.readouterr().err
    _no_escapes(err)
    assert err == (f"round 1 ({LINK}{ESCS_SHOWN})\n"
                   f"error: no generations of model [/]{ESCS_SHOWN}\\r second line\n")
