"""``gvstore verifier [METHOD...]``: each verifier's scores as a classifier of correct answers
(ROC AUC, precision and recall per threshold, calibration, score distributions and
self-bias; ``docs/metrics.md``, "Verifier quality"). Nothing heavy is imported until the
command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.cli.analysis import LevelOpt, ResamplesOpt, SeedOpt, dataset
from gvstore.cli.console import emit, note
from gvstore.cli.options import (
    GeneratorOpt,
    GraderOpt,
    JsonOpt,
    RoundOpt,
    StoreOpt,
    TaskOpt,
    UtilityOpt,
    VerifierOpt,
    make_filters,
)
from gvstore.errors import GvstoreError
from gvstore.output import fmt, table

LIFT = ("task", "generator", "round", "verifier", "method")
TABLE_THRESHOLDS = 11  # threshold rows shown per verifier in the table (JSON: all)


def _ci(x: float | None, lo: float | None, hi: float | None) -> Text:
    if x is None:
        return Text("-")
    if lo is None or hi is None:
        return Text(fmt(x))
    return Text(f"{fmt(x)}\n[{fmt(lo)}, {fmt(hi)}]")


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _names_whole(t: Any) -> Any:
    """Never wrap the name columns of ``t`` (a rich Table): a name is not cut mid-way."""
    for col in t.columns:
        if str(col.header) in LIFT:
            col.no_wrap = True
    return t


def _summary(rows: list[Any]) -> object:
    r0 = rows[0]
    return _names_whole(table(
        f"verifier quality ({r0.utility} utility, correct = utility >= 0.5; scores rescaled "
        f"to [0, 1]; [{r0.level:.0%} bootstrap interval over prompts])\n"
        "unparsed: verified graded samples with a null score; overconf: mean confidence - "
        "accuracy; self-bias: a self-verifier's overconf - its cross-verifiers' mean",
        [*LIFT, "prompts", "samples", "unparsed", "accuracy", "AUC", "Brier", "ECE",
         "overconf", "self-bias"],
        [[r.task, r.generator, r.round, r.verifier, r.method, r.prompts, r.samples,
          Text(f"{_share(r.parse_failure_rate)}\nof {r.verified}"), r.accuracy,
          _ci(r.auc, r.auc_lo, r.auc_hi), _ci(r.brier, r.brier_lo, r.brier_hi),
          _ci(r.ece, r.ece_lo, r.ece_hi),
          _ci(r.overconfidence, r.overconfidence_lo, r.overconfidence_hi),
          _ci(r.self_bias, r.self_bias_lo, r.self_bias_hi) if r.self_verification else "-"]
         for r in rows], lift=LIFT[:-1]))


def _notes(rows: list[Any]) -> list[object]:
    """One line per row with a note (undefined or weak figures)."""
    return [f"note: {r.generator} verified by {r.verifier} ({r.task}, round {r.round}, "
            f"{r.method}): {r.note}" for r in rows if r.note]


def _thin(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _thresholds(rows: list[Any]) -> object:
    body = []
    for r in rows:
        cv = r.curve
        for i in _thin(len(cv.threshold), TABLE_THRESHOLDS):
            body.append([r.task, r.generator, r.round, r.verifier, r.method, cv.threshold[i],
                         cv.tp[i], cv.fp[i], cv.precision[i], cv.recall[i], cv.fpr[i]])
    return _names_whole(table(
        "precision and recall at each threshold (keep s >= threshold, raw score units; at "
        f"most {TABLE_THRESHOLDS} evenly spaced of the distinct scores per verifier, --json "
        "has all)", [*LIFT, "threshold", "TP", "FP", "precision", "recall", "FPR"], body,
        lift=LIFT))


def _reliability(rows: list[Any]) -> object:
    body = [[r.task, r.generator, r.round, r.verifier, r.method,
             ("[" if b.lo == 0 else "(") + f"{b.lo:.2f}, {b.hi:.2f}]",
             b.n, b.positives, b.n - b.positives, b.confidence,
             _ci(b.accuracy, b.accuracy_lo, b.accuracy_hi)]
            for r in rows for b in r.bins if b.n]
    return _names_whole(table(
        "reliability diagram and score distribution by correctness (non-empty "
        "equal-width confidence bins)",
        [*LIFT, "bin", "samples", "correct", "incorrect", "confidence", "accuracy"], body,
        lift=LIFT))


def verifier_cmd(
    ctx: typer.Context,
    methods: Annotated[list[str] | None, typer.Argument(
        help="Score methods (default: mc cot_binary cot_score); tournament has no "
        "per-sample score and is skipped.", show_default=False)] = None,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, utility: UtilityOpt = "strict", grader: GraderOpt = None,
    bins: Annotated[int, typer.Option(
        "--bins", help="Equal-width confidence bins (reliability, ECE, histograms).")] = 10,
    max_thresholds: Annotated[int, typer.Option(
        "--max-thresholds", help="Points of each ROC / precision-recall curve kept in "
        "--json, evenly spaced (0: every distinct score).")] = 0,
    summary: Annotated[bool, typer.Option(
        "--summary", help="Print only the summary table.")] = False,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write verifier_roc.png, verifier_reliability.png and "
        "verifier_scores.png into this folder.", show_default=False)] = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """How good each verifier is as a classifier of correct answers: ROC AUC, precision and
    recall at each threshold, calibration (reliability, ECE, Brier), the score distribution
    of correct and incorrect samples and the self-bias, with bootstrap intervals over
    prompts."""
    from gvstore.analysis.quality import quality_table, score_methods

    if max_thresholds < 0:
        raise GvstoreError(f"--max-thresholds must be >= 0, got {max_thresholds}")
    keep, skipped = score_methods(methods)
    ds = dataset(ctx, store, utility, make_filters(task, generator, verifier, rnd), grader)
    rows = quality_table(ds, keep, bins=bins, resamples=resamples, seed=seed, level=level,
                         max_thresholds=max_thresholds or None)
    if not rows:
        raise GvstoreError("no graded generations with verifications of these methods match "
                           "the filters")
    paths = []
    if plot is not None:
        from gvstore.analysis.quality_plots import write_quality_plots

        paths = write_quality_plots(rows, plot)
    if skipped and not as_json:
        note(f"skipped {', '.join(skipped)}: no per-sample score (pairwise matches)")
    tables = [_summary(rows), *_notes(rows)]
    if not summary:
        tables += [_thresholds(rows), _reliability(rows)]
    emit({"results": [r.to_dict() for r in rows], "skipped": skipped,
          "plots": [str(p) for p in paths]}, as_json, *tables,
         *([f"plots written to {', '.join(str(p) for p in paths)}"] if paths else []))
