"""The viewer's bundle: a folder that opens from disk (``file://``), no server.

``OUT_DIR/index.html`` holds the page (CSS and JS inline) and the prompt index;
``OUT_DIR/p/<n>.js`` holds prompt ``n``'s samples as one call ``gvPrompt(<JSON>)``, loaded by
a script element when the prompt is opened (browsers block ``fetch`` of ``file://``);
``OUT_DIR/plots/`` the overview's figures (``view.plots``), which the index lists.

Data is JSON with every non-ASCII character and ``<``, ``>``, ``&`` written as ``\\uXXXX``
escapes (U+2028 and U+2029 too), so no text can end the script element or its string: a
generation holding ``</script>`` is data, never markup. The folder is built beside
``OUT_DIR`` and then put in its place (``io.atomic_folder``): a reader sees the old bundle or
the new one, never half of one. An existing ``OUT_DIR`` is replaced only if it is empty or a
bundle (it holds ``MARKER``), so a mistyped folder is never wiped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.errors import GvstoreError
from gvstore.io import atomic_folder
from gvstore.view.data import ViewData
from gvstore.view.page import render
from gvstore.view.plots import write_plots

MARKER = ".gvstore-view"


def encode(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (see the module doc)."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass
class BundleReport:
    """What ``write_bundle`` wrote."""

    out: str
    spec: str
    groups: int
    prompts: int
    samples: int
    plots: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _check_out(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise GvstoreError(f"cannot write the viewer to {out}: it is a file; name a folder")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise GvstoreError(f"{out} is not empty and holds no earlier viewer bundle; "
                               "name a new or empty folder")


def write_bundle(view: ViewData, out: Path | str, *, plots: bool = True,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 level: float = DEFAULT_LEVEL) -> BundleReport:
    """Write the bundle of ``view`` into ``out`` (see the module doc); ``plots`` draws the
    overview figures (``resamples``, ``seed`` and ``level``: their bootstrap intervals)."""
    out = Path(out)
    _check_out(out)
    index = view.index()
    samples = 0
    with atomic_folder(out) as tmp:
        (tmp / "p").mkdir()
        (tmp / MARKER).write_text("gvstore view bundle\n", encoding="utf-8")
        index["plots"] = (write_plots(view.ds, view.specs, tmp, resamples=resamples,
                                      seed=seed, level=level) if plots else [])
        for n in range(len(view)):
            data = view.prompt_data(n)
            samples += len(data["samples"])
            (tmp / "p" / f"{n}.js").write_text(f"gvPrompt({encode(data)});\n",
                                               encoding="ascii")
        (tmp / "index.html").write_text(render(f"gvIndex({encode(index)});"),
                                        encoding="utf-8")
    return BundleReport(str(out), index["spec"], len(index["groups"]), len(view), samples,
                        len(index["plots"]))
