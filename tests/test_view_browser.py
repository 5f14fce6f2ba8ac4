"""``gvstore view`` in a real headless Chromium driven by Playwright (``make test-browser``).

Real clicks, selections and typing: the overview (gap table and plots) renders, a click on a
prompt row loads its samples from ``p/<n>.js`` on ``file://`` (and over ``--serve``'s HTTP),
the sort buttons, the group selector, the kept/correct filters and the search box change
what is shown, and hostile generation text is shown as text with no script run.

The store (``mc:tau=0.5``, keep a score >= 0.5; verifier ``v``), by hand:

| prompt | strict grades | mc | kept | acc | reweighted | gap | disagreement |
| --- | --- | --- | --- | --- | --- | --- | --- |
| a (hostile) | 1, 0, ungraded | 0.9, 0.2, 0.7 | a0, a2 | 0.5 | 1 | 0.5 | 0 |
| b | 0, 0 | 0.6, unparsed | b0 | 0 | 0 | 0 | 0.5 |
| c | 1, 1, 1, 0 | 0.1, 0.9, 0.8, 0.2 | c1, c2 | 0.75 | 1 | 0.25 | 0.25 |

so by gap: a, c, b; by accuracy (lowest first): b, a, c; by disagreement: b, c, a; the gap
is (0.5 + 0 + 0.25) / 3 = 0.25. Verifier ``w`` scores prompt c only (0.9 for c0): in its
group c keeps c0, a and b keep nothing.

Skipped where no ``chromium`` binary is on the PATH (Debian: ``apt-get install chromium``) or
Playwright is not installed (the ``dev`` extra has it; it drives the system Chromium).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import StoreBuilder
from test_view import HOSTILE, MODEL
from test_view import make_store as view_store

from gvstore.analysis.specs import parse
from gvstore.view.bundle import write_bundle
from gvstore.view.data import ViewData

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on the PATH "
                       "(apt-get install chromium to run the browser tests)"),
]


def make_store(root: Path) -> StoreBuilder:
    """test_view's store (prompts a and b), with prompt c and verifier w added."""
    b = view_store(root, MODEL, write=False)
    pc = b.prompt("c")
    gc = b.gens(pc, [1.0, 1.0, 1.0, 0.0], model=MODEL)
    b.scores(gc, "mc", [0.1, 0.9, 0.8, 0.2])
    b.scores(gc, "mc", [0.9, 0.1, 0.1, 0.1], verifier="w")
    b.write()
    return b


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("view")
    b = make_store(root / "store")
    out = root / "view"
    write_bundle(ViewData(b.store, [parse("mc:tau=0.5")], resamples=50), out, resamples=50)
    return out / "index.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, page_file: Path) -> Iterator[Any]:
    """The viewer, loaded from disk; fails the test on any dialog or page error (an injected
    script that ran)."""
    pg = browser.new_page()
    trouble: list[str] = []
    pg.on("dialog", lambda d: (trouble.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("pageerror", lambda e: trouble.append(f"page error: {e}"))
    pg.goto(page_file.as_uri())
    yield pg
    assert pg.title() == "gvstore view", "a script from the data changed the title"
    assert trouble == []
    pg.close()


def prompt_ids(pg: Any) -> list[str]:
    """The prompt list's snippets, top to bottom."""
    return [t.removeprefix("question ") for t in
            pg.locator("#prompt-table tr.pick td:nth-child(2)").all_text_contents()]


def sample_texts(pg: Any) -> list[str]:
    return [str(t) for t in pg.locator("#sample-table pre").all_text_contents()]


def open_prompt(pg: Any, snippet: str) -> None:
    pg.locator("#prompt-table tr.pick", has_text=snippet).click()
    pg.wait_for_selector("#sample-table")


def test_overview_gap_table_and_plots(page: Any) -> None:
    gap = page.locator("#gap-table tr").nth(1).locator("td").all_text_contents()
    assert gap[0] == "t" and gap[1] == MODEL  # the generator's markup and escape, as text
    assert gap[4] == "mc:tau=0.5" and gap[8] == "0.250"  # the hand-computed gap
    widths = page.eval_on_selector_all("#plots img", "els => els.map(e => e.naturalWidth)")
    # sweep of mc:tau, pass@k, ROC, reliability, score histograms: each PNG loaded and decoded
    assert len(widths) == 5 and all(w > 100 for w in widths)
    captions = page.locator("#plots figcaption").all_text_contents()
    assert captions[0] == "sweep of mc:tau" and "pass@k (strict utility)" in captions
    assert page.locator("#sample-table").count() == 0  # nothing opened yet


def test_sort_buttons_reorder_the_prompts(page: Any) -> None:
    assert prompt_ids(page) == ["what is <6*7>?", "c", "b"]  # by gap, the default
    page.click("button[data-sort=acc]")
    assert prompt_ids(page) == ["b", "what is <6*7>?", "c"]
    page.click("button[data-sort=disagree]")
    assert prompt_ids(page) == ["b", "c", "what is <6*7>?"]
    assert page.locator("button.on").text_content() == "disagreement"
    page.click("button[data-sort=gap]")
    assert prompt_ids(page) == ["what is <6*7>?", "c", "b"]


def test_group_selector_switches_the_verifier(page: Any) -> None:
    options = page.locator("#group option").all_text_contents()
    assert [o.rsplit(" / ", 1)[1] for o in options] == ["v", "w"]
    page.select_option("#group", "1")
    # w scores only c: a and b keep nothing there (gap 0), c keeps c0 (right): gap 0.25
    ids = prompt_ids(page)
    assert ids[0] == "c" and sorted(ids) == ["b", "c", "what is <6*7>?"]
    kept = page.locator("#prompt-table tr.pick td:nth-child(7)").all_text_contents()
    assert dict(zip(ids, kept, strict=True)) == {"c": "1 / 4", "b": "0 / 2",
                                                 "what is <6*7>?": "0 / 3"}
    open_prompt(page, "question c")
    # verifier w keeps c0 only (0.9): the kept column follows the group's verifier
    kept = page.locator("#sample-table tr.kept td:first-child").all_text_contents()
    assert kept == ["0"]


def test_click_loads_samples_and_hostile_text_stays_text(page: Any) -> None:
    open_prompt(page, "what is <6*7>?")
    assert sample_texts(page) == [HOSTILE, "41", "43"]
    rows = page.locator("#sample-table tr.kept, #sample-table tr.rejected")
    assert rows.count() == 3
    assert page.locator("#samples img").count() == 0  # the <img onerror> is text, not an img
    raw = page.locator("#sample-table tr").nth(1).locator("td").all_text_contents()
    assert "<b>yes</b>" in raw  # a verifier's raw output, as text
    assert page.locator("#samples h2").text_content().endswith(f"(t / {MODEL} / v)")


def test_filters_and_search_change_the_samples(page: Any) -> None:
    open_prompt(page, "question c")
    assert len(sample_texts(page)) == 4
    page.select_option("#fkeep", "kept")
    assert sample_texts(page) == ["answer c/<b>g</b>\x1b[31m/1", "answer c/<b>g</b>\x1b[31m/2"]
    page.select_option("#fkeep", "rejected")
    page.select_option("#fcorrect", "correct")
    assert sample_texts(page) == ["answer c/<b>g</b>\x1b[31m/0"]  # rejected but right
    page.select_option("#fcorrect", "wrong")
    assert sample_texts(page) == ["answer c/<b>g</b>\x1b[31m/3"]
    page.select_option("#fkeep", "all")
    page.select_option("#fcorrect", "all")
    page.fill("#search", "/2")
    assert sample_texts(page) == ["answer c/<b>g</b>\x1b[31m/2"]
    page.fill("#search", "6*7")  # the prompt list filters by text too
    assert prompt_ids(page) == ["what is <6*7>?"]


def test_served_over_http_too(browser: Any, page_file: Path) -> None:
    from gvstore.view.serve import server, url

    srv = server(page_file.parent, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    pg = browser.new_page()
    try:
        pg.goto(url(srv))
        open_prompt(pg, "question b")
        assert len(sample_texts(pg)) == 2
        assert pg.eval_on_selector_all("#plots img", "els => els.every(e => e.naturalWidth)")
    finally:
        pg.close()
        srv.shutdown()
        srv.server_close()
