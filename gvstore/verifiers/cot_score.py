"""``cot_score``: chain-of-thought verification ending in a score from 1 to 10.

The verifier writes a short justification and ends with ``Score: N`` for N in 1..10 (the
score is N; ``Score: 8.5`` scores 8.5). The last well-formed verdict counts (``parse_score``);
an output without one, or out of range, is recorded with ``score = None`` and its parse
status. Outputs are sampled, so repeats measure the verifier's variance, as for
``cot_binary``. The histogram counts whole numbers (8.5 counts as 8).
"""

from __future__ import annotations

from gvstore.verifiers.base import Method
from gvstore.verifiers.parse import SCORE_MAX, SCORE_MIN, parse_score
from gvstore.verifiers.templates import SUBJECT, SUDOKU_RULES, body, per_family


def _text(family: str) -> str:
    thing, ans = SUBJECT[family]
    rules = " " + SUDOKU_RULES if family == "sudoku" else ""
    return (
        f"Below are a {thing} and a proposed {ans}. Rate how likely the {ans} is to be "
        f"correct on a scale from 1 (surely wrong) to 10 (surely right).{rules} Write a short "
        "justification, then end your reply with one line 'Score: N', where N is a whole "
        "number from 1 to 10.\n\n"
        + body(label_problem=thing.capitalize(), label_solution=ans.capitalize())
    )


METHOD = Method(
    name="cot_score", call="sample", templates=per_family("cot_score", _text),
    parser=parse_score, score_range=(SCORE_MIN, SCORE_MAX),
    bins=tuple(str(k) for k in range(1, 11)),
)
