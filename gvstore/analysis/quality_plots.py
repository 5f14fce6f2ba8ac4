"""The figures of verifier quality (``quality.py``, ``gvstore verifier --plot DIR``).

``write_quality_plots(rows, out_dir)`` writes three PNGs:

* ``verifier_roc.png``: one panel per (task, round, method), one ROC curve per (generator,
  verifier) with its AUC in the legend, the chance diagonal drawn;
* ``verifier_reliability.png``: the same panels, accuracy against mean confidence in each
  non-empty bin with the accuracy's bootstrap interval as whiskers, the diagonal of perfect
  calibration, the ECE in the legend;
* ``verifier_scores.png``: per row, the share of correct and of incorrect samples in each
  confidence bin (the paper's figure 16), with mean confidences and the self-bias.

Drawn as ``plots.py`` draws (Agg, no pyplot, names as plain text, atomic PNG writes); at most
``MAX_PANELS`` panels per figure (the first ones, in row order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gvstore.analysis.plots import _figure, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from gvstore.analysis.quality import QualityRow

MAX_PANELS = 12
MAX_CURVE_POINTS = 2000  # a ROC curve is drawn through at most this many of its points


def _panels(n: int, width: float = 4.6, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    cols = min(3, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = _figure(width * cols, height * rows, rows, cols)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _by_panel(rows: Sequence[QualityRow]) -> list[tuple[str, list[QualityRow]]]:
    """Rows grouped by (task, round, method), in first-seen order, at most MAX_PANELS."""
    out: dict[tuple[str, int, str], list[QualityRow]] = {}
    for r in rows:
        out.setdefault((r.task, r.round, r.method), []).append(r)
    return [(f"{t}, round {rnd}: {m}", part) for (t, rnd, m), part in out.items()][:MAX_PANELS]


def _who(r: QualityRow) -> str:
    # two lines, so a legend under a panel stays within the panel's width
    return f"{r.generator}\nverified by {r.verifier}" + (" (self)" if r.self_verification
                                                          else "")


def _num(x: float | None, digits: int = 3) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def _thin(n: int) -> list[int]:
    if n <= MAX_CURVE_POINTS:
        return list(range(n))
    step = (n - 1) / (MAX_CURVE_POINTS - 1)
    return sorted({round(i * step) for i in range(MAX_CURVE_POINTS)})


def roc_figure(rows: Sequence[QualityRow], path: Path) -> Path:
    """ROC curves (see the module doc)."""
    panels = _by_panel(rows)
    fig, axes = _panels(len(panels))
    for ax, (title, part) in zip(axes, panels, strict=False):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
        for r in part:
            cv = r.curve
            if r.auc is None or not cv.fpr:
                why = "no scored samples" if not r.samples else "one class only"
                ax.plot([], [], label=f"{_who(r)}: AUC undefined ({why})")
                continue
            keep = _thin(len(cv.fpr))
            xs = [0.0] + [cv.fpr[i] for i in keep]
            ys = [0.0] + [cv.recall[i] for i in keep]
            ax.plot(xs, ys, drawstyle="default", linewidth=1.4,
                    label=f"{_who(r)}: AUC {_num(r.auc)} (n={r.samples})")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("false positive rate (incorrect samples kept)")
        ax.set_ylabel("true positive rate (recall of correct samples)")
        ax.set_title(f"ROC, {title}", fontsize="small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower right")
    return save(fig, path)


def reliability_figure(rows: Sequence[QualityRow], path: Path) -> Path:
    """Reliability diagrams (see the module doc)."""
    panels = _by_panel(rows)
    fig, axes = _panels(len(panels), height=4.0 + 0.2 * max(len(p) for _, p in panels))
    for ax, (title, part) in zip(axes, panels, strict=False):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8,
                label="perfect calibration")
        level = part[0].level
        for r in part:
            full = [b for b in r.bins if b.n and b.confidence is not None]
            if not full:
                ax.plot([], [], label=f"{_who(r)}: no scored samples")
                continue
            xs = [b.confidence or 0.0 for b in full]
            ys = [b.accuracy or 0.0 for b in full]
            err = [[abs(y - (b.accuracy_lo if b.accuracy_lo is not None else y))
                    for y, b in zip(ys, full, strict=True)],
                   [abs((b.accuracy_hi if b.accuracy_hi is not None else y) - y)
                    for y, b in zip(ys, full, strict=True)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", markersize=4, capsize=3, linewidth=1.2,
                        label=f"{_who(r)}:\nECE {_num(r.ece)}, Brier {_num(r.brier)}")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel(f"mean confidence in bin ({len(part[0].bins)} equal-width bins)")
        ax.set_ylabel(f"accuracy in bin ({part[0].utility} utility)")
        ax.set_title(f"reliability, {title}", fontsize="small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.14),
                  title=f"whiskers: {level:.0%} bootstrap interval" if part[0].resamples
                  else None, title_fontsize="x-small")
    return save(fig, path)


def _hist_panel(ax: Axes, r: QualityRow) -> None:
    lo, hi = r.scale
    ax.set_title(f"{_who(r)}\n{r.task}, round {r.round}, {r.method}", fontsize="small")
    if not r.samples:
        ax.text(0.5, 0.5, f"warning: no scored samples\n({r.note or 'nothing to draw'})",
                ha="center", va="center", transform=ax.transAxes, color="darkred")
        ax.set_axis_off()
        return
    mids = [(b.lo + b.hi) / 2 for b in r.bins]
    width = (r.bins[0].hi - r.bins[0].lo) * 0.42
    top = 0.0
    for share, (off, label, color, pos) in enumerate(
            ((-width / 2, "correct", "C2", True), (width / 2, "incorrect", "C3", False))):
        total = r.positives if pos else r.negatives
        counts = [b.positives if pos else b.n - b.positives for b in r.bins]
        ys = [c / total if total else 0.0 for c in counts]
        mean = r.mean_confidence_correct if pos else r.mean_confidence_incorrect
        top = max(top, *ys)
        ax.bar([m + off for m in mids], ys, width=width, color=color, alpha=0.8 - 0.1 * share,
               label=f"{label} (n={total}, mean {_num(mean)})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.4 * top if top > 0 else 1.0)  # room for the legend
    ax.set_xlabel(f"{r.method} score" + (" (in [0, 1] as recorded)" if (lo, hi) == (0.0, 1.0)
                                         else f" s rescaled to [0, 1]: (s - {lo:g}) / {hi - lo:g}"))
    ax.set_ylabel("share of the class's samples")
    extra = "" if r.self_bias is None else f", self-bias {r.self_bias:+.3f}"
    if r.parse_failure_rate is not None and r.parse_failure_rate > 0.5:
        extra += f"\nwarning: {r.parse_failure_rate:.0%} of scores unparsed"
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper center", framealpha=0.85,
              title=f"overconfidence {_num(r.overconfidence)}{extra}",
              title_fontsize="x-small")


def scores_figure(rows: Sequence[QualityRow], path: Path) -> Path:
    """Score histograms by correctness (see the module doc)."""
    shown = list(rows)[:MAX_PANELS]
    fig, axes = _panels(len(shown))
    for ax, r in zip(axes, shown, strict=False):
        _hist_panel(ax, r)
    return save(fig, path)


def write_quality_plots(rows: Sequence[QualityRow], out_dir: Path,
                        prefix: str = "verifier") -> list[Path]:
    """Write ``{prefix}_roc.png``, ``{prefix}_reliability.png`` and ``{prefix}_scores.png``
    of ``rows`` (``quality.quality_table``) into ``out_dir`` (created); return their paths
    (none if ``rows`` is empty). Call as ``write_quality_plots(quality_table(ds), out)``."""
    if not rows:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [roc_figure(rows, out_dir / f"{prefix}_roc.png"),
            reliability_figure(rows, out_dir / f"{prefix}_reliability.png"),
            scores_figure(rows, out_dir / f"{prefix}_scores.png")]
