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

The arrays are built from the projections once per store view and then kept in the group
cache (``gvstore.analysis.groupcache``): a warm ``Dataset`` maps them from disk and reads no
Parquet and no polars (the frames above are still built from the projections, on demand).
The cold builders live in ``gvstore.analysis.frames_build``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gvstore.analysis.arrays import PromptSort, lookup
from gvstore.analysis.filters import Filters
from gvstore.analysis.frames_build import (
    SliceKey,
    Slices,
    build_slices,
    comparison_frame,
    comps_from_arrays,
    comps_to_arrays,
    empty_comparisons,
    method_scores,
    newest_grades,
    score_frame,
    split_comparisons,
    version_key,
)
from gvstore.analysis.groupcache import (
    SLICE_FIELDS,
    Arrays,
    GroupCache,
    MethodArrays,
    method_part,
    read_entries,
    read_method,
    read_slices,
    use_for_counts,
)
from gvstore.errors import GvstoreError

if TYPE_CHECKING:
    import polars as pl

    from gvstore.replay import Projections

__all__ = ["UTILITIES", "Dataset", "Filters", "Group", "base_frame", "comparison_frame",
           "newest_grades", "score_frame", "version_key"]

UTILITIES = ("strict", "flexible")


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


@dataclass
class Group:
    """The arrays of one (task, generator, round, verifier), rows sorted by (prompt, sample).

    ``pidx[i]`` is row i's prompt number (0..P-1), ``starts`` the first row of each prompt
    (length P + 1), ``utility`` NaN where ungraded, ``scores[method]`` NaN where the score is
    null or the generation has no verification of that method by this verifier.
    ``sorts[method]``: the per-prompt sort of ``scores[method]`` (``arrays.PromptSort``), from
    the group cache or computed on first use.
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
    sorts: dict[str, PromptSort] = field(default_factory=dict, repr=False)

    @property
    def n_prompts(self) -> int:
        return int(self.prompts.size)

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.task, self.generator, self.round, self.verifier)

    def positions(self, gens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``gens`` (handles) in this group: (index into ``gens``, row here)."""
        return lookup(self.gen, gens, self.gen_order)

    def prompt_sort(self, s: np.ndarray) -> PromptSort:
        """The per-prompt sort of ``s`` (``arrays.PromptSort``), kept in ``sorts`` if ``s`` is
        one of the group's own score arrays (the same object)."""
        for m, arr in self.scores.items():
            if arr is s:
                if m not in self.sorts:
                    self.sorts[m] = PromptSort(self.starts, self.pidx, s)
                return self.sorts[m]
        return PromptSort(self.starts, self.pidx, s)


class _MappedGroup(Group):
    """A ``Group`` whose arrays are read from the group cache when first used (a gap never
    reads ``gen``, ``prompt``, ``sample_index`` or ``gen_order``, so they are never mapped or
    checked); otherwise exactly a ``Group``."""

    def __getattr__(self, name: str) -> Any:  # only for attributes not yet set
        lazy = self.__dict__.get("_arrays")
        if lazy is None or name not in SLICE_FIELDS:
            raise AttributeError(name)
        value = self.__dict__[name] = lazy[name]
        return value


def make_group(task: str, model: str, rnd: int, verifier: str, arrays: Arrays) -> Group:
    """A group of one slice's arrays (mapped lazily if they come from the group cache)."""
    if isinstance(arrays, dict):
        return Group(
            task, model, rnd, verifier, gen=arrays["gen"], prompt=arrays["prompt"],
            sample_index=arrays["sample_index"], utility=arrays["utility"],
            pidx=arrays["pidx"], prompts=arrays["prompts"], starts=arrays["starts"],
            gen_order=arrays["gen_order"])
    g = _MappedGroup.__new__(_MappedGroup)
    g.__dict__.update(task=task, generator=model, round=rnd, verifier=verifier, scores={},
                      comparisons=None, sorts={}, _arrays=arrays)
    return g


class Dataset:
    """Lazily built frames of one store view: base frame, scores, comparisons, groups.

    ``cache=False`` never reads or writes the group cache (everything from the projections).
    """

    def __init__(
        self,
        proj: Projections,
        *,
        utility: str | None = "strict",
        filters: Filters | None = None,
        grader: str | None = None,
        cache: bool = True,
    ) -> None:
        self.proj = proj
        self.utility = utility
        self.filters = filters or Filters()
        self.grader = grader
        self.cache = cache
        self._gcache: GroupCache | None = None
        self._gcache_opened = False
        self._slices: Slices | None = None
        self._vers: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._comps: pl.DataFrame | None = None
        self._slice_comps: dict[SliceKey, pl.DataFrame] | None = None
        self._groups: dict[tuple[str, str, int, str], Group] = {}
        self._methods: dict[str, MethodArrays] = {}
        self._tournament: list[dict[str, pl.DataFrame]] | None = None

    def group_cache(self) -> GroupCache | None:
        """The group cache of this view (None: caching off or not usable now)."""
        if not self._gcache_opened:
            self._gcache_opened = True
            if self.cache:
                self._gcache = GroupCache.open(self.proj, utility=self.utility,
                                               grader=self.grader, filters=self.filters)
                use_for_counts(self._gcache)
        return self._gcache

    def slices(self) -> Slices:
        """The base frame's (task, generator, round) parts as arrays, in sorted key order."""
        if self._slices is None:
            if self.utility is not None and self.utility not in UTILITIES:
                raise GvstoreError(
                    f"unknown utility {self.utility!r}; choose from {', '.join(UTILITIES)}")
            gc = self.group_cache()
            got = read_slices(gc) if gc is not None else None
            if got is not None:
                self._slices, lazy = got
                lazy.rebuild = lambda: self._build_slices(gc)[1]
            else:
                self._slices = self._build_slices(gc)[0]
        return self._slices

    def _build_slices(self, gc: GroupCache | None) -> tuple[Slices, dict[str, np.ndarray]]:
        got = build_slices(self.proj, self.utility, self.filters, self.grader)
        flat = {f"{i}.{f}": a[f] for i, (_, a) in enumerate(got) for f in SLICE_FIELDS}
        if gc is not None:
            gc.write("", {"slices": [list(k) for k, _ in got]}, flat)
        return got, flat

    def base_frame(self) -> pl.DataFrame:
        """The ``base_frame`` of this dataset (its slices, cached, as one frame)."""
        import polars as pl

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
            import polars as pl

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

    def slice_comparisons(self, key: SliceKey) -> pl.DataFrame:
        """The matches of one (task, generator, round) slice: those whose generations ``a``
        and ``b`` both belong to it (empty if none)."""
        if self._slice_comps is None:
            self._slice_comps = split_comparisons(self.comparisons, self.slices())
        return self._slice_comps.get(key, self.comparisons.clear())

    def method_arrays(self, method: str) -> MethodArrays:
        """Per slice: verifier -> (mean scores, their saved sorts) of one method, for the
        verifiers that verified any of the slice's generations (group cache, else built)."""
        if method not in self._methods:
            gc = self.group_cache()
            n = len(self.slices())
            got = read_method(gc, method, n) if gc is not None else None
            if got is not None:
                self._methods[method], lazy = got
                lazy.rebuild = lambda: self._build_method(method, gc)[1]
            else:
                self._methods[method] = self._build_method(method, gc)[0]
        return self._methods[method]

    def _build_method(
        self, method: str, gc: GroupCache | None
    ) -> tuple[MethodArrays, dict[str, np.ndarray]]:
        slices = self.slices()
        per = method_scores(slices, self.verifications(method))
        got: MethodArrays = [{v: (s, None) for v, s in sorted(d.items())} for d in per]
        flat: dict[str, np.ndarray] = {}
        if gc is not None:  # the per-prompt sorts are saved with the scores
            got = [{v: (s, PromptSort(a["starts"], a["pidx"], s).arrays())
                    for v, (s, _) in d.items()} for d, (_, a) in zip(got, slices, strict=True)]
            entries = [[i, v] for i, d in enumerate(got) for v in d]
            for k, (s, sort) in enumerate(pair for d in got for pair in d.values()):
                flat[f"{k}.score"] = s
                flat.update({f"{k}.{name}": arr for name, arr in (sort or {}).items()})
            gc.write(method_part(method), {"method": method, "entries": entries}, flat)
        return got, flat

    def tournament_frames(self) -> list[dict[str, pl.DataFrame]]:
        """Per slice: verifier -> its tournament matches (group cache, else built)."""
        if self._tournament is None:
            gc = self.group_cache()
            n = len(self.slices())
            got = read_entries(gc, "t", n) if gc is not None else None
            if got is not None:
                per: list[dict[str, pl.DataFrame]] = [{} for _ in range(n)]
                got[1].rebuild = lambda: self._build_tournament(gc)[1]  # if a file is damaged
                for i, ver, cols in got[0]:
                    per[i][ver] = comps_from_arrays(cols, ver)
                self._tournament = per
            else:
                self._tournament = self._build_tournament(gc)[0]
        return self._tournament

    def _build_tournament(
        self, gc: GroupCache | None
    ) -> tuple[list[dict[str, pl.DataFrame]], dict[str, np.ndarray]]:
        slices = self.slices()
        per: list[dict[str, pl.DataFrame]] = [{} for _ in slices]
        for i, (key, _) in enumerate(slices):
            c = self.slice_comparisons(key)
            for (ver,), part in sorted(c.partition_by("verifier", as_dict=True).items()):
                per[i][str(ver)] = part
        frames = [f for d in per for f in d.values()]
        flat = {f"{k}.{c}": a for k, f in enumerate(frames)
                for c, a in comps_to_arrays(f).items()}
        if gc is not None:
            gc.write("t", {"entries": [[i, v] for i, d in enumerate(per) for v in d]}, flat)
        return per, flat

    def groups(self, methods: Sequence[str]) -> list[Group]:
        """One group per (task, generator, round) and verifier that verified any of its
        generations with any of ``methods``; each group carries those methods' scores."""
        out: list[Group] = []
        for i, ((task, model, rnd), arrays) in enumerate(self.slices()):
            found: dict[str, dict[str, tuple[np.ndarray, Arrays | None]]] = {}
            comps: dict[str, pl.DataFrame] = {}
            for m in methods:
                if m == "tournament":
                    comps = self.tournament_frames()[i]
                    continue
                for ver, pair in self.method_arrays(m)[i].items():
                    found.setdefault(ver, {})[m] = pair
            for ver in sorted(set(found) | set(comps)):
                key = (task, model, rnd, ver)
                g = self._groups.get(key)
                if g is None:
                    g = self._groups[key] = make_group(task, model, rnd, ver, arrays)
                for m in methods:
                    if m == "tournament":
                        if g.comparisons is None:
                            g.comparisons = comps.get(ver, empty_comparisons())
                    elif m not in g.scores:
                        s, sort = found.get(ver, {}).get(m, (None, None))
                        g.scores[m] = np.full(g.pidx.size, np.nan) if s is None else s
                        if sort is not None:
                            g.sorts[m] = PromptSort(g.starts, g.pidx, g.scores[m], sort)
                out.append(g)
        return out

