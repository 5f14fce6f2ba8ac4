"""What ``gvstore report``, ``gvstore rounds`` and the report stage print of a report: rich
tables and lines of text, built from the report's dict (``report.json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gvstore.analysis.specs import fmt_number
from gvstore.report.parsing import FLAG_ABOVE, warning

if TYPE_CHECKING:
    from rich.table import Table


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
    from gvstore.output import fmt, styled

    gap = (f"{fmt(r['gap'])} [{fmt(r['gap_lo'])}, {fmt(r['gap_hi'])}]"
           if r["gap"] is not None else "-")
    if r["gap"] is not None and r.get("verdict"):  # the gap's verdict under it
        n = r.get("prompts_to_decide")
        gap += f"\n{r['verdict']}" + ("" if n is None else f" (~{n:,} to decide)")
    verifier = "self" if r["verifier"] == r["model"] else (r["verifier"] or "-")
    return [r["round"], r["model"], verifier, r["prompts"], r["samples"], r["acc_strict"],
            r["acc_flexible"], styled(gap, multiline=True), r["rel_gap"],
            *(r["pass_at_k"].get(k) for k in ks),
            r["effective_answers"], r["distinct_answers"]]


def views(metrics: dict[str, Any]) -> list[Table | str]:
    """What to print of a report (``Report.metrics``): the gap table (with each spec's share of
    unparsed scores), the parse failures and their warnings, the threshold choices, pass@k,
    the correlations, the extra sections and the rounds; the parts with no data are left
    out."""
    from gvstore.output import table
    from gvstore.report import metrics_extra

    out: list[Table | str] = [table(
        f"generation-verification gap ({metrics['utility']} utility; unparsed: share of the "
        "spec's verifications that did not parse, its worst method's)", [
            "task", "generator", "verifier", "round", "spec", "prompts", "base", "reweighted",
            "gap [95% CI]", "rel gap", "verdict", "unparsed"], rows,
        lift=("task", "generator", "verifier", "round"))
        for rows in _by_task(_gap_rows(metrics["gap"]))]
    out += parse_views(metrics.get("parse", []))
    sel = _selection_rows(metrics["selection"])
    if sel:
        out.append(table("threshold choice (held-out: chosen on half the prompts, scored on "
                         "the other half; in-sample: paper-style, optimistic; ties: the "
                         "smallest value)", [
            "task", "generator", "verifier", "round", "sweep", "values", "held-out value",
            "held-out gap [95% CI]", "in-sample value", "in-sample gap"], sel,
            lift=("generator", "verifier", "round")))
        out += _selection_notes(metrics["selection"])
    out += passk_views(metrics["passk"])
    if metrics["corr"]:
        out.append(table("verifier score correlations", ["a", "b", "n", "pearson", "spearman"],
                         [[c["a"], c["b"], c["n"], c["pearson"], c["spearman"]]
                          for c in metrics["corr"]]))
    out += metrics_extra.views(metrics)
    if "rounds" in metrics:
        out += rounds_views(metrics["rounds"])
    return out


def _by_task(rows: list[list[Any]]) -> list[list[list[Any]]]:
    """Rows split into one table per task (the first cell), in order."""
    out: dict[Any, list[list[Any]]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r)
    return list(out.values()) or [[]]


def pct(x: float | None) -> str:
    """A share as a percentage cell (``-`` for None)."""
    return "-" if x is None else f"{100.0 * x:.0f}%"


def _gap_rows(gaps: dict[str, Any]) -> list[list[Any]]:
    """The gap table's rows (the verdict above the prompts that would decide it, where the
    verdict gives them: ``inconclusive`` / ``~62 to decide``)."""
    from gvstore.output import fmt, styled

    def verdict(m: dict[str, Any]) -> Any:
        n = m.get("prompts_to_decide")
        return styled(m["verdict"] + ("" if n is None else f"\n~{n:,} to decide"),
                      multiline=True)

    return [[task, gen, ver, int(rnd.removeprefix("round")), spec, m["prompts"], m["base"],
             m["reweighted"],
             f"{fmt(m['gap'])} [{fmt(m['gap_lo'])}, {fmt(m['gap_hi'])}]",
             m["rel_gap"], verdict(m), _unparsed_cell(m)]
            for task, gens in gaps.items() for gen, vers in gens.items()
            for ver, rounds in vers.items() for rnd, specs in rounds.items()
            for spec, m in specs.items()]


def _unparsed_cell(m: dict[str, Any]) -> str:
    """The spec's share of unparsed verifications (its worst method's), ``!`` if flagged."""
    if m.get("unparsed") is None:
        return "-"
    return pct(m["unparsed"]) + (" !" if m.get("flagged") else "")


def parse_views(rates: list[dict[str, Any]]) -> list[Table | str]:
    """The parse-failure table (only if some verification failed to parse) and one warning
    line per flagged method."""
    from gvstore.output import table

    if not any(r["failed"] for r in rates):
        return []
    out: list[Table | str] = [table(
        f"verifications that did not parse (null score or parse status not ok; ! above "
        f"{pct(FLAG_ABOVE)})", ["task", "generator", "verifier", "round", "method",
                                "verifications", "unparsed", "samples scored"],
        [[r["task"], r["generator"], r["verifier"], r["round"], r["method"],
          r["verifications"], pct(r["unparsed"]) + (" !" if r["flagged"] else ""),
          f"{r['parsed_samples']} of {r['samples']}"] for r in rates],
        lift=("generator", "verifier", "round"))]
    out += [f"! {warning(r)}" for r in rates if r["flagged"]]
    return out


def _value(v: Any) -> str:
    return "-" if v is None else fmt_number(float(v))


def _selection_rows(selection: dict[str, Any]) -> list[list[Any]]:
    from gvstore.output import fmt

    rows = []
    for task, gens in selection.items():
        for gen, vers in gens.items():
            for ver, rounds in vers.items():
                for rnd, temps in rounds.items():
                    for tmpl, d in temps.items():
                        mark = " !" if d.get("flagged") or d.get("points", 2) < 2 else ""
                        held = ("-" if "held_out_gap" not in d else
                                f"{fmt(d['held_out_gap'])} [{fmt(d.get('held_out_gap_lo'))}, "
                                f"{fmt(d.get('held_out_gap_hi'))}]")
                        rows.append([task, gen, ver, int(rnd.removeprefix("round")), tmpl,
                                     d.get("points"), _value(d.get("held_out_value")) + mark,
                                     held, _value(d.get("in_sample_value")) + mark,
                                     d.get("in_sample_gap")])
    return rows


def _selection_notes(selection: dict[str, Any]) -> list[str]:
    """A line for each threshold choice that is no real choice: one value swept, or a method
    whose scores mostly did not parse, or no choice at all (the reason)."""
    out = []
    for task, gens in selection.items():
        for gen, vers in gens.items():
            for ver, rounds in vers.items():
                for rnd, temps in rounds.items():
                    for tmpl, d in temps.items():
                        where = (f"{tmpl} on {task} (generator {gen}, verifier {ver}, round "
                                 f"{rnd.removeprefix('round')})")
                        if "error" in d:
                            out.append(f"! {where}: no threshold choice: {d['error']}")
                        elif d.get("points", 2) < 2:
                            out.append(f"! {where}: one value swept (one parsed score value): "
                                       "its choice and its gap say nothing about a threshold")
                        elif d.get("flagged"):
                            out.append(f"! {where}: chosen on a method whose scores mostly "
                                       "did not parse")
    return out


def passk_views(passk: dict[str, Any]) -> list[Table | str]:
    """The pass@k table: one column per k (by k as a number), ``-`` where a k is missing."""
    from gvstore.output import table

    rows = [(task, model, int(rnd.removeprefix("round")), d)
            for task, models in passk.items() for model, rounds in models.items()
            for rnd, d in rounds.items()]
    if not rows:
        return []
    ks = sorted({k for *_, d in rows for k in d}, key=lambda k: _k_order((k, None)))
    return [table("pass@k", ["task", "model", "round", *ks],
                  [[task, model, rnd, *(d.get(k) for k in ks)] for task, model, rnd, d in rows],
                  lift=("model", "round"))]


def _passk_rows(passk: dict[str, Any]) -> list[list[Any]]:
    """``[task, model, round, "pass@k=value", ...]`` per row, by k as a number (the cells of
    the rounds' pass@k lists)."""
    from gvstore.output import fmt

    return [[task, model, rnd.removeprefix("round"),
             *(f"{k}={fmt(v)}" for k, v in sorted(ks.items(), key=_k_order))]
            for task, models in passk.items() for model, rounds in models.items()
            for rnd, ks in rounds.items()]


def _k_order(item: tuple[str, Any]) -> tuple[int, str]:
    """pass@k columns by k as a number (``report.json`` sorts its keys as text: pass@16
    before pass@2)."""
    name = item[0]
    tail = name.rpartition("@")[2]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)
