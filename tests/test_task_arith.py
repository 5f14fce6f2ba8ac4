"""arith: generated problems of graded difficulty, graded like GSM8K."""

from __future__ import annotations

import ast
import operator
from collections import Counter

from gvstore.tasks import get_task
from gvstore.tasks.arith import evaluate

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _independent(expr: str) -> int:
    """Evaluate ``a op b op c`` through Python's own parser (test-only, trusted input)."""
    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        assert isinstance(node, ast.Constant)
        return int(node.value)
    return ev(ast.parse(expr, mode="eval").body)


def test_items_levels_and_answers() -> None:
    items = get_task("arith").items()
    assert len(items) == 500
    assert Counter(it.meta["level"] for it in items) == {lv: 100 for lv in range(1, 6)}
    assert len({it.item_id for it in items}) == 500
    for it in items:
        expr = it.question.removeprefix("What is ").removesuffix("?")
        assert str(_independent(expr)) == it.reference, it.question
    assert items == get_task("arith").items()  # seeded: the same every time


def test_difficulty_grows() -> None:
    items = get_task("arith").items()
    mean_len = {lv: sum(len(it.reference) for it in items if it.meta["level"] == lv) / 100
                for lv in range(1, 6)}
    assert mean_len[1] < mean_len[3] < mean_len[5]


def test_evaluate_precedence() -> None:
    assert evaluate([2, 3, 4], ["+", "*"])[0] == 14
    assert evaluate([20, 3, 4], ["-", "-"])[0] == 13


def test_grading_and_prompt() -> None:
    task = get_task("arith")
    it = task.items()[0]
    ok = task.grade(f"Work. The answer is {it.reference}.", it.reference)
    assert (ok.strict, ok.flexible) == (1.0, 1.0)
    wrong = task.grade("The answer is 999999.", it.reference)
    assert (wrong.strict, wrong.flexible) == (0.0, 0.0)
    text = task.render(it)
    assert text.endswith(f"Q: {it.question}\nA:") and text.count("The answer is") == 4
    for ex in task.exemplars():
        expr = ex.question.removeprefix("What is ").removesuffix("?")
        assert ex.answer.endswith(f"The answer is {_independent(expr)}.")
