"""The report's sections beyond the gap: verifier quality (``analysis.quality``) and scaling
with n (``analysis.nscale``), computed by those analyses' own functions.

* ``quality`` in ``report.json``: ``quality_table``'s rows (every score method, the report's
  resamples and seed, ROC / precision-recall curves thinned to ``CURVE_POINTS`` points);
  ``verifier_roc.png``, ``verifier_reliability.png``, ``verifier_scores.png``;
* ``nscale``: ``nscale_table`` of each ``report.specs`` spec that is one score with a rule
  (``mc:quantile=0.8``; not ``and``/``or``, not ``tournament``), its n' and m' curves;
  ``nscale.png``.

Headline rows (``headline``): ``verifier/<task>/<generator>/<verifier>/r<round>/<method>``:
auc, ece (Brier and every interval in ``report.json``; its unparsed share is the
``parse/`` row's); ``nscale/.../<spec>/n=<n'>``:
pass_at_k (pass@n'), best_of_n, gap (the spec's filter gap at n'; maj@n' is in
``report.json``: a column less in every ``dvc metrics show`` row). A section that cannot
be computed (e.g. no utility, no score method) records its error instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore.analysis.frames import Dataset
from gvstore.errors import GvstoreError
from gvstore.params import Params

if TYPE_CHECKING:
    from rich.table import Table

CURVE_POINTS = 64
"""ROC and precision-recall points kept per verifier and method in ``report.json``."""


def _r(x: Any) -> Any:
    return round(float(x), 6) if isinstance(x, float) and x == x else x


def sections(ds: Dataset, params: Params, files: list[Path], out: Path) -> dict[str, Any]:
    """``quality`` and ``nscale`` of ``report.json``; the PNGs they write go into ``files``."""
    return {"quality": _quality(ds, params, files, out),
            "nscale": _nscale(ds, params, files, out)}


def _quality(ds: Dataset, params: Params, files: list[Path], out: Path) -> Any:
    from gvstore.analysis.quality import quality_table
    from gvstore.analysis.quality_plots import write_quality_plots

    try:
        rows = quality_table(ds, None, resamples=params.report.resamples,
                             seed=params.base.seed, max_thresholds=CURVE_POINTS)
    except GvstoreError as exc:
        _notices(files, out, ("verifier_roc", "verifier_reliability", "verifier_scores"),
                 str(exc))
        return {"error": str(exc)}
    files += write_quality_plots(rows, out, prefix="verifier")
    if not rows:
        _notices(files, out, ("verifier_roc", "verifier_reliability", "verifier_scores"),
                 "no graded sample has a score of mc, cot_binary or cot_score")
    return [r.to_dict() for r in rows]


def _notices(files: list[Path], out: Path, names: tuple[str, ...], why: str) -> None:
    """PNGs that say why they are empty (``dvc plots show`` finds every file it names)."""
    from gvstore.analysis.plots import notice_figure

    files += [notice_figure(out / f"{n}.png", n, why) for n in names]


def nscale_specs(specs: list[str]) -> list[str]:
    """The ``report.specs`` that scale with n: one score with a rule, not tournament."""
    from gvstore.analysis.choice import parse_score
    from gvstore.analysis.specs import methods_of

    keep = []
    for text in specs:
        try:
            spec, filt = parse_score(text)
        except GvstoreError:
            continue
        if filt is not None and "tournament" not in methods_of(spec):
            keep.append(text)
    return keep


def _nscale(ds: Dataset, params: Params, files: list[Path], out: Path) -> Any:
    from gvstore.analysis.choice_plots import nscale_figure
    from gvstore.analysis.nscale import nscale_table

    specs = nscale_specs(list(params.report.specs))
    try:
        results = nscale_table(ds, specs, resamples=params.report.resamples,
                               seed=params.base.seed) if specs else []
    except GvstoreError as exc:
        _notices(files, out, ("nscale",), str(exc))
        return {"error": str(exc)}
    if results:
        files.append(nscale_figure(results, out / "nscale.png"))
    else:
        _notices(files, out, ("nscale",), "no report.specs spec is one score with a rule"
                 if not specs else "no group has a graded sample scored by those specs")
    return [r.to_dict() for r in results]


def _who(d: dict[str, Any]) -> str:
    """The verifier's path part (``self`` for self-verification, as ``headline`` writes)."""
    return "self" if d["verifier"] == d["generator"] else str(d["verifier"])


def headline_rows(metrics: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """The extra sections' headline rows (path parts under ``metrics/``, scalars)."""
    quality = metrics.get("quality")
    for q in quality if isinstance(quality, list) else []:
        yield (["verifier", q["task"], q["generator"], _who(q), f"r{q['round']}",
                q["method"]], {"auc": q["auc"], "ece": q["ece"]})
    nscale = metrics.get("nscale")
    for r in nscale if isinstance(nscale, list) else []:
        name = r["score"] if r["filter"] is None else r["filter"]
        for p in r["points"]:
            yield (["nscale", r["task"], r["generator"], _who(r), f"r{r['round']}",
                    name, f"n={p['n']}"], {"pass_at_k": p["pass_at_n"],
                                           "best_of_n": p["best_of_n"],
                                           "gap": p["filter_gap"]})


def views(metrics: dict[str, Any]) -> list[Table | str]:
    """The verifier quality table (AUC, ECE, Brier with intervals, unparsed) and the n-scaling
    table (pass@n', best-of-n', maj@n', the filter gap at n')."""
    from gvstore.output import fmt, table
    from gvstore.report.views import pct

    def ci(d: dict[str, Any], k: str) -> str:
        if d.get(k) is None:
            return "-"
        return f"{fmt(d[k])} [{fmt(d.get(k + '_lo'))}, {fmt(d.get(k + '_hi'))}]"

    out: list[Table | str] = []
    quality = metrics.get("quality")
    if isinstance(quality, dict):
        out.append(f"verifier quality: {quality['error']}")
    elif quality:
        out.append(table(
            "verifier quality (scores as a classifier of correct samples; 95% bootstrap "
            "intervals over prompts)", ["task", "generator", "verifier", "round", "method",
                                        "samples", "unparsed", "AUC", "ECE", "Brier"],
            [[q["task"], q["generator"], q["verifier"], q["round"], q["method"],
              q["samples"], pct(q["parse_failure_rate"]), ci(q, "auc"), ci(q, "ece"),
              ci(q, "brier")] for q in quality], lift=("generator", "verifier", "round")))
    nscale = metrics.get("nscale")
    if isinstance(nscale, dict):
        out.append(f"n-scaling: {nscale['error']}")
    elif nscale:
        out.append(table(
            "scaling with n: n' of the recorded samples per prompt (expected over subsets)",
            ["task", "generator", "verifier", "round", "spec", "n'", "pass@n'", "best-of-n'",
             "maj@n'", "filter gap"],
            [[r["task"], r["generator"], r["verifier"], r["round"],
              r["score"] if r["filter"] is None else r["filter"], p["n"], p["pass_at_n"],
              p["best_of_n"], p["maj"], ci(p, "filter_gap")]
             for r in nscale for p in r["points"]], lift=("generator", "verifier", "round")))
    return out
