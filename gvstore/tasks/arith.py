"""Arithmetic of graded difficulty, generated in code: a task a 135M model can partly solve.

Levels (100 items each by default, seeded):

1. one-digit addition (``3 + 4``);
2. addition and subtraction up to 20 (``17 - 9``);
3. two-digit addition and subtraction (``58 + 37``, ``41 - 76``);
4. multiplication, up to 12 by 9 (``12 * 7``);
5. two steps with + - * and the usual precedence (``23 + 4 * 6``).

Answers are computed here from the generated operands, never by evaluating text. The prompt
asks for a short working ending "The answer is N."; grading is GSM8K's (``numeric``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from gvstore.tasks.base import Exemplar, GradeResult, Item, Task
from gvstore.tasks.gsm8k import grade_number

LEVELS = (1, 2, 3, 4, 5)


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def evaluate(nums: Sequence[int], ops: Sequence[str]) -> tuple[int, str]:
    """The value of ``nums[0] ops[0] nums[1] ...`` (``*`` first) and its worked steps."""
    n, o = list(nums), list(ops)
    steps = []
    while "*" in o:
        i = o.index("*")
        n[i : i + 2] = [_apply(n[i], "*", n[i + 1])]
        del o[i]
        if o:
            steps.append(_show(n, o))
    while o:
        n[0:2] = [_apply(n[0], o[0], n[1])]
        del o[0]
        if o:
            steps.append(_show(n, o))
    return n[0], " = ".join(steps)


def _show(nums: Sequence[int], ops: Sequence[str]) -> str:
    parts = [str(nums[0])]
    for op, b in zip(ops, nums[1:], strict=True):
        parts += [op, str(b) if b >= 0 else f"({b})"]
    return " ".join(parts)


def make_problem(level: int, rng: random.Random) -> tuple[list[int], list[str]]:
    r = rng.randint
    if level == 1:
        return [r(0, 9), r(0, 9)], ["+"]
    if level == 2:
        return [r(1, 20), r(1, 20)], [rng.choice("+-")]
    if level == 3:
        return [r(10, 99), r(10, 99)], [rng.choice("+-")]
    if level == 4:
        return [r(2, 12), r(2, 9)], ["*"]
    if level == 5:
        ops = [rng.choice("+-*"), rng.choice("+-*")]
        nums = [r(2, 9) if "*" in ops[max(0, i - 1) : i + 1] else r(10, 99) for i in range(3)]
        return nums, ops
    raise ValueError(f"no arith level {level}")


def worked_answer(nums: Sequence[int], ops: Sequence[str]) -> str:
    value, steps = evaluate(nums, ops)
    chain = " = ".join(x for x in (_show(nums, ops), steps, str(value)) if x)
    return f"{chain}. The answer is {value}."


@cache
def _items(seed: int, per_level: int) -> tuple[Item, ...]:
    out = []
    for level in LEVELS:
        rng = random.Random(f"arith:{seed}:{level}")
        for i in range(per_level):
            nums, ops = make_problem(level, rng)
            value, _ = evaluate(nums, ops)
            out.append(Item(f"L{level}-{i:03d}", f"What is {_show(nums, ops)}?", str(value),
                            "test", {"level": level}))
    return tuple(out)


class Arith(Task):
    name = "arith"
    version = "2"  # 2: GSM8K's grader: a hedge ("3 or 4") is wrong; ".5" is 0.5
    description = "integer arithmetic in 5 levels (generated), 'The answer is N.'"
    default_kshot = 4
    stratum_key = "level"  # select: stratified draws evenly across the 5 levels
    seed = 0
    per_level = 100

    def items(self, split: str = "test", path: Path | str | None = None) -> list[Item]:
        self.check_split(split)
        return list(_items(self.seed, self.per_level))

    def exemplars(self) -> Sequence[Exemplar]:
        rng = random.Random(f"arith-exemplars:{self.seed}")
        out = []
        for level in (1, 3, 4, 5, 2):
            nums, ops = make_problem(level, rng)
            out.append(Exemplar(f"What is {_show(nums, ops)}?", worked_answer(nums, ops)))
        return out

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_number(text, reference)
