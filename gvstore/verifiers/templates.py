"""Verifier prompt templates: what every method's prompt shares.

A template is a format string per (method, task family); each method module builds its own
(``per_family``) from the wording here. Records carry ``Template.digest``
(``gvstore.digest.digest`` of the template text) in their ``template`` field, which is part of
their key: editing a template gives new keys, so the next run verifies again instead of
mixing old and new verdicts under one key.

Families: ``math`` (GSM8K, MATH), ``arith`` (the synthetic arithmetic task), ``qa``
(NQ-open), ``sudoku`` (a validator prompt that states the rules) and ``generic`` (any other
task). The wording restates the prompts of Song et al. (ICLR 2025, appendix G) in our own
words; each method module's docstring says what its prompt asks.

Placeholders: ``{problem}`` and ``{solution}``; a pairwise method has ``{solution_a}`` and
``{solution_b}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from gvstore.digest import digest

FAMILIES = ("math", "arith", "qa", "sudoku", "generic")
TASK_FAMILY = {"gsm8k": "math", "math": "math", "arith": "arith", "nq_open": "qa",
               "sudoku": "sudoku"}


@dataclass(frozen=True)
class Template:
    """One verifier prompt: ``text`` is a format string (see the module docstring)."""

    method: str
    family: str
    text: str

    @cached_property
    def digest(self) -> str:
        """What records carry in their ``template`` field."""
        return digest(self.text)

    def render(self, **fields: str) -> str:
        """The prompt text: placeholders filled (other braces in inputs are left alone)."""
        out = self.text
        for name, value in fields.items():
            out = out.replace("{" + name + "}", value)
        return out


# ---- what each family calls its problem and its answers ---------------------------------

SUBJECT = {
    "math": ("math problem", "solution"),
    "arith": ("arithmetic problem", "solution"),
    "qa": ("question", "answer"),
    "sudoku": ("Sudoku puzzle", "solution"),
    "generic": ("problem", "solution"),
}

SUDOKU_RULES = (
    "A 4x4 Sudoku is solved when every row, every column and every 2x2 box holds the digits "
    "1, 2, 3 and 4 exactly once, and every digit given in the puzzle is kept in its place. "
    "Rows are written as two pairs of cells, one pair per 2x2 box; _ marks a blank."
)


def body(*, label_problem: str, label_solution: str) -> str:
    """The problem and the solution, each under its label."""
    return f"{label_problem}:\n{{problem}}\n\n{label_solution}:\n{{solution}}"


def per_family(method: str, build: Callable[[str], str],
               families: Iterable[str] = FAMILIES) -> dict[str, Template]:
    """A method's templates: ``build(family)`` for each family (``generic`` must be one)."""
    return {f: Template(method, f, build(f)) for f in families}


def family_of(task: str) -> str:
    """The template family of a task (``generic`` for a task without its own wording)."""
    return TASK_FAMILY.get(task, "generic")


def get_template(method: str, task: str, kind: str = "instruct") -> Template:
    """The template ``method`` uses on ``task`` for a verifier of model ``kind``."""
    from gvstore.verifiers.registry import get_method

    return get_method(method).template(family_of(task), kind)
