"""The viewer's overview plots: the figures of ``gvstore sweep``, ``passk`` and ``verifier``,
drawn by the same functions (``analysis.plots``, ``analysis.quality_plots``) into the bundle.

* one **sweep** per spec of the overview that a sweep can vary (a method or a ``mean(...)``
  with its rule; ``and``/``or``/``learned`` specs have no single value to sweep), over the
  rule's default values, with the filters of the view;
* **pass@k** per (task, generator, round), k = 1, 2, 4, ... up to the most samples a prompt
  has;
* the **verifier quality** figures (ROC, reliability, score histograms) of the score methods
  the specs read.

Each figure is a PNG under ``plots/`` whose name is made from the spec by
``report.headline.slug`` (one safe path component); ``plot_list`` returns
``{"file", "title"}`` entries for the page (the title is data: the page shows it as text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.analysis.frames import Dataset
from gvstore.analysis.specs import Leaf, Mean, Rule, Spec, methods_of
from gvstore.report.headline import slug

FOLDER = "plots"
MAX_SWEEPS = 4
"""At most this many sweeps (the first sweepable specs, one per template)."""
MAX_THRESHOLDS = 200
"""Points per ROC curve in the quality figures (evenly spaced; enough for a plot)."""


def _sweep_templates(specs: Sequence[Spec]) -> list[Leaf | Mean]:
    out: list[Leaf | Mean] = []
    seen: set[tuple[object, ...]] = set()
    for s in specs:
        if not isinstance(s, Leaf | Mean):
            continue
        key = (type(s), methods_of(s), s.rule.kind, s.keep_nulls)
        if key not in seen and len(out) < MAX_SWEEPS:
            seen.add(key)
            out.append(s)
    return out


def _passk(ds: Dataset, folder: Path) -> list[dict[str, str]]:
    from gvstore.analysis.passk import pass_at_k_table, powers_of_two
    from gvstore.analysis.plots import passk_curve

    frame = ds.base_frame()
    if frame.height == 0:
        return []
    ks = powers_of_two(int(frame.group_by("prompt").len()["len"].max() or 0))  # type: ignore[arg-type]
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for row in pass_at_k_table(frame, ks).iter_rows(named=True):
        if row["pass_at_k"] is not None:
            xs, ys = curves.setdefault(f"generator {row['model']} on {row['task']} "
                                       f"(round {row['round']})", ([], []))
            xs.append(row["k"])
            ys.append(row["pass_at_k"])
    if not curves:
        return []
    passk_curve(folder / "passk.png", [(g, xs, ys) for g, (xs, ys) in curves.items()],
                title="pass@k (strict utility)")
    return [{"file": f"{FOLDER}/passk.png", "title": "pass@k (strict utility)"}]


def _quality(ds: Dataset, specs: Sequence[Spec], folder: Path, resamples: int, seed: int,
             level: float) -> list[dict[str, str]]:
    from gvstore.analysis.quality import quality_table
    from gvstore.analysis.quality_plots import write_quality_plots
    from gvstore.verifiers.registry import names_where

    score = set(names_where("sample", "loglik"))
    methods = sorted({m for s in specs for m in methods_of(s) if m in score})
    if not methods:
        return []
    rows = quality_table(ds, methods, resamples=resamples, seed=seed, level=level,
                         max_thresholds=MAX_THRESHOLDS)
    paths = write_quality_plots(rows, folder, prefix="verifier")
    titles = {"verifier_roc.png": "verifier ROC curves",
              "verifier_reliability.png": "verifier reliability (calibration)",
              "verifier_scores.png": "verifier score histograms, correct vs wrong"}
    return [{"file": f"{FOLDER}/{p.name}", "title": titles.get(p.name, p.stem)}
            for p in paths]


def write_plots(ds: Dataset, specs: Sequence[Spec], out: Path, *,
                resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                level: float = DEFAULT_LEVEL) -> list[dict[str, str]]:
    """Draw the overview figures of ``ds`` into ``out/plots``; their ``{"file", "title"}``
    entries, in the order the page shows them (sweeps, pass@k, verifier quality)."""
    from gvstore.analysis.plots import sweep_figure
    from gvstore.analysis.sweep import sweep

    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, str]] = []
    for tmpl in _sweep_templates(specs):
        open_tmpl = replace(tmpl, rule=Rule(tmpl.rule.kind, None))  # e.g. mc:tau
        results = sweep(ds, open_tmpl, resamples=resamples, seed=seed, level=level)
        text = str(open_tmpl)
        name = f"sweep-{slug(text)}.png"
        sweep_figure(results, folder / name, template=text)
        entries.append({"file": f"{FOLDER}/{name}", "title": f"sweep of {text}"})
    entries += _passk(ds, folder)
    entries += _quality(ds, specs, folder, resamples, seed, level)
    return entries
