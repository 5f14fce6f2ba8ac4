"""Building the analysis arrays from the projections (the cold path of ``frames.Dataset``).

Polars is imported inside each function: ``frames`` imports this module, and a warm call
(served by ``gvstore.analysis.groupcache``) must not load polars. The rules are those of the
``frames`` module doc (newest grader version, mean of repeats, matches joined by generation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from gvstore.analysis.arrays import canonical_order, lookup, mean_scores
from gvstore.analysis.groupcache import SliceKey, Slices
from gvstore.errors import GvstoreError

if TYPE_CHECKING:
    import polars as pl

    from gvstore.analysis.filters import Filters
    from gvstore.replay import Projections


COMP_COLUMNS = ("prompt", "a", "b", "winner", "bracket", "bracket_round", "loser")
"""The numeric columns of a comparison frame (and ``verifier``, a string)."""


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of version strings: ``"2" < "10"``, ``"1.2" < "1.10"``."""
    return tuple((0, int(p)) if p.isdigit() else (1, p)
                 for p in re.findall(r"\d+|[^\d.]+", version))


def newest_grades(grades: pl.DataFrame, grader: str | None = None) -> pl.DataFrame:
    """One grade per generation: the newest version of its grader (see ``frames``)."""
    import polars as pl

    if grader is not None:
        grades = grades.filter(pl.col("grader") == grader)
    if grades.height == 0:
        return grades
    versions = grades["grader_version"].unique().to_list()
    if len(versions) > 1:
        rank = {v: i for i, v in enumerate(sorted(versions, key=version_key))}
        grades = (
            grades.with_columns(
                _rank=pl.col("grader_version").replace_strict(rank, return_dtype=pl.Int64)
            )
            .sort("gen", "grader", "_rank")
            .unique(subset=["gen", "grader"], keep="last")
            .drop("_rank")
        )
    graders = grades["grader"].unique()
    if graders.len() > 1 and grades["gen"].n_unique() != grades.height:
        raise GvstoreError(
            f"generations are graded by several graders ({', '.join(sorted(graders))}); "
            "name one with --grader"
        )
    return grades


def score_frame(
    proj: Projections, method: str, *, filters: Filters | None = None
) -> pl.DataFrame:
    """Per (generation, verifier) of one method: ``gen, verifier, score, repeats, nulls``.

    ``score`` is the mean of the non-null repeat scores (null if all are null). Task, generator
    and round filters are applied by the caller's join with the base frame.
    """
    import polars as pl

    from gvstore.analysis.filters import Filters

    filters = filters or Filters()
    vers = filters.verifier_rows(proj.verifications.filter(pl.col("method") == method))
    return vers.group_by("gen", "verifier").agg(
        score=pl.col("score").mean(),
        repeats=pl.len().cast(pl.Int64),
        nulls=pl.col("score").null_count().cast(pl.Int64),
    )


def comparison_frame(proj: Projections, *, filters: Filters | None = None) -> pl.DataFrame:
    """The tournament matches (``method == "tournament"``) of the first tournament
    (``sample_index == 0``), with the loser of each: where ``winner`` is null (the verdict did
    not parse) side A advances, so B is the loser."""
    import polars as pl

    from gvstore.analysis.filters import Filters

    filters = filters or Filters()
    comps = filters.verifier_rows(proj.comparisons).filter(
        (pl.col("method") == "tournament") & (pl.col("sample_index") == 0)
    )
    return comps.select(
        "prompt", "a", "b", "winner", "verifier", "bracket", "bracket_round",
        loser=pl.when(pl.col("winner") == pl.col("a")).then(pl.col("b"))
        .when(pl.col("winner") == pl.col("b")).then(pl.col("a"))
        .otherwise(pl.col("b")),
    )


def slice_arrays(
    part: pl.DataFrame, grades: pl.DataFrame | None, utility: str | None
) -> dict[str, np.ndarray]:
    """The arrays of one (task, generator, round) part of the generations (``Group``)."""
    order = canonical_order(part["prompt"].to_numpy(), part["sample_index"].to_numpy(),
                            part["gen"].to_numpy())
    gen = part["gen"].to_numpy()[order]
    prompt = part["prompt"].to_numpy()[order]
    u = np.full(gen.size, np.nan)
    gen_order = np.argsort(gen)
    if grades is not None and utility is not None and grades.height:
        src, rows = lookup(gen, grades["gen"].to_numpy(), gen_order)
        u[rows] = grades[utility].to_numpy()[src]
    new = np.ones(prompt.size, dtype=bool)
    new[1:] = prompt[1:] != prompt[:-1]
    return {
        "gen": gen, "prompt": prompt,
        "sample_index": part["sample_index"].to_numpy()[order],
        "utility": u, "pidx": (np.cumsum(new) - 1).astype(np.int64),
        "prompts": prompt[new], "starts": np.append(np.flatnonzero(new), prompt.size),
        "gen_order": gen_order,
    }


def build_slices(
    proj: Projections, utility: str | None, filters: Filters, grader: str | None
) -> Slices:
    """The base frame's (task, generator, round) parts as arrays, in sorted key order."""
    gens = filters.generations(proj.generations).select(
        "gen", "prompt", "task", "model", "round", "sample_index")
    grades = None
    if utility is not None:
        grades = proj.grades
        if filters.restricts_generations:  # only these generations' graders
            grades = grades.join(gens.select("gen"), on="gen", how="semi")
        grades = newest_grades(grades, grader)
    parts = gens.partition_by("task", "model", "round", as_dict=True, maintain_order=True)
    return sorted(
        ((str(k[0]), str(k[1]), int(k[2])), slice_arrays(v, grades, utility))
        for k, v in parts.items()
    )


def method_scores(
    slices: Slices, verifications: dict[str, tuple[np.ndarray, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """Per slice: verifier -> mean score per row (NaN: null or unverified), for the verifiers
    that verified any of the slice's generations."""
    out: list[dict[str, np.ndarray]] = []
    for _, arrays in slices:
        per: dict[str, np.ndarray] = {}
        for ver, (gens, score) in verifications.items():
            src, rows = lookup(arrays["gen"], gens, arrays["gen_order"])
            if rows.size:
                per[ver] = mean_scores(arrays["gen"].size, rows, score[src])
        out.append(per)
    return out


def split_comparisons(comps: pl.DataFrame, slices: Slices) -> dict[SliceKey, pl.DataFrame]:
    """The matches of each slice: those whose generations ``a`` and ``b`` both belong to it."""
    import polars as pl

    owner = np.full(comps.height, -1, dtype=np.int64)
    if slices and comps.height:
        gens = np.concatenate([a["gen"] for _, a in slices])
        which = np.repeat(np.arange(len(slices)), [a["gen"].size for _, a in slices])
        order = np.argsort(gens, kind="stable")
        side = []
        for col in ("a", "b"):
            s = np.full(comps.height, -1, dtype=np.int64)
            src, rows = lookup(gens, comps[col].to_numpy(), order)
            s[src] = which[rows]
            side.append(s)
        owner = np.where(side[0] == side[1], side[0], -1)
    parts = comps.with_columns(_slice=pl.Series(owner)).partition_by(
        "_slice", as_dict=True, maintain_order=True)
    return {slices[int(i)][0]: part.drop("_slice")
            for (i,), part in parts.items() if int(i) >= 0}


def comps_to_arrays(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """One verifier's comparison frame as arrays (``<col>`` values, ``<col>.null`` masks)."""
    out: dict[str, np.ndarray] = {}
    for col in COMP_COLUMNS:
        s = frame[col]
        nulls = s.is_null().to_numpy()
        out[col] = s.fill_null(0).to_numpy()
        if nulls.any():
            out[col + ".null"] = nulls
    return out


def comps_from_arrays(arrays: Mapping[str, np.ndarray], verifier: str) -> pl.DataFrame:
    """The comparison frame ``comps_to_arrays`` saved (same columns, types and rows)."""
    import polars as pl

    cols: dict[str, pl.Series] = {}
    for col in COMP_COLUMNS:
        dtype = pl.Int32 if col.startswith("bracket") else pl.UInt64
        s = pl.Series(col, np.asarray(arrays[col]), dtype=dtype)
        if col + ".null" in arrays:
            s = pl.select(pl.when(pl.Series(np.asarray(arrays[col + ".null"])))
                          .then(None).otherwise(s).alias(col)).to_series()
        cols[col] = s
    n = len(cols["prompt"])
    verifier_col = pl.Series("verifier", [verifier] * n, dtype=pl.String)
    return pl.DataFrame([cols["prompt"], cols["a"], cols["b"], cols["winner"], verifier_col,
                         cols["bracket"], cols["bracket_round"], cols["loser"]])


def empty_comparisons() -> pl.DataFrame:
    """A comparison frame with no rows."""
    return comps_from_arrays({c: np.zeros(0, np.int32 if c.startswith("bracket") else np.uint64)
                              for c in COMP_COLUMNS}, "")
