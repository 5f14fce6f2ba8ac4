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
  ``plots/rounds.csv``, ``plots/rounds-passk.csv`` and ``rounds.png`` (the paper's figure 4).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from gvstore.analysis.corr import score_correlations
from gvstore.analysis.frames import Dataset, Filters
from gvstore.analysis.gap import gap_table
from gvstore.analysis.passk import pass_at_k_table, utility_frame
from gvstore.analysis.specs import parse, parse_template
from gvstore.analysis.sweep import plot_sweep, select, sweep
from gvstore.errors import GvstoreError
from gvstore.params import Params
from gvstore.replay import Projections
from gvstore.store import Store


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def _nest(root: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        root = root.setdefault(k, {})
    root[keys[-1]] = value


def _r(x: float | None) -> float | None:
    return None if x is None or x != x else round(float(x), 6)


def build(store: Store, params: Params, out: Path) -> dict[str, Any]:
    """Compute the study report and write it under ``out``; returns the metrics dict."""
    rp = params.report
    proj = Projections(store)
    ds = Dataset(proj, utility=rp.utility, filters=Filters(tasks=tuple(params.study.tasks)))
    metrics: dict[str, Any] = {"utility": rp.utility, "gap": {}, "selection": {},
                               "passk": {}, "corr": []}
    for r in gap_table(ds, [parse(s) for s in rp.specs], resamples=rp.resamples,
                       seed=params.base.seed):
        _nest(metrics["gap"], [r.task, r.generator, r.verifier, f"round{r.round}", r.spec], {
            "prompts": r.prompts, "base": _r(r.base), "reweighted": _r(r.reweighted),
            "gap": _r(r.gap), "gap_lo": _r(r.gap_lo), "gap_hi": _r(r.gap_hi),
            "rel_gap": _r(r.rel_gap), "rel_gap_lo": _r(r.rel_gap_lo),
            "rel_gap_hi": _r(r.rel_gap_hi), "kept": r.kept, "empty_prompts": r.empty_prompts,
            "verdict": r.verdict,
        })
    plots = out / "plots"
    for text in rp.sweeps:
        tmpl = parse_template(text)
        results = sweep(ds, tmpl, resamples=rp.resamples, seed=params.base.seed)
        if not results:
            continue
        rows = ["group,value,gap,gap_lo,gap_hi,rel_gap,kept"]
        for res in results:
            group = f"{res.task}/{res.generator}/{res.verifier}/r{res.round}"
            rows += [f"{group},{p.value},{_r(p.gap)},{_r(p.gap_lo)},{_r(p.gap_hi)},"
                     f"{_r(p.rel_gap)},{p.kept}" for p in res.points]
            if not res.points:  # e.g. every score of this method failed to parse
                continue
            try:
                sel = select(res, tmpl, metric=rp.select_on, seed=params.base.seed,
                             resamples=rp.resamples)
            except GvstoreError as exc:  # too few prompts to split, nothing to choose
                _nest(metrics["selection"], [res.task, res.generator, res.verifier,
                                             f"round{res.round}", text], {"error": str(exc)})
                continue
            d = sel.to_dict()
            _nest(metrics["selection"], [res.task, res.generator, res.verifier,
                                         f"round{res.round}", text], {
                k: (_r(v) if isinstance(v, float) else v) for k, v in d.items()
                if k.startswith(("held_out", "in_sample", "metric", "select_", "eval_"))})
        _write(plots / f"sweep-{_slug(text)}.csv", "\n".join(rows) + "\n")
        plot_sweep(results, out / f"sweep-{_slug(text)}.png")
    uf = utility_frame(proj, utility=rp.utility)
    uf = uf.filter(uf["task"].is_in(params.study.tasks))
    counts = uf.group_by("prompt").len()["len"].to_list() if uf.height else []
    n_max = max(counts, default=0)
    ks = [k for k in rp.passk if k <= n_max]
    if ks:
        table = pass_at_k_table(uf, ks)
        rows = ["group,k,pass_at_k"]
        curves: dict[str, tuple[list[float], list[float]]] = {}
        for row in table.iter_rows(named=True):
            group = f"{row['task']}/{row['model']}/r{row['round']}"
            _nest(metrics["passk"], [row["task"], row["model"], f"round{row['round']}",
                                     f"pass@{row['k']}"], _r(row["pass_at_k"]))
            rows.append(f"{group},{row['k']},{_r(row['pass_at_k'])}")
            if row["pass_at_k"] is not None:
                xs, ys = curves.setdefault(group, ([], []))
                xs.append(row["k"])
                ys.append(row["pass_at_k"])
        _write(plots / "passk.csv", "\n".join(rows) + "\n")
        from gvstore.analysis import plots as plotlib

        plotlib.passk_curve(out / "passk.png", [(g, xs, ys) for g, (xs, ys) in curves.items()])
    vers = proj.verifications.join(proj.generations.select("gen", "task"), on="gen")
    vers = vers.filter(vers["task"].is_in(params.study.tasks)).drop("task")
    for c in score_correlations(vers):
        a, b = c["a"], c["b"]
        metrics["corr"].append({
            "a": f"{a['verifier']}/{a['method']}", "b": f"{b['verifier']}/{b['method']}",
            "n": c["n"], "pearson": _r(c["pearson"]), "spearman": _r(c["spearman"])})
    if params.rounds.enabled:
        metrics["rounds"] = _rounds(store, params, out)
    _write(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _rounds(store: Store, params: Params, out: Path) -> dict[str, Any]:
    """The round report: metrics, series and figure (an error is recorded, not raised: the
    rounds may not have run yet)."""
    from gvstore.analysis.rounds import rounds_figure, write_series
    from gvstore.steps import rounds

    try:
        rep = rounds.report(params, store)
    except GvstoreError as exc:
        return {"error": " ".join(str(exc).split())}
    write_series(rep, out / "plots")
    rounds_figure(rep, out / "rounds.png")
    return rep.to_dict()


def render_rounds(d: dict[str, Any]) -> None:
    """Print a round report (``RoundsReport.to_dict()``): one row per round, then the trend."""
    from gvstore.output import console, fmt, table

    if "error" in d:
        console.print(f"rounds: {d['error']}", highlight=False)
        return
    ks = [str(k) for k in d["ks"]]
    rows = []
    for r in d["rows"]:
        gap = (f"{fmt(r['gap'])} [{fmt(r['gap_lo'])}, {fmt(r['gap_hi'])}]"
               if r["gap"] is not None else "-")
        verifier = "self" if r["verifier"] == r["model"] else (r["verifier"] or "-")
        rows.append([r["round"], r["model"], verifier, r["prompts"], r["samples"],
                     r["acc_strict"], r["acc_flexible"], gap, r["rel_gap"],
                     *(r["pass_at_k"].get(k) for k in ks), r["effective_answers"],
                     r["distinct_answers"]])
    spec = d["spec"] or "ground truth"
    console.print(table(
        f"rounds on {d['task']}: filter {spec}, gap and pass@k on the {d['utility']} utility",
        ["round", "model", "verifier", "prompts", "samples", "acc strict", "acc flexible",
         "gap [95% CI]", "rel gap", *(f"pass@{k}" for k in ks), "eff. answers",
         "distinct"], rows))
    trend = ", ".join(f"{k} {fmt(v)}" for k, v in d["trend"].items() if v is not None)
    console.print(f"first to last round: {trend}; answer diversity {d['diversity']}",
                  highlight=False)
    for r in d["rows"]:
        if r.get("note"):
            console.print(f"round {r['round']}: {r['note']}", highlight=False)


def render(metrics: dict[str, Any]) -> None:
    """Print the report's gap table, threshold choices, pass@k and correlations."""
    from gvstore.output import console, fmt, table

    rows = []
    for task, gens in metrics["gap"].items():
        for gen, vers in gens.items():
            for ver, rounds in vers.items():
                for rnd, specs in rounds.items():
                    for spec, m in specs.items():
                        rows.append([task, gen, ver, rnd.removeprefix("round"), spec,
                                     m["prompts"], m["base"], m["reweighted"],
                                     f"{fmt(m['gap'])} [{fmt(m['gap_lo'])}, {fmt(m['gap_hi'])}]",
                                     m["rel_gap"], m["verdict"]])
    console.print(table(f"generation-verification gap ({metrics['utility']} utility)", [
        "task", "generator", "verifier", "round", "spec", "prompts", "base", "reweighted",
        "gap [95% CI]", "rel gap", "verdict"], rows,
        lift=("generator", "verifier", "round")))
    sel = []
    for task, gens in metrics["selection"].items():
        for gen, vers in gens.items():
            for ver, rounds in vers.items():
                for _rnd, temps in rounds.items():
                    for tmpl, d in temps.items():
                        sel.append([task, gen, ver, tmpl, d.get("held_out_value"),
                                    d.get("held_out_gap"), d.get("in_sample_value"),
                                    d.get("in_sample_gap")])
    if sel:
        console.print(table("threshold choice (held-out: chosen on half the prompts, scored on "
                            "the other half; in-sample: paper-style, optimistic)", [
            "task", "generator", "verifier", "sweep", "held-out value", "held-out gap",
            "in-sample value", "in-sample gap"], sel, lift=("generator", "verifier")))
    pk = []
    for task, models in metrics["passk"].items():
        for model, rounds in models.items():
            for rnd, ks in rounds.items():
                pk.append([task, model, rnd.removeprefix("round"),
                           *(f"{k}={fmt(v)}" for k, v in ks.items())])
    if pk:
        width = max(len(r) for r in pk)
        pk = [r + [""] * (width - len(r)) for r in pk]
        console.print(table("pass@k", ["task", "model", "round"] + [""] * (width - 3), pk))
    if metrics["corr"]:
        console.print(table("verifier score correlations", ["a", "b", "n", "pearson",
                                                            "spearman"],
                            [[c["a"], c["b"], c["n"], c["pearson"], c["spearman"]]
                             for c in metrics["corr"]]))
    if "rounds" in metrics:
        render_rounds(metrics["rounds"])
