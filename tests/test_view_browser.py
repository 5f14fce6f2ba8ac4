"""``gvstore view`` in a real headless Chromium (``make test-browser``): the overview renders,
a prompt's samples load from their ``p/<n>.js`` on ``file://``, sorting and filters change
what is shown, and hostile generation text is shown as text with no script run.

Skipped where no ``chromium`` binary is on the PATH (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_view import MODEL, make_store, read_js

from gvstore.analysis.specs import parse
from gvstore.view.bundle import write_bundle
from gvstore.view.data import ViewData

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on the PATH "
                       "(apt-get install chromium to run the browser tests)"),
]


def dump(page: Path, fragment: str = "") -> str:
    """The DOM Chromium holds once ``page#fragment`` has loaded."""
    assert CHROMIUM is not None
    res = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + fragment],
        capture_output=True, text=True, timeout=90, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The bundle of test_view's store, and the number of the hostile prompt."""
    root = tmp_path_factory.mktemp("view")
    b = make_store(root / "store", MODEL)
    out = root / "view"
    write_bundle(ViewData(b.store, [parse("mc:tau=0.5")], resamples=50), out)
    n = next(int(p.stem) for p in (out / "p").glob("*.js")
             if read_js(p)["text"] == "what is <6*7>?")
    return out / "index.html", n


def _section(dom: str, tag_id: str) -> str:
    start = dom.index(f'id="{tag_id}"')
    return dom[start:dom.index("</table>", start)]


def test_overview_and_prompt_list_render(bundle: tuple[Path, int]) -> None:
    page, n = bundle
    dom = dump(page)
    gap = _section(dom, "gap-table")
    assert "<td>mc:tau=0.5</td>" in gap and "<td>0.250</td>" in gap  # the hand-computed gap
    assert "&lt;b&gt;g&lt;/b&gt;" in gap  # a generator name with markup, as text
    prompts = _section(dom, "prompt-table")
    # sorted by gap, highest first: the hostile prompt (gap 0.5) before question b (0)
    assert prompts.index("what is &lt;6*7&gt;?") < prompts.index("question b")
    assert 'id="sample-table"' not in dom  # nothing opened yet
    by_disagree = _section(dump(page, "#sort=disagree"), "prompt-table")
    assert by_disagree.index("question b") < by_disagree.index("what is &lt;6*7&gt;?")


def test_prompt_samples_hostile_text_stays_text(bundle: tuple[Path, int]) -> None:
    page, n = bundle
    dom = dump(page, f"#prompt={n}")
    samples = _section(dom, "sample-table")
    assert samples.count("<tr class=") == 3
    assert "&lt;/script&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;" in samples
    assert "&lt;img src=x onerror=" in samples and "&lt;/textarea&gt;" in samples
    assert "&amp;amp;end" in samples  # the text's own "&amp;" shown as typed
    assert "<img" not in dom and "pwned</title>" not in dom
    assert "<title>gvstore view</title>" in dom  # no injected script set the title
    assert "&lt;b&gt;yes&lt;/b&gt;" in samples  # a verifier's raw output, as text


def test_a_click_on_a_prompt_row_loads_its_samples(bundle: tuple[Path, int]) -> None:
    page, n = bundle
    samples = _section(dump(page, f"#click={n}"), "sample-table")
    assert samples.count("<tr class=") == 3 and "<pre>43</pre>" in samples


def test_filters_change_the_samples_shown(bundle: tuple[Path, int]) -> None:
    page, n = bundle
    kept = _section(dump(page, f"#prompt={n}&keep=kept"), "sample-table")
    assert kept.count("<tr class=") == 2 and 'class="rejected"' not in kept
    wrong = _section(dump(page, f"#prompt={n}&correct=wrong"), "sample-table")
    assert wrong.count("<tr class=") == 1 and "<pre>41</pre>" in wrong
    found = _section(dump(page, f"#prompt={n}&q=43"), "sample-table")
    assert found.count("<tr class=") == 1 and "<pre>43</pre>" in found
