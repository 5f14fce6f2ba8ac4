"""The report step: metrics and plots of a study, from the store alone.

Writes into the reports folder:

* ``metrics.json`` (for ``dvc metrics show/diff``): per task, generator, verifier and round,
  the gap table of each ``report.specs`` spec (base, reweighted, gap, relative gap with their
  bootstrap intervals, verdict), the honest and in-sample threshold choice of each sweep,
  pass@k, and the verifier score correlations;
* ``plots/sweep-<template>.csv`` and ``plots/passk.csv`` (for ``dvc plots show``);
* ``sweep-<template>.png``, ``passk.png``;
* with rounds of self-improvement in the params: ``metrics.json``'s ``rounds`` (accuracy strict
  and flexible, gap, relative gap, pass@k and answer diversity per round, and their trend),
  ``plots/rounds.csv``, ``plots/rounds-passk.csv`` and ``rounds.png`` (the paper's figure 4);
  with ``rounds.heldout``, the same on the held-out prompts (``rounds.heldout`` in the metrics,
  ``plots/rounds-heldout.csv``, ``plots/rounds-heldout-passk.csv``).

``build`` returns a ``Report`` (the metrics and the files written) and prints nothing;
``views`` and ``rounds_views`` give what ``gvstore report``, ``gvstore rounds`` and the report
stage print of it (rich tables and lines of text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore.analysis.corr import score_correlations
from gvstore.analysis.frames import Dataset, Filters
from gvstore.analysis.gap import gap_table
from gvstore.analysis.passk import pass_at_k_table
from gvstore.analysis.specs import parse, parse_template
from gvstore.analysis.sweep import SweepResult, select, sweep
from gvstore.errors import GvstoreError
from gvstore.io import write_atomic
from gvstore.params import Params
from gvstore.replay import Projections
from gvstore.store import Store

if TYPE_CHECKING:
    from rich.table import Table


@dataclass
class Report:
    """What ``build`` computed and wrote: the metrics (``metrics.json``'s content) and the
    files written, in the order they were written."""

    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


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
    rep = Report({"utility": rp.utility, "gap": _gaps(ds, params), "selection": {},
                  "passk": {}, "corr": []})
    for text in rp.sweeps:
        _sweep(ds, params, text, out, rep)
    _passk(ds, params, out, rep)
    rep.metrics["corr"] = _correlations(proj, params)
    if params.rounds.enabled:
        rep.metrics["rounds"] = _rounds(store, params, out, rep)
    rep.files.append(write_atomic(out / "metrics.json",
                                  json.dumps(rep.metrics, indent=2, sort_keys=True) + "\n"))
    return rep


def _gaps(ds: Dataset, params: Params) -> dict[str, Any]:
    """``metrics["gap"]``: task / generator / verifier / round / spec -> the gap's numbers."""
    rp = params.report
    out: dict[str, Any] = {}
    for r in gap_table(ds, [parse(s) for s in rp.specs], resamples=rp.resamples,
                       seed=params.base.seed):
        _nest(out, [r.task, r.generator, r.verifier, f"round{r.round}", r.spec], {
            "prompts": r.prompts, "base": _r(r.base), "reweighted": _r(r.reweighted),
            "gap": _r(r.gap), "gap_lo": _r(r.gap_lo), "gap_hi": _r(r.gap_hi),
            "rel_gap": _r(r.rel_gap), "rel_gap_lo": _r(r.rel_gap_lo),
            "rel_gap_hi": _r(r.rel_gap_hi), "kept": r.kept, "empty_prompts": r.empty_prompts,
            "verdict": r.verdict,
        })
    return out


def _sweep(ds: Dataset, params: Params, text: str, out: Path, rep: Report) -> None:
    """One sweep of ``report.sweeps``: its threshold choices, CSV series and PNG."""
    from gvstore.analysis.plots import sweep_figure

    rp = params.report
    tmpl = parse_template(text)
    results = sweep(ds, tmpl, resamples=rp.resamples, seed=params.base.seed)
    if not results:
        return
    rows = ["group,value,gap,gap_lo,gap_hi,rel_gap,kept"]
    for res in results:
        group = f"{res.task}/{res.generator}/{res.verifier}/r{res.round}"
        rows += [f"{group},{p.value},{_r(p.gap)},{_r(p.gap_lo)},{_r(p.gap_hi)},"
                 f"{_r(p.rel_gap)},{p.kept}" for p in res.points]
        if res.points:  # none: e.g. every score of this method failed to parse
            _nest(rep.metrics["selection"], [res.task, res.generator, res.verifier,
                                             f"round{res.round}", text],
                  _selection(res, tmpl, params))
    rep.files.append(write_atomic(out / "plots" / f"sweep-{_slug(text)}.csv",
                                  "\n".join(rows) + "\n"))
    rep.files.append(sweep_figure(results, out / f"sweep-{_slug(text)}.png"))


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
            xs, ys = curves.setdefault(group, ([], []))
            xs.append(row["k"])
            ys.append(row["pass_at_k"])
    rep.files.append(write_atomic(out / "plots" / "passk.csv", "\n".join(rows) + "\n"))
    rep.files.append(passk_curve(out / "passk.png",
                                 [(g, xs, ys) for g, (xs, ys) in curves.items()]))


def _correlations(proj: Projections, params: Params) -> list[dict[str, Any]]:
    """``metrics["corr"]``: Pearson and Spearman between every two (verifier, method)."""
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


# --- what the CLI and the report stage print -------------------------------------------------


def rounds_views(d: dict[str, Any]) -> list[Table | str]:
    """What to print of a round report (``RoundsReport.to_dict()``): one row per round, then
    the trend and the rounds' notes (or the error that stopped it). With held-out prompts
    (``d["heldout"]``), each round has two rows side by side, ``train`` and ``held-out``, and
    each set its own trend line and notes."""
    from gvstore.output import fmt, table

    if "error" in d:
        return [f"rounds: {d['error']}"]
    ks = [str(k) for k in d["ks"]]
    held = d.get("heldout")
    sets = [("train", d)] + ([("held-out", held)] if held is not None else [])
    rows = []
    for i in range(len(d["rows"])):
        for name, rep in sets:
            row = _round_cells(rep["rows"][i], ks)
            rows.append(row if held is None else [*row[:3], name, *row[3:]])
    spec = d["spec"] or "ground truth"
    out: list[Table | str] = [table(
        f"rounds on {d['task']}: filter {spec}, gap and pass@k on the {d['utility']} utility"
        + (" (train: the prompts trained on; held-out: never trained on)" if held else ""),
        ["round", "model", "verifier", *(["set"] if held else []), "prompts", "samples",
         "acc strict", "acc flexible", "gap [95% CI]", "rel gap", *(f"pass@{k}" for k in ks),
         "eff. answers", "distinct"], rows)]
    for name, rep in sets:
        trend = ", ".join(f"{k} {fmt(v)}" for k, v in rep["trend"].items() if v is not None)
        out.append(f"first to last round{f' ({name})' if held else ''}: {trend}; answer "
                   f"diversity {rep['diversity']}")
    for name, rep in sets:
        out += [f"round {r['round']}{' (held-out)' if name == 'held-out' else ''}: {r['note']}"
                for r in rep["rows"] if r.get("note")]
    return out


def _round_cells(r: dict[str, Any], ks: list[str]) -> list[Any]:
    """One round's cells of the rounds table (``RoundRow.to_dict()``)."""
    from gvstore.output import fmt

    gap = (f"{fmt(r['gap'])} [{fmt(r['gap_lo'])}, {fmt(r['gap_hi'])}]"
           if r["gap"] is not None else "-")
    verifier = "self" if r["verifier"] == r["model"] else (r["verifier"] or "-")
    return [r["round"], r["model"], verifier, r["prompts"], r["samples"], r["acc_strict"],
            r["acc_flexible"], gap, r["rel_gap"], *(r["pass_at_k"].get(k) for k in ks),
            r["effective_answers"], r["distinct_answers"]]


def views(metrics: dict[str, Any]) -> list[Table | str]:
    """What to print of a report (``Report.metrics``): the gap table, the threshold choices,
    pass@k, the correlations and the rounds; the parts with no data are left out."""
    from gvstore.output import table

    out: list[Table | str] = [table(
        f"generation-verification gap ({metrics['utility']} utility)", [
            "task", "generator", "verifier", "round", "spec", "prompts", "base", "reweighted",
            "gap [95% CI]", "rel gap", "verdict"], _gap_rows(metrics["gap"]),
        lift=("generator", "verifier", "round"))]
    sel = _selection_rows(metrics["selection"])
    if sel:
        out.append(table("threshold choice (held-out: chosen on half the prompts, scored on "
                         "the other half; in-sample: paper-style, optimistic)", [
            "task", "generator", "verifier", "sweep", "held-out value", "held-out gap",
            "in-sample value", "in-sample gap"], sel, lift=("generator", "verifier")))
    pk = _passk_rows(metrics["passk"])
    if pk:
        width = max(len(r) for r in pk)
        pk = [r + [""] * (width - len(r)) for r in pk]
        out.append(table("pass@k", ["task", "model", "round"] + [""] * (width - 3), pk))
    if metrics["corr"]:
        out.append(table("verifier score correlations", ["a", "b", "n", "pearson", "spearman"],
                         [[c["a"], c["b"], c["n"], c["pearson"], c["spearman"]]
                          for c in metrics["corr"]]))
    if "rounds" in metrics:
        out += rounds_views(metrics["rounds"])
    return out


def _gap_rows(gaps: dict[str, Any]) -> list[list[Any]]:
    from gvstore.output import fmt

    return [[task, gen, ver, rnd.removeprefix("round"), spec, m["prompts"], m["base"],
             m["reweighted"], f"{fmt(m['gap'])} [{fmt(m['gap_lo'])}, {fmt(m['gap_hi'])}]",
             m["rel_gap"], m["verdict"]]
            for task, gens in gaps.items() for gen, vers in gens.items()
            for ver, rounds in vers.items() for rnd, specs in rounds.items()
            for spec, m in specs.items()]


def _selection_rows(selection: dict[str, Any]) -> list[list[Any]]:
    return [[task, gen, ver, tmpl, d.get("held_out_value"), d.get("held_out_gap"),
             d.get("in_sample_value"), d.get("in_sample_gap")]
            for task, gens in selection.items() for gen, vers in gens.items()
            for ver, rounds in vers.items() for temps in rounds.values()
            for tmpl, d in temps.items()]


def _passk_rows(passk: dict[str, Any]) -> list[list[Any]]:
    from gvstore.output import fmt

    return [[task, model, rnd.removeprefix("round"),
             *(f"{k}={fmt(v)}" for k, v in sorted(ks.items(), key=_k_order))]
            for task, models in passk.items() for model, rounds in models.items()
            for rnd, ks in rounds.items()]


def _k_order(item: tuple[str, Any]) -> tuple[int, str]:
    """pass@k columns by k as a number (metrics.json sorts its keys as text: pass@16 before
    pass@2)."""
    name = item[0]
    tail = name.rpartition("@")[2]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)
