"""The report step: what a study's store says, computed and written (nothing printed).

Writes into the reports folder:

* ``report.json``: the full report (what ``gvstore report`` shows and ``--json`` prints): per
  task, generator, verifier and round, the gap table of each ``report.specs`` spec (base,
  reweighted, gap, relative gap with their bootstrap intervals, verdict, prompts to decide,
  the share of its scores that did not parse), the honest and in-sample threshold choice of
  each sweep, pass@k, the parse-failure rates of every verifier and method (``parse``), the
  verifier score correlations, and the extra sections (``metrics_extra``);
* ``metrics/``: the headline scalars, one small JSON file per row (``headline``), for
  ``dvc metrics show`` / ``dvc metrics diff``;
* ``plots/sweep-<template>.csv`` and ``plots/passk.csv`` (``dvc plots show``; one row per
  group and x, the group in a column);
* ``sweep-<template>.png``, ``passk.png`` (also ``dvc plots show`` images);
* with rounds of self-improvement in the params: ``rounds`` in ``report.json`` (accuracy
  strict and flexible, gap, relative gap, pass@k and answer diversity per round, and their
  trend), ``plots/rounds.csv``, ``plots/rounds-passk.csv`` and ``rounds.png`` (the paper's
  figure 4); with ``rounds.heldout``, the same on the held-out prompts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gvstore.analysis.corr import score_correlations
from gvstore.analysis.frames import Dataset, Filters
from gvstore.analysis.gap import gap_table
from gvstore.analysis.passk import pass_at_k_table
from gvstore.analysis.specs import methods_of, parse, parse_template
from gvstore.analysis.sweep import SweepResult, select, sweep
from gvstore.errors import GvstoreError
from gvstore.io import write_atomic
from gvstore.output import json_text
from gvstore.params import Params
from gvstore.replay import Projections
from gvstore.report import headline, metrics_extra
from gvstore.report.parsing import parse_rates, rate_of
from gvstore.store import Store

FULL = "report.json"
"""The full report's file name in the reports folder."""


@dataclass
class Report:
    """What ``build`` computed and wrote: the full report (``report.json``'s content) and the
    files written, in the order they were written."""

    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _nest(root: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        root = root.setdefault(k, {})
    root[keys[-1]] = value


def _r(x: float | None) -> float | None:
    return None if x is None or x != x else round(float(x), 6)


def build(store: Store, params: Params, out: Path) -> Report:
    """Compute the study report and write it under ``out`` (see the module doc)."""
    rp = params.report
    proj = Projections(store)
    ds = Dataset(proj, utility=rp.utility, filters=Filters(tasks=tuple(params.study.tasks)))
    rates = parse_rates(proj, params.study.tasks)
    rep = Report({"utility": rp.utility, "gap": _gaps(ds, params, rates), "selection": {},
                  "passk": {}, "parse": rates, "corr": []})
    for text in rp.sweeps:
        _sweep(ds, params, text, out, rep)
    _passk(ds, params, out, rep)
    rep.metrics["corr"] = _correlations(proj, params)
    rep.metrics.update(metrics_extra.sections(ds, params, rep.files, out))
    if params.rounds.enabled:
        rep.metrics["rounds"] = _rounds(store, params, out, rep)
    text = json_text(rep.metrics)  # NaN and infinities as null, tuples as lists
    rep.metrics = json.loads(text)
    rep.files += headline.write(rep.metrics, out)
    rep.files.append(write_atomic(out / FULL, text))
    return rep


def _gaps(ds: Dataset, params: Params, rates: list[dict[str, Any]]) -> dict[str, Any]:
    """``gap``: task / generator / verifier / round / spec -> the gap's numbers, with the
    share of unparsed verifications of its worst-parsed method (``unparsed``)."""
    rp = params.report
    specs = {str(s): s for s in (parse(t) for t in rp.specs)}
    out: dict[str, Any] = {}
    for r in gap_table(ds, list(specs.values()), resamples=rp.resamples,
                       seed=params.base.seed):
        worst = rate_of(rates, r.task, r.generator, r.round, r.verifier,
                        methods_of(specs[r.spec]) if r.spec in specs else ())
        _nest(out, [r.task, r.generator, r.verifier, f"round{r.round}", r.spec], {
            "prompts": r.prompts, "base": _r(r.base), "reweighted": _r(r.reweighted),
            "gap": _r(r.gap), "gap_lo": _r(r.gap_lo), "gap_hi": _r(r.gap_hi),
            "rel_gap": _r(r.rel_gap), "rel_gap_lo": _r(r.rel_gap_lo),
            "rel_gap_hi": _r(r.rel_gap_hi), "kept": r.kept, "empty_prompts": r.empty_prompts,
            "verdict": r.verdict, "prompts_to_decide": getattr(r, "prompts_to_decide", None),
            "unparsed": None if worst is None else _r(worst["unparsed"]),
            "unparsed_method": None if worst is None else worst["method"],
            "flagged": bool(worst and worst["flagged"]),
        })
    return out


def _sweep(ds: Dataset, params: Params, text: str, out: Path, rep: Report) -> None:
    """One sweep of ``report.sweeps``: its threshold choices, CSV series and PNG."""
    from gvstore.analysis.plots import sweep_figure

    rp = params.report
    tmpl = parse_template(text)
    results = sweep(ds, tmpl, resamples=rp.resamples, seed=params.base.seed)
    rows = ["group,value,gap,gap_lo,gap_hi,rel_gap,kept"]
    chosen: dict[tuple[str, str, str, int], float] = {}
    notes: list[str] = []
    for res in results:
        group = f"{res.task}/{res.generator}/{res.verifier}/r{res.round}"
        rows += [f"{group},{p.value},{_r(p.gap)},{_r(p.gap_lo)},{_r(p.gap_hi)},"
                 f"{_r(p.rel_gap)},{p.kept}" for p in res.points]
        if res.points:  # none: e.g. every score of this method failed to parse
            sel = _selection(res, tmpl, params)
            sel["points"] = len(res.points)
            worst = rate_of(rep.metrics["parse"], res.task, res.generator, res.round,
                            res.verifier, methods_of(tmpl))
            sel["flagged"] = bool(worst and worst["flagged"])
            if worst and worst["flagged"] and len(res.points) > 1:
                notes.append(f"{res.task}, generator {res.generator}, verifier {res.verifier}:"
                             f" {100 * worst['unparsed']:.0f}% of {worst['method']}'s "
                             "verifications did not parse")
            _nest(rep.metrics["selection"], [res.task, res.generator, res.verifier,
                                             f"round{res.round}", text], sel)
            if "held_out_value" in sel:
                chosen[(res.task, res.generator, res.verifier, res.round)] = \
                    sel["held_out_value"]
    if not results:  # the files dvc.yaml names exist all the same, saying why they are empty
        notes.append(f"no group has a graded sample scored by {text}")
    slug = headline.slug(text)
    rep.files.append(write_atomic(out / "plots" / f"sweep-{slug}.csv", "\n".join(rows) + "\n"))
    rep.files.append(sweep_figure(results, out / f"sweep-{slug}.png", chosen=chosen,
                                           notes=notes, template=text))


def _selection(res: SweepResult, tmpl: Any, params: Params) -> dict[str, Any]:
    """The honest and in-sample threshold choice of one sweep, or the reason there is none."""
    rp = params.report
    try:
        sel = select(res, tmpl, metric=rp.select_on, seed=params.base.seed,
                     resamples=rp.resamples)
    except GvstoreError as exc:  # too few prompts to split, nothing to choose
        return {"error": str(exc)}
    return {k: (_r(v) if isinstance(v, float) else v) for k, v in sel.to_dict().items()
            if k.startswith(("held_out", "in_sample", "metric", "select_", "eval_"))}


def _passk(ds: Dataset, params: Params, out: Path, rep: Report) -> None:
    """pass@k per task, generator and round: metrics, CSV series and PNG (ks beyond the
    most samples of a prompt are dropped)."""
    from gvstore.analysis.plots import passk_curve

    uf = ds.base_frame()
    counts = uf.group_by("prompt").len()["len"].to_list() if uf.height else []
    n_max = max(counts, default=0)
    ks = [k for k in params.report.passk if k <= n_max]
    if not ks:
        return
    rows = ["group,k,pass_at_k"]
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for row in pass_at_k_table(uf, ks).iter_rows(named=True):
        group = f"{row['task']}/{row['model']}/r{row['round']}"
        _nest(rep.metrics["passk"], [row["task"], row["model"], f"round{row['round']}",
                                     f"pass@{row['k']}"], _r(row["pass_at_k"]))
        rows.append(f"{group},{row['k']},{_r(row['pass_at_k'])}")
        if row["pass_at_k"] is not None:
            xs, ys = curves.setdefault(f"generator {row['model']} on {row['task']}"
                                       f" (round {row['round']})", ([], []))
            xs.append(row["k"])
            ys.append(row["pass_at_k"])
    rep.files.append(write_atomic(out / "plots" / "passk.csv", "\n".join(rows) + "\n"))
    rep.files.append(passk_curve(out / "passk.png",
                                 [(g, xs, ys) for g, (xs, ys) in curves.items()],
                                 title=f"pass@k ({params.report.utility} utility)"))


def _correlations(proj: Projections, params: Params) -> list[dict[str, Any]]:
    """``corr``: Pearson and Spearman between every two (verifier, method)."""
    vers = proj.verifications.join(proj.generations.select("gen", "task"), on="gen")
    vers = vers.filter(vers["task"].is_in(params.study.tasks)).drop("task")
    out = []
    for c in score_correlations(vers):
        a, b = c["a"], c["b"]
        out.append({
            "a": f"{a['verifier']}/{a['method']}", "b": f"{b['verifier']}/{b['method']}",
            "n": c["n"], "pearson": _r(c["pearson"]), "spearman": _r(c["spearman"])})
    return out


def _rounds(store: Store, params: Params, out: Path, rep: Report) -> dict[str, Any]:
    """The round report: metrics, series and figure (an error is recorded, not raised: the
    rounds may not have run yet)."""
    from gvstore.analysis.plots import rounds_figure
    from gvstore.analysis.rounds import write_series
    from gvstore.steps import rounds

    try:
        chain = rounds.report(params, store)
    except GvstoreError as exc:
        return {"error": " ".join(str(exc).split())}
    rep.files += write_series(chain, out / "plots")
    rep.files.append(rounds_figure(chain, out / "rounds.png"))
    return chain.to_dict()
