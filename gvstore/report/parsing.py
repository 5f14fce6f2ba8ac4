"""How often each verifier's output failed to parse, per method: the report's warning light.

A verification **failed to parse** when its ``score`` is null or its ``parse_status`` is not
``ok``; a tournament match when its ``winner`` is null or its ``parse_status`` is not ``ok``.
Per (task, generator, round, verifier, method):

* ``verifications``: the records (verifications, or matches for a pairwise method);
* ``failed``: those that failed to parse; ``unparsed`` = failed / verifications;
* ``samples``: the generations verified; ``parsed_samples``: those with at least one parsed
  score (for a pairwise method: in at least one decided match);
* ``flagged``: ``unparsed`` > ``FLAG_ABOVE`` (0.5): most of the method's scores are missing,
  so every gap, sweep and threshold choice of it rests on the few that parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from gvstore.replay import Projections

FLAG_ABOVE = 0.5
"""A method whose share of unparsed verifications exceeds this is flagged in the report."""

KEYS = ("task", "generator", "round", "verifier", "method")


def parse_rates(proj: Projections, tasks: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (task, generator, round, verifier, method) with verifications (see the
    module doc), sorted by those keys."""
    gens = proj.generations.select("gen", "task", pl.col("model").alias("generator"), "round")
    gens = gens.filter(pl.col("task").is_in(list(tasks)))
    vers = proj.verifications.join(gens, on="gen").select(
        *KEYS, "gen", failed=pl.col("score").is_null() | (pl.col("parse_status") != "ok"))
    records = [vers.drop("gen")]
    sides = [vers]
    comps = proj.comparisons
    if comps.height:
        failed = pl.col("winner").is_null() | (pl.col("parse_status") != "ok")
        # a match counts once (by its first side), and makes both its samples verified
        records.append(comps.join(gens, left_on="a", right_on="gen").select(*KEYS,
                                                                           failed=failed))
        sides += [comps.join(gens, left_on=side, right_on="gen").select(
            *KEYS, pl.col(side).alias("gen"), failed=failed) for side in ("a", "b")]
    counts = pl.concat(records).group_by(KEYS).agg(
        verifications=pl.len(), failed=pl.col("failed").sum())
    if counts.height == 0:
        return []
    samples = pl.concat(sides).group_by([*KEYS, "gen"]).agg(
        parsed=(~pl.col("failed")).any()).group_by(KEYS).agg(
        samples=pl.len(), parsed_samples=pl.col("parsed").sum())
    rows = counts.join(samples, on=KEYS).sort(KEYS)
    return [{**{k: r[k] for k in KEYS}, "verifications": r["verifications"],
             "failed": r["failed"], "unparsed": r["failed"] / r["verifications"],
             "samples": r["samples"], "parsed_samples": r["parsed_samples"],
             "flagged": r["failed"] / r["verifications"] > FLAG_ABOVE}
            for r in rows.iter_rows(named=True)]


def rate_of(rates: Iterable[dict[str, Any]], task: str, generator: str, rnd: int,
            verifier: str, methods: Iterable[str]) -> dict[str, Any] | None:
    """The worst-parsed of ``methods`` in one group (the row of ``parse_rates``), or None if
    none of them has verifications there."""
    want = set(methods)
    rows = [r for r in rates if r["task"] == task and r["generator"] == generator
            and r["round"] == rnd and r["verifier"] == verifier and r["method"] in want]
    return max(rows, key=lambda r: r["unparsed"], default=None)


def warning(r: dict[str, Any]) -> str:
    """The report's one-line warning for a flagged row of ``parse_rates``."""
    pct = 100.0 * r["unparsed"]
    return (f"{r['method']} by verifier {r['verifier']} on {r['task']} (generator "
            f"{r['generator']}, round {r['round']}): {r['failed']:,} of "
            f"{r['verifications']:,} verifications "
            f"({pct:.0f}%) did not parse, {r['parsed_samples']:,} of {r['samples']:,} samples "
            "have a score; its gaps, sweeps and threshold choices rest on those alone")
