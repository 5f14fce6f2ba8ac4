"""The report's headline scalars for ``dvc metrics show`` / ``dvc metrics diff``.

``dvc metrics show`` prints one row per metrics file, with a column per key (the union over
files). One file holding every number makes one row of thousands of characters; so the
headline is a folder, ``metrics/``, of small JSON files, one per row, each with a few scalar
keys shared by its kind (paths under ``metrics/``):

* ``gap/<task>/<generator>/<verifier>/r<round>/<spec>.json``: base, gap, gap_lo, gap_hi,
  unparsed (the share of the spec's verifications that did not parse, its worst method's);
  the reweighted accuracy is base + gap (in ``report.json``: a column less in every row);
* ``threshold/<task>/<generator>/<verifier>/r<round>/<sweep>.json``: value, gap, gap_lo,
  gap_hi of the held-out choice;
* ``passk/<task>/<generator>/r<round>/k=<k>.json``: pass_at_k (a row per k keeps every row
  short whatever ``report.passk`` lists);
* ``parse/<task>/<generator>/<verifier>/r<round>/<method>.json``: unparsed;
* the extra sections' rows (``metrics_extra.headline_rows``).

``<verifier>`` is ``self`` when the verifier is the generator (self-verification), which keeps
a row of the default study under 200 characters. Names are made file-safe (``slug``: anything
but letters, digits and ``_.=-`` becomes ``_``). Numbers are rounded to 4 decimals (whole ones
written as integers); the full tables (every count, interval and verdict) are in
``report.json``. ``dvc metrics show reports/metrics/gap`` shows one kind alone.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gvstore.io import write_atomic
from gvstore.report import metrics_extra

FOLDER = "metrics"


def slug(text: str) -> str:
    """``text`` as one safe path component (never empty, ``.`` or ``..``)."""
    s = re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(text)).strip("_")
    return s if s.strip(".") else f"_{s}"


def _r4(x: Any) -> Any:
    """A number to 4 decimals, a whole float as an int."""
    if not isinstance(x, float) or x != x:
        return x
    return int(x) if x.is_integer() and abs(x) < 1e15 else round(x, 4)


def _who(verifier: str, generator: str) -> str:
    """The verifier's path part: ``self`` when it verifies its own generations."""
    return "self" if verifier == generator else verifier


def _groups(tree: dict[str, Any]) -> Iterator[tuple[list[str], Any]]:
    """task / generator / verifier / roundN / leaf-name -> value, as (path parts, value)."""
    for task, gens in tree.items():
        for gen, vers in gens.items():
            for ver, rounds in vers.items():
                for rnd, leaves in rounds.items():
                    for name, value in leaves.items():
                        yield [task, gen, _who(ver, gen), "r" + rnd.removeprefix("round"),
                               name], value


def rows(metrics: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """Every headline row of a report's metrics: (path parts under ``metrics/``, scalars)."""
    for parts, m in _groups(metrics.get("gap", {})):
        yield ["gap", *parts], {k: m.get(k) for k in ("base", "gap", "gap_lo", "gap_hi",
                                                      "unparsed")}
    for parts, d in _groups(metrics.get("selection", {})):
        if "held_out_value" in d:
            yield ["threshold", *parts], {"value": d["held_out_value"],
                                          "gap": d["held_out_gap"],
                                          "gap_lo": d.get("held_out_gap_lo"),
                                          "gap_hi": d.get("held_out_gap_hi")}
    for task, models in metrics.get("passk", {}).items():
        for model, rounds in models.items():
            for rnd, ks in rounds.items():
                for name, value in ks.items():
                    yield (["passk", task, model, "r" + rnd.removeprefix("round"),
                            "k=" + name.rpartition("@")[2]], {"pass_at_k": value})
    for r in metrics.get("parse", []):
        yield (["parse", r["task"], r["generator"], _who(r["verifier"], r["generator"]),
                f"r{r['round']}", r["method"]], {"unparsed": r["unparsed"]})
    yield from metrics_extra.headline_rows(metrics)


def write(metrics: dict[str, Any], out: Path) -> list[Path]:
    """Replace ``out/metrics/`` with one JSON file per headline row; the files written."""
    root = out / FOLDER
    if root.is_dir():
        shutil.rmtree(root)
    files = []
    for parts, values in rows(metrics):
        names = [slug(p) for p in parts]
        path = root.joinpath(*names[:-1], names[-1] + ".json")
        text = json.dumps({k: _r4(v) for k, v in values.items()}, sort_keys=True) + "\n"
        files.append(write_atomic(path, text))
    return files
