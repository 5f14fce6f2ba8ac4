"""The one filter set of every analysis (``frames.Filters``; polars imported on use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


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
        import polars as pl

        if self.tasks:
            gens = gens.filter(pl.col("task").is_in(self.tasks))
        if self.generators:
            gens = gens.filter(pl.col("model").is_in(self.generators))
        if self.rounds:
            gens = gens.filter(pl.col("round").is_in(self.rounds))
        if self.prompts:
            gens = gens.filter(pl.col("prompt").is_in(
                pl.Series(self.prompts, dtype=pl.UInt64).implode()))
        return gens

    def verifier_rows(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of a ``verifications`` or ``comparisons`` frame that pass the verifier and
        method filters (the generation filters are the caller's join)."""
        import polars as pl

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
