"""``gvstore view``: the bundle's files, the per-prompt data (hand-computed), safe encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.analysis.specs import parse
from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.records import Verification
from gvstore.view.bundle import MARKER, encode, write_bundle
from gvstore.view.data import ViewData

HOSTILE = ("</script><script>document.title='pwned'</script>"
           "<img src=x onerror=\"document.title='pwned'\"></textarea>\u2028&amp;end")
MODEL = "<b>g</b>\x1b[31m"


def make_store(root: Path, model: str = "g", *, write: bool = True) -> StoreBuilder:
    """Prompt a: samples graded (1, 1, "42"), (0, 1, "41"), ungraded; mc 0.9, 0.2, 0.7.
    Prompt b: samples graded 0, 0; mc 0.6, unparsed. mc:tau=0.5 keeps a0, a2, b0.
    ``write=False`` leaves the records queued (a caller adds more, then writes)."""
    b = StoreBuilder(root)
    pa, pb = b.prompt("a", text="what is <6*7>?"), b.prompt("b")
    ga = [b.generation(pa, i, t, model=model) for i, t in enumerate([HOSTILE, "41", "43"])]
    b.grade(ga[0], 1.0, 1.0, "42")
    b.grade(ga[1], 0.0, 1.0, "41")
    b.add(Verification(generation_id=ga[0].id, verifier="v", method="mc", score=0.9,
                       raw="<b>yes</b>"))
    b.scores(ga[1:], "mc", [0.2, 0.7])
    gb = b.gens(pb, [0.0, 0.0], model=model)
    b.scores(gb, "mc", [0.6, None])
    if write:
        b.write()
    return b


def read_js(path: Path) -> dict[str, Any]:
    raw = path.read_text(encoding="ascii")
    assert raw.startswith("gvPrompt(") and raw.endswith(");\n")
    out: dict[str, Any] = json.loads(raw[len("gvPrompt("):-3])
    return out


def bundle(tmp_path: Path, model: str = "g", plots: bool = False) -> Path:
    b = make_store(tmp_path / "store", model)
    view = ViewData(b.store, [parse("mc:tau=0.5"), parse("mc:quantile=0.5")], resamples=20)
    out = tmp_path / "view"
    rep = write_bundle(view, out, plots=plots, resamples=20)
    assert (rep.groups, rep.prompts, rep.samples) == (1, 2, 5)
    return out


def test_bundle_files_and_index(tmp_path: Path) -> None:
    out = bundle(tmp_path, plots=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "index.html", "p", "plots"])
    assert sorted(p.name for p in (out / "p").iterdir()) == ["0.js", "1.js"]
    html = (out / "index.html").read_text(encoding="utf-8")
    start = html.index("<script>gvIndex(") + len("<script>gvIndex(")
    index = json.loads(html[start:html.index(");</script>", start)])
    assert index["spec"] == "mc:tau=0.5"
    # one sweep per sweepable template (tau, quantile), pass@k, the 3 verifier figures
    files = [p["file"] for p in index["plots"]]
    assert files == ["plots/sweep-mc_tau.png", "plots/sweep-mc_quantile.png",
                     "plots/passk.png", "plots/verifier_roc.png",
                     "plots/verifier_reliability.png", "plots/verifier_scores.png"]
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        f.removeprefix("plots/") for f in files)
    assert all((out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    gap = {r["spec"]: r["gap"] for r in index["overview"]}
    assert gap["mc:tau=0.5"] == pytest.approx(0.25)  # prompt a: 1 - 0.5; prompt b: 0 - 0
    (g,) = index["groups"]
    rows = {r["snippet"]: r for r in g["prompts"]}
    a, b = rows["what is <6*7>?"], rows["question b"]
    assert (a["acc"], a["acc_w"], a["gap"], a["disagree"]) == (0.5, 1.0, 0.5, 0.0)
    assert (a["samples"], a["kept"]) == (3, 2)
    # b: both wrong; b0 kept (disagrees with the ground truth), b1 unparsed, rejected
    assert (b["acc"], b["acc_w"], b["gap"], b["disagree"]) == (0.0, 0.0, 0.0, 0.5)


def test_prompt_files_hold_samples_and_grades(tmp_path: Path) -> None:
    out = bundle(tmp_path)
    data = {d["text"]: d for d in (read_js(p) for p in (out / "p").glob("*.js"))}
    a = data["what is <6*7>?"]
    assert a["id"].startswith("sha256:") and a["verifier"] == "v"
    got = [(s["index"], s["text"], s["strict"], s["flexible"], s["extracted"], s["kept"],
            s["methods"]["mc"]["score"]) for s in a["samples"]]
    assert got == [(0, HOSTILE, 1.0, 1.0, "42", True, 0.9),
                   (1, "41", 0.0, 1.0, "41", False, 0.2),
                   (2, "43", None, None, None, True, 0.7)]
    assert a["samples"][0]["methods"]["mc"]["raw"] == "<b>yes</b>"
    b = data["question b"]
    assert [(s["strict"], s["kept"], s["methods"]["mc"]["score"]) for s in b["samples"]] == [
        (0.0, True, 0.6), (0.0, False, None)]


def test_hostile_text_cannot_leave_the_script(tmp_path: Path) -> None:
    out = bundle(tmp_path, model=MODEL)
    for f in [*(out / "p").glob("*.js"), out / "index.html"]:
        raw = f.read_bytes()
        body = raw if f.suffix == ".js" else raw[raw.index(b"<script>gvIndex(") + 8:]
        body = body[:body.index(b"</script>")] if f.suffix == ".html" else body
        assert b"</script" not in body.lower()
        assert not any(c in body for c in (b"<", b">", b"&", b"\x1b", "\u2028".encode()))
        assert max(body) < 128
    assert json.loads(encode(HOSTILE)) == HOSTILE
    assert encode("</script>") == '"\\u003c/script\\u003e"'
    assert encode("\u2028\u2029") == '"\\u2028\\u2029"'
    data = read_js(out / "p" / "0.js")
    assert data["generator"] == MODEL


def test_out_folder_rules(tmp_path: Path) -> None:
    b = make_store(tmp_path / "store")
    view = ViewData(b.store, [parse("mc:tau=0.5")], resamples=0)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(GvstoreError, match="not empty"):
        write_bundle(view, other, plots=False)
    assert (other / "mine.txt").read_text() == "keep me"
    out = tmp_path / "view"
    write_bundle(view, out, plots=False)
    (out / "p" / "7.js").write_text("stale")
    write_bundle(view, out, plots=False)  # an earlier bundle is replaced whole
    assert sorted(p.name for p in (out / "p").iterdir()) == ["0.js", "1.js"]
    with pytest.raises(GvstoreError, match="cot_binary"):
        ViewData(b.store, [parse("cot_binary:tau=1")], resamples=0)


def test_cli(tmp_path: Path) -> None:
    b = make_store(tmp_path / "store")
    out = tmp_path / "view"
    res = CliRunner().invoke(app, ["--store", str(b.store.root), "view", str(out),
                                   "--spec", "mc:tau=0.5", "--resamples", "0", "--no-plots",
                                   "--json"])
    assert res.exit_code == 0, res.output
    assert (json.loads(res.output)["samples"], json.loads(res.output)["plots"]) == (5, 0)
    assert not (out / "plots").exists() or not any((out / "plots").iterdir())
    assert (out / "index.html").exists()
    res = CliRunner().invoke(app, ["--store", str(b.store.root), "view", str(out),
                                   "--spec", "cot_binary:tau=1"])
    assert res.exit_code == 1 and "cot_binary" in res.output


def test_serve_serves_the_bundle_only(tmp_path: Path) -> None:
    import threading
    import urllib.error
    import urllib.request

    from gvstore.view.serve import server, url

    out = bundle(tmp_path)
    (tmp_path / "secret.txt").write_text("not for the browser")
    srv = server(out, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = url(srv)
        assert base.startswith("http://127.0.0.1:") and base.endswith("/index.html")
        with urllib.request.urlopen(base, timeout=10) as r:
            assert b"gvIndex(" in r.read()
        with urllib.request.urlopen(base.replace("index.html", "p/1.js"), timeout=10) as r:
            assert r.read().startswith(b"gvPrompt(")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(base.replace("index.html", "../secret.txt"), timeout=10)
        assert exc.value.code == 404
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(GvstoreError, match="no viewer bundle"):
        server(tmp_path / "store")
    busy = server(out, port=0)
    try:
        with pytest.raises(GvstoreError, match="in use"):
            server(out, port=busy.server_address[1])
    finally:
        busy.server_close()


def test_cli_serve_prints_the_address_and_serves(tmp_path: Path) -> None:
    """The real command in a child process: it writes, prints where it serves, serves."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    b = make_store(tmp_path / "store")
    out = tmp_path / "view"
    child = subprocess.Popen(
        [sys.executable, "-m", "gvstore", "--store", str(b.store.root), "view", str(out),
         "--spec", "mc:tau=0.5", "--resamples", "0", "--no-plots", "--serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"})
    try:
        assert child.stderr is not None
        line = child.stderr.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+/index\.html) \(Ctrl-C stops\)", line)
        assert m, line
        with urllib.request.urlopen(m.group(1), timeout=10) as r:
            assert b"gvIndex(" in r.read()
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0
    finally:
        if child.poll() is None:
            child.kill()
