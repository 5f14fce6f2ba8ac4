"""``gvstore passk | corr | variance``: the analyses beyond the gap (``scaling`` is in
``gvstore/cli/scaling.py``).

Plain command functions; ``gvstore/cli/app.py`` registers them on the root app. Every command reads
the store's projections, never a model. Filters repeat (``--task a --task b``); an option left
out means all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from gvstore.cli.console import emit, note
from gvstore.cli.options import (
    GeneratorOpt,
    JsonOpt,
    MethodOpt,
    RoundOpt,
    StoreOpt,
    TaskOpt,
    UtilityOpt,
    VerifierOpt,
    get_store,
    grader_option,
    make_filters,
    plot_option,
)
from gvstore.errors import GvstoreError
from gvstore.output import table

GraderOpt = Annotated[str | None, grader_option(
    "The grader whose grades count, where several graded.")]
PlotOpt = Annotated[Path | None, plot_option("Write a PNG plot to this path.")]


def projections(ctx: typer.Context, store: Path | None) -> Any:
    """The projections of the command's store (which must exist)."""
    from gvstore.replay import Projections

    return Projections(get_store(ctx, store))


def wrote(data: dict[str, Any], plot: Path | None, as_json: bool) -> None:
    """Record the plot path in the JSON data and, for people, say it was written."""
    if plot is None:
        return
    data["plot"] = str(plot)
    if not as_json:
        note(f"wrote {plot}")


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-|\.\.|:)\s*(\d+)\s*$")


def parse_ks(text: str) -> list[int]:
    """``"1,2,4,8"``, a range ``"1-128"`` (or ``1..128``), or a mix: sorted distinct ks."""
    ks: set[int] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise GvstoreError(f"--k range {part.strip()!r} runs backwards")
            ks.update(range(lo, hi + 1))
        elif part.strip().isdigit():
            ks.add(int(part))
        else:
            raise GvstoreError(
                f"--k takes numbers and ranges like 1,2,4,8 or 1-128; got {part.strip()!r}"
            )
    if not ks:
        raise GvstoreError("--k needs at least one k")
    if min(ks) < 1:
        raise GvstoreError("k must be >= 1")
    return sorted(ks)


def passk_cmd(
    ctx: typer.Context,
    k: Annotated[
        str | None,
        typer.Option("--k", help="ks: 1,2,4,8 or a range 1-128 (default: powers of 2 up to "
                     "the most samples of a prompt)."),
    ] = None,
    task: TaskOpt = None, generator: GeneratorOpt = None, round_: RoundOpt = None,
    utility: UtilityOpt = "strict", grader: GraderOpt = None, plot: PlotOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """pass@k per task, generator and round: the unbiased estimator of Chen et al. (2021).

    A prompt with fewer graded samples than k is left out of that k's mean and counted as
    excluded. A sample is correct when its utility is 1.
    """
    import polars as pl

    from gvstore.analysis.frames import base_frame
    from gvstore.analysis.passk import pass_at_k_table, powers_of_two

    frame = base_frame(projections(ctx, store), utility=utility, grader=grader,
                       filters=make_filters(task, generator, rnd=round_))
    graded = frame.filter(pl.col("utility").is_not_null())
    if graded.height == 0:
        raise GvstoreError("no graded generations match the filters")
    if k is None:
        most = int(graded.group_by("prompt").len()["len"].max())  # type: ignore[arg-type]
        ks = powers_of_two(most)
    else:
        ks = parse_ks(k)
    result = pass_at_k_table(frame, ks)
    data: dict[str, Any] = {"utility": utility, "ks": ks, "rows": result.to_dicts()}
    if plot is not None:
        from gvstore.analysis import plots

        curves = [
            (f"{t}/{m}/r{r}", part["k"].to_list(), part["pass_at_k"].to_list())
            for (t, m, r), part in result.group_by("task", "model", "round",
                                                   maintain_order=True)
        ]
        plots.passk_curve(plot, curves, title=f"pass@k ({utility})")
    wrote(data, plot, as_json)
    rows = [[r["task"], r["model"], r["round"], r["k"], r["pass_at_k"], r["prompts"],
             r["excluded"]] for r in data["rows"]]
    emit(data, as_json, table(f"pass@k ({utility})",
                              ["task", "model", "round", "k", "pass@k", "prompts", "excluded"],
                              rows))


def _label(side: dict[str, str]) -> str:
    return f"{side['verifier']}/{side['method']}"


MAX_PANELS = 12


def _corr_scatter(plot: Path, pairs: list[dict[str, Any]], vers: Any) -> None:
    """One scatter panel per pair of (verifier, method), on the generations both scored."""
    if len(pairs) > MAX_PANELS:
        raise GvstoreError(f"--plot draws at most {MAX_PANELS} pairs, the filters leave "
                           f"{len(pairs)}: narrow them with --verifier or --method")
    from gvstore.analysis import plots
    from gvstore.analysis.corr import paired_scores, scores_per_generation

    scores = scores_per_generation(vers)
    panels = []
    for p in pairs:
        a = (p["a"]["verifier"], p["a"]["method"])
        b = (p["b"]["verifier"], p["b"]["method"])
        both, _ = paired_scores(scores, a, b)
        rho = p["spearman"]
        panels.append({
            "x": both["x"].to_list(), "y": both["y"].to_list(),
            "xlabel": _label(p["a"]), "ylabel": _label(p["b"]),
            "title": f"n={p['n']}  rho=" + ("-" if rho is None else f"{rho:.3f}"),
        })
    plots.scatter_grid(plot, panels, title="verifier score correlations")


def _corr_heatmap(heatmap: Path, pairs: list[dict[str, Any]]) -> None:
    """The Spearman matrix of every (verifier, method) against every other."""
    from gvstore.analysis import plots

    labels = sorted({_label(p["a"]) for p in pairs} | {_label(p["b"]) for p in pairs})
    index = {name: i for i, name in enumerate(labels)}
    matrix: list[list[float | None]] = [
        [1.0 if i == j else None for j in range(len(labels))] for i in range(len(labels))
    ]
    for p in pairs:
        i, j = index[_label(p["a"])], index[_label(p["b"])]
        matrix[i][j] = matrix[j][i] = p["spearman"]
    plots.heatmap(heatmap, matrix, labels, labels, title="Spearman rho", vmin=-1, vmax=1)


def corr_cmd(
    ctx: typer.Context,
    task: TaskOpt = None, generator: GeneratorOpt = None, round_: RoundOpt = None,
    verifier: VerifierOpt = None, method: MethodOpt = None,
    plot: Annotated[Path | None, plot_option("Write a PNG of one scatter per pair.")] = None,
    heatmap: Annotated[Path | None, plot_option(
        "Write a PNG of the Spearman matrix.", name="--heatmap")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pearson and Spearman correlation between the scores of every two (verifier, method).

    Scores are averaged over repeated verifications of a generation (parse failures left
    out); pairs are compared on the generations both scored, nulls dropped and counted.
    """
    import polars as pl

    from gvstore.analysis.corr import score_correlations

    proj = projections(ctx, store)
    vers = make_filters(task, generator, verifier, round_, method).verifications(
        proj.verifications, proj.generations
    )
    vers = vers.filter(pl.col("method") != "tournament")
    keys = vers.select("verifier", "method").unique()
    if keys.height < 2:
        found = ", ".join(f"{v}/{m}" for v, m in keys.sort("verifier", "method").iter_rows())
        raise GvstoreError("correlations need at least two (verifier, method) pairs with "
                           f"scores; the filters leave {found or 'none'}")
    pairs = score_correlations(vers)
    data: dict[str, Any] = {"pairs": pairs}
    if plot is not None:
        _corr_scatter(plot, pairs, vers)
    if heatmap is not None:
        _corr_heatmap(heatmap, pairs)
        data["heatmap"] = str(heatmap)
        if not as_json:
            note(f"wrote {heatmap}")
    wrote(data, plot, as_json)
    rows = [[_label(p["a"]), _label(p["b"]), p["n"], p["dropped"], p["pearson"],
             p["spearman"]] for p in pairs]
    emit(data, as_json, table("score correlations",
                              ["a", "b", "n", "dropped", "pearson", "spearman"], rows))


def variance_cmd(
    ctx: typer.Context,
    task: TaskOpt = None, generator: GeneratorOpt = None, round_: RoundOpt = None,
    verifier: VerifierOpt = None, method: MethodOpt = None,
    bins: Annotated[int, typer.Option("--bins", help="Histogram bins over [0, 0.25].")] = 10,
    plot: Annotated[Path | None, plot_option(
        "Write a PNG histogram of the variances.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verification variance p(1-p) of generations verified more than once (appendix D.4).

    Binary verdicts: cot_binary scores (0/1), and mc with P(Correct) >= 0.5 counted as
    "correct"; other methods have no binary verdict and are skipped.
    """
    from gvstore.analysis.variance import BINARY_THRESHOLDS, variance_summary, verdict_variance

    proj = projections(ctx, store)
    vers = make_filters(task, generator, verifier, round_, method).verifications(
        proj.verifications, proj.generations
    )
    per_gen = verdict_variance(vers)
    if per_gen.height == 0:
        raise GvstoreError("no mc or cot_binary verifications match the filters")
    summary = variance_summary(per_gen, bins=bins)
    data: dict[str, Any] = {"thresholds": BINARY_THRESHOLDS, "groups": summary}
    if plot is not None:
        from gvstore.analysis import plots

        have = [s for s in summary if s["generations"]]
        if not have:
            raise GvstoreError("no generation has two or more verdicts: nothing to plot")
        one = have[0] if len(have) == 1 else None
        plots.histogram(
            plot, have[0]["histogram"]["edges"],
            [(f"{s['verifier']}/{s['method']}", s["histogram"]["counts"]) for s in have],
            title="verification variance p(1-p)", xlabel="p(1-p)",
            mean=one["mean_variance"] if one else None,
        )
    wrote(data, plot, as_json)
    rows = [[s["verifier"], s["method"], s["generations"], s["single"], s["failures"],
             s["mean_verdicts"], s["mean_variance"], s["consistent"]] for s in summary]
    emit(data, as_json, table(
        "verification variance",
        ["verifier", "method", "generations", "single", "failures", "mean m", "mean p(1-p)",
         "share p(1-p)=0"], rows,
    ))
