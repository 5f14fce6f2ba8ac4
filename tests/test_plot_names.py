"""Names from the data reach plot labels as plain text, never as matplotlib mathtext.

A generator named ``$\\frac{$`` used to fail ``sweep --plot``, ``cross --plot`` and
``passk --plot`` with "internal error: ValueError ... ParseSyntaxException" (exit 70).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gvstore import synth
from gvstore.cli.app import app
from gvstore.store import Store

NAME = "$\\frac{$"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plotnames") / "store"
    with Store(root).writer("synth") as w:
        synth.write(w.add, synth.SynthConfig(prompts=6, samples=4, seed=0, generator=NAME,
                                             methods=("mc", "tournament")))
    return root


@pytest.mark.parametrize("args", [
    ["sweep", "mc:tau"],
    ["cross", "mc:tau=0.5"],
    ["passk"],
])
def test_math_like_name_plots(store: Path, tmp_path: Path, args: list[str]) -> None:
    png = tmp_path / "out.png"
    res = CliRunner().invoke(app, ["--store", str(store), *args, "--plot", str(png)],
                             env={"GVSTORE_NO_PROGRESS": "1"})
    assert res.exit_code == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
