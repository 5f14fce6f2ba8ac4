"""The frames analysis starts from, and the per-group arrays the metrics run on.

* ``base_frame``: one row per generation that passes the filters, with its prompt, task,
  generator (``model``), round, sample index and ground-truth ``utility`` (strict or flexible;
  null for a generation nobody graded). Where a generation has grades from several versions of
  one grader, the newest version counts (natural order: ``"2" < "10"``); grades from two
  different graders (of generations that pass the filters) are ambiguous and an error unless
  ``grader`` names one. pass@k reads this frame too.
* ``score_frame``: one row per (generation, verifier) for one method: ``score`` is the mean of
  the non-null scores of its repeated verifications (``m > 1`` calls), null if every repeat
  failed to parse; ``repeats`` counts the calls and ``nulls`` the failed ones.
* ``Dataset.groups``: the data of each (task, generator, round, verifier) as numpy arrays
  sorted by (prompt, sample index): this is what specs and metrics are computed on. A group's
  tournament matches are those whose two generations (``a`` and ``b``; the winner is one of
  them) are both generations of that group: matches are joined to a group by generation,
  never by prompt, so groups that share prompts (two generators, two rounds) never read each
  other's matches. A match whose sides are not both in one group belongs to none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from gvstore.analysis.arrays import canonical_order, lookup, mean_scores
from gvstore.errors import GvstoreError
from gvstore.replay import Projections

UTILITIES = ("strict", "flexible")


@dataclass(frozen=True, kw_only=True)
class Filters:
    """Which records an analysis looks at; an empty tuple means all. The one filter set of
    every analysis (gap, sweep, cross, export, weights, pass@k, corr, variance, rounds)."""

    tasks: tuple[str, ...] = ()
    generators: tuple[str, ...] = ()
    verifiers: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    rounds: tuple[int, ...] = ()
    prompts: tuple[int, ...] = ()
    """Prompt handles (``replay.handle`` of the prompt record ids)."""

    @property
    def restricts_generations(self) -> bool:
        """Whether a task, generator, round or prompt filter is set."""
        return bool(self.tasks or self.generators or self.rounds or self.prompts)

    def generations(self, gens: pl.DataFrame) -> pl.DataFrame:
        """The rows of a ``generations`` frame that pass the task, generator, round and
        prompt filters."""
        if self.tasks:
            gens = gens.filter(pl.col("task").is_in(self.tasks))
        if self.generators:
            gens = gens.filter(pl.col("model").is_in(self.generators))
        if self.rounds:
            gens = gens.filter(pl.col("round").is_in(self.rounds))
        if self.prompts:
            gens = gens.filter(pl.col("prompt").is_in(pl.Series(self.prompts, dtype=pl.UInt64)))
        return gens

    def verifier_rows(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of a ``verifications`` or ``comparisons`` frame that pass the verifier and
        method filters (the generation filters are the caller's join)."""
        if self.verifiers:
            frame = frame.filter(pl.col("verifier").is_in(self.verifiers))
        if self.methods:
            frame = frame.filter(pl.col("method").is_in(self.methods))
        return frame

    def verifications(self, vers: pl.DataFrame, gens: pl.DataFrame) -> pl.DataFrame:
        """The rows of a ``verifications`` frame that pass every filter (via their generation
        in ``gens``, the ``generations`` frame)."""
        vers = self.verifier_rows(vers)
        if self.restricts_generations:
            vers = vers.join(self.generations(gens).select("gen"), on="gen", how="semi")
        return vers


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of version strings: ``"2" < "10"``, ``"1.2" < "1.10"``."""
    return tuple((0, int(p)) if p.isdigit() else (1, p)
                 for p in re.findall(r"\d+|[^\d.]+", version))


def newest_grades(grades: pl.DataFrame, grader: str | None = None) -> pl.DataFrame:
    """One grade per generation: the newest version of its grader (see the module doc)."""
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


def base_frame(
    proj: Projections,
    *,
    utility: str | None = "strict",
    filters: Filters | None = None,
    grader: str | None = None,
) -> pl.DataFrame:
    """One row per filtered generation: ``gen, prompt, task, model, round, sample_index,
    utility`` (Float64, null where ungraded), sorted by task, model, round, then prompt,
    sample index and generation handle.

    ``utility=None`` skips the grades (all null): for work that must not see ground truth.
    """
    return Dataset(proj, utility=utility, filters=filters, grader=grader).base_frame()


def score_frame(
    proj: Projections, method: str, *, filters: Filters | None = None
) -> pl.DataFrame:
    """Per (generation, verifier) of one method: ``gen, verifier, score, repeats, nulls``.

    ``score`` is the mean of the non-null repeat scores (null if all are null). Task, generator
    and round filters are applied by the caller's join with the base frame.
    """
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


@dataclass
class Group:
    """The arrays of one (task, generator, round, verifier), rows sorted by (prompt, sample).

    ``pidx[i]`` is row i's prompt number (0..P-1), ``starts`` the first row of each prompt
    (length P + 1), ``utility`` NaN where ungraded, ``scores[method]`` NaN where the score is
    null or the generation has no verification of that method by this verifier.
    """

    task: str
    generator: str
    round: int
    verifier: str
    gen: np.ndarray
    prompt: np.ndarray
    sample_index: np.ndarray
    utility: np.ndarray
    pidx: np.ndarray
    prompts: np.ndarray
    starts: np.ndarray
    gen_order: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    comparisons: pl.DataFrame | None = None

    @property
    def n_prompts(self) -> int:
        return int(self.prompts.size)

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.task, self.generator, self.round, self.verifier)

    def positions(self, gens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``gens`` (handles) in this group: (index into ``gens``, row here)."""
        return lookup(self.gen, gens, self.gen_order)


def _slice_arrays(
    part: pl.DataFrame, grades: pl.DataFrame | None, utility: str | None
) -> dict[str, np.ndarray]:
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


class Dataset:
    """Lazily built frames of one store view: base frame, scores, comparisons, groups."""

    def __init__(
        self,
        proj: Projections,
        *,
        utility: str | None = "strict",
        filters: Filters | None = None,
        grader: str | None = None,
    ) -> None:
        self.proj = proj
        self.utility = utility
        self.filters = filters or Filters()
        self.grader = grader
        self._slices: list[tuple[tuple[str, str, int], dict[str, np.ndarray]]] | None = None
        self._vers: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._comps: pl.DataFrame | None = None
        self._slice_comps: dict[tuple[str, str, int], pl.DataFrame] | None = None
        self._groups: dict[tuple[str, str, int, str], Group] = {}
        self._found: dict[tuple[str, str, int, str], dict[str, np.ndarray]] = {}

    def slices(self) -> list[tuple[tuple[str, str, int], dict[str, np.ndarray]]]:
        """The base frame's (task, generator, round) parts as arrays, in sorted key order."""
        if self._slices is None:
            if self.utility is not None and self.utility not in UTILITIES:
                raise GvstoreError(
                    f"unknown utility {self.utility!r}; choose from {', '.join(UTILITIES)}")
            gens = self.filters.generations(self.proj.generations).select(
                "gen", "prompt", "task", "model", "round", "sample_index")
            grades = None
            if self.utility is not None:
                grades = self.proj.grades
                if self.filters.restricts_generations:  # only these generations' graders
                    grades = grades.join(gens.select("gen"), on="gen", how="semi")
                grades = newest_grades(grades, self.grader)
            parts = gens.partition_by("task", "model", "round", as_dict=True,
                                      maintain_order=True)
            self._slices = sorted(
                ((str(k[0]), str(k[1]), int(k[2])),
                 _slice_arrays(v, grades, self.utility))
                for k, v in parts.items()
            )
        return self._slices

    def base_frame(self) -> pl.DataFrame:
        """The ``base_frame`` of this dataset (its slices, cached, as one frame)."""
        parts = [
            pl.DataFrame({
                "gen": a["gen"], "prompt": a["prompt"], "task": task, "model": model,
                "round": pl.Series([rnd] * a["gen"].size, dtype=pl.Int32),
                "sample_index": a["sample_index"],
                "utility": pl.Series(a["utility"], dtype=pl.Float64).fill_nan(None),
            })
            for (task, model, rnd), a in self.slices()
        ]
        if not parts:
            return pl.DataFrame(schema={
                "gen": pl.UInt64, "prompt": pl.UInt64, "task": pl.String, "model": pl.String,
                "round": pl.Int32, "sample_index": pl.Int32, "utility": pl.Float64})
        return pl.concat(parts)

    def verifications(self, method: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per verifier: (generation handles, scores with NaN for null) of one method."""
        if method not in self._vers:
            vers = self.filters.verifier_rows(
                self.proj.verifications.filter(pl.col("method") == method)
            ).select("gen", "verifier", "score")
            self._vers[method] = {
                str(k[0]): (v["gen"].to_numpy(),
                            v["score"].fill_null(np.nan).to_numpy().astype(np.float64))
                for k, v in vers.partition_by("verifier", as_dict=True).items()
            }
        return self._vers[method]

    @property
    def comparisons(self) -> pl.DataFrame:
        if self._comps is None:
            self._comps = comparison_frame(self.proj, filters=self.filters)
        return self._comps

    def slice_comparisons(self, key: tuple[str, str, int]) -> pl.DataFrame:
        """The matches of one (task, generator, round) slice: those whose generations ``a``
        and ``b`` both belong to it (empty if none)."""
        if self._slice_comps is None:
            slices = self.slices()
            comps = self.comparisons
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
            self._slice_comps = {
                slices[int(i)][0]: part.drop("_slice")
                for (i,), part in parts.items() if int(i) >= 0
            }
        return self._slice_comps.get(key, self.comparisons.clear())

    def groups(self, methods: Sequence[str]) -> list[Group]:
        """One group per (task, generator, round) and verifier that verified any of its
        generations with any of ``methods``; each group carries those methods' scores."""
        out: list[Group] = []
        for (task, model, rnd), arrays in self.slices():
            found: dict[str, dict[str, np.ndarray]] = {}
            comps: dict[str, pl.DataFrame] = {}
            for m in methods:
                if m == "tournament":
                    c = self.slice_comparisons((task, model, rnd))
                    for (ver,), part in c.partition_by("verifier", as_dict=True).items():
                        comps[str(ver)] = part
                    continue
                cache_key = (task, model, rnd, m)
                if cache_key not in self._found:
                    per: dict[str, np.ndarray] = {}
                    for ver, (gens, score) in self.verifications(m).items():
                        src, rows = lookup(arrays["gen"], gens, arrays["gen_order"])
                        if rows.size:
                            per[ver] = mean_scores(arrays["gen"].size, rows, score[src])
                    self._found[cache_key] = per
                for ver, arr in self._found[cache_key].items():
                    found.setdefault(ver, {})[m] = arr
            for ver in sorted(set(found) | set(comps)):
                key = (task, model, rnd, ver)
                g = self._groups.get(key)
                if g is None:
                    g = self._groups[key] = Group(
                        task, model, rnd, ver, gen=arrays["gen"], prompt=arrays["prompt"],
                        sample_index=arrays["sample_index"], utility=arrays["utility"],
                        pidx=arrays["pidx"], prompts=arrays["prompts"],
                        starts=arrays["starts"], gen_order=arrays["gen_order"])
                for m in methods:
                    if m == "tournament":
                        if g.comparisons is None:
                            g.comparisons = comps.get(ver, self.comparisons.clear())
                    elif m not in g.scores:
                        g.scores[m] = found.get(ver, {}).get(
                            m, np.full(g.gen.size, np.nan))
                out.append(g)
        return out
