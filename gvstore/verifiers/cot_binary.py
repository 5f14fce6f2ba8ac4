"""``cot_binary``: chain-of-thought verification ending in a correct/incorrect verdict.

The verifier writes a short justification and ends with ``Correctness: correct`` (score 1.0)
or ``Correctness: incorrect`` (0.0). The last well-formed verdict counts (``parse_binary``);
an output without one is recorded with ``score = None`` and its parse status, never dropped
and never guessed. Outputs are sampled, so repeated verifications of one generation
(``sample_index`` 0..m-1, each with its own seed) measure the verifier's own variance (paper,
appendix D.4).
"""

from __future__ import annotations

from gvstore.verifiers.base import Method
from gvstore.verifiers.parse import parse_binary
from gvstore.verifiers.templates import SUBJECT, SUDOKU_RULES, body, per_family

_CHECK = {
    "math": "Check each step of the reasoning and the final answer.",
    "arith": "Work the calculation out yourself and compare it with the final answer.",
    "qa": "Recall what you know about the question and compare it with the answer.",
    "sudoku": "Check every row, column and box, and that the givens are kept.",
    "generic": "Check the reasoning and the final answer.",
}


def _text(family: str) -> str:
    thing, ans = SUBJECT[family]
    rules = " " + SUDOKU_RULES if family == "sudoku" else ""
    return (
        f"Below are a {thing} and a proposed {ans}. Decide whether the {ans} is correct."
        f"{rules} {_CHECK[family]} Write a short justification, then end your reply with one "
        "line, exactly 'Correctness: correct' or 'Correctness: incorrect'.\n\n"
        + body(label_problem=thing.capitalize(), label_solution=ans.capitalize())
    )


METHOD = Method(
    name="cot_binary", call="sample", templates=per_family("cot_binary", _text),
    parser=parse_binary, score_range=(0.0, 1.0), bins=("0", "1"),
)
