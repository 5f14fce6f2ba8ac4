"""``tournament``: pairwise verification in single-elimination brackets.

The verifier sees a problem and two solutions, A and B, writes a short justification and ends
with ``Better: A`` or ``Better: B`` (``parse_choice``: the last well-formed choice; an output
that is only the letter counts too). Each match is a ``Comparison`` record; a match whose
verdict did not parse has ``winner`` null and advances side A. Which generation is A is a coin
flip per match, so the share of decided matches won by A measures the verifier's position
bias.

The step that plays the brackets (planning, matches, the run loop, resuming) is
``gvstore.steps.tournament``.
"""

from __future__ import annotations

from gvstore.verifiers.base import Method
from gvstore.verifiers.parse import parse_choice
from gvstore.verifiers.templates import SUBJECT, SUDOKU_RULES, per_family


def _text(family: str) -> str:
    thing, ans = SUBJECT[family]
    rules = " " + SUDOKU_RULES if family == "sudoku" else ""
    a, b = ans.capitalize() + " A", ans.capitalize() + " B"
    return (
        f"Below are a {thing} and two proposed {ans}s, A and B. Decide which {ans} is better: "
        f"the one more likely to be correct.{rules} Write a short justification, then end your "
        "reply with one line, exactly 'Better: A' or 'Better: B'.\n\n"
        f"{thing.capitalize()}:\n{{problem}}\n\n{a}:\n{{solution_a}}\n\n{b}:\n{{solution_b}}"
    )


METHOD = Method(
    name="tournament", call="pairwise", templates=per_family("tournament", _text),
    parser=parse_choice,
)
