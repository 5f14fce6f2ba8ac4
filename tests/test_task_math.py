"""MATH: normalisation, answer extraction, equivalence, and every real reference."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gvstore.tasks import get_task
from gvstore.tasks.math_equiv import is_equiv
from gvstore.tasks.math_task import (
    extract_final_answer,
    grade_math,
    last_boxed,
    last_math,
    normalize_final_answer,
)

pytestmark = pytest.mark.shared_data("math/test.jsonl")  # for the shared_data fixture


def final(x: str) -> str:
    return f"Some work.\nFinal Answer: The final answer is ${x}$. I hope it is correct."


# model text, reference, strict, flexible
CASES = [
    (final(r"\frac12"), r"\dfrac{1}{2}", 1, 1),
    (final("0.5"), r"\frac{1}{2}", 1, 1),  # symbolic
    (final(r"\frac{1}{3}"), "0.5", 0, 0),
    (final(r"5\text{ cm}"), "5", 1, 1),  # units
    (final(r"90^\circ"), "90", 1, 1),
    (final("(C)"), r"\text{(C)}", 1, 1),  # \text{} unwrapped
    (final("x = 5"), "5", 1, 1),
    (final("1,000"), "1000", 1, 1),
    (final("[2, 5)"), "[2,5)", 1, 1),  # intervals: same brackets, elementwise
    (final("(2,5)"), "[2,5)", 0, 0),
    (final(r"(3, \frac{\pi}{2})"), r"\left( 3, \frac{\pi}{2} \right)", 1, 1),
    (final(r"\frac{\pi}{2}"), r"\pi/2", 1, 1),
    (final(r"2\sqrt{2}"), r"\sqrt{8}", 1, 1),
    (final(r"\sqrt2"), r"\sqrt{2}", 1, 1),
    (final(r"10\%"), "10", 1, 1),
    (final(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"), r"\begin{pmatrix}1\\2\end{pmatrix}", 1, 1),
    (final(r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}"), r"\begin{pmatrix}1\\2\end{pmatrix}", 0, 0),
    (final(r"\begin{pmatrix} 1 & \end{pmatrix}"), r"\begin{pmatrix}1&2\end{pmatrix}", 0, 0),
    (final(r"\begin{bmatrix}1 & 2"), r"\begin{pmatrix}1&2\end{pmatrix}", 0, 0),
    (r"So the answer is $\boxed{24}$.", "24", 0, 1),  # no final-answer line: flexible only
    ("Final Answer: The final answer is $16$.", "16", 0, 1),  # lm-eval: [invalidanswer]
    (r"We get $x=3$ and then $\boxed{\frac{2}{3}}$ hmm $7$", r"\frac23", 0, 1),  # boxed first
    ("We get $x = 7$ at the end", "7", 0, 1),  # last math expression
    ("no answer at all", "7", 0, 0),
    (final(r"\frac{\sqrt{3}}{2}"), r"\frac{\sqrt3}2", 1, 1),
]


@pytest.mark.parametrize(("text", "ref", "strict", "flexible"), CASES)
def test_grader_table(text: str, ref: str, strict: int, flexible: int) -> None:
    got = get_task("math").grade(text, ref)
    assert (got.strict, got.flexible) == (strict, flexible), got


@pytest.mark.parametrize(("raw", "norm"), [
    # the documented side effects of Minerva's normalisation (NORMALIZATION.md)
    (r"\left( 3, \frac{\pi}{2} \right)", r"\le(3,\frac{\pi}{2}\right)"),
    (r"\infty", r"\iny"),
    ("4,6,14,15", "461415"),
    (r"10,\!080", "10080"),
    (r"90^\circ", "90"),
    (r"5\text{ cm}", "5"),
    ("x = 5", "5"),
    (r"\text{(C)}", "(C)"),
    (r"\dfrac{9}{7}", r"\dfrac{9}{7}"),
    (r"\frac12", r"\frac{1}{2}"),
    (r"\sqrt2", r"\sqrt{2}"),
])
def test_normalize_final_answer(raw: str, norm: str) -> None:
    assert normalize_final_answer(raw) == norm


def test_extraction() -> None:
    assert last_boxed(r"a \boxed{1} b \boxed{\frac{1}{2}} c") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\fbox{3}") == "3"
    assert last_boxed(r"\boxed{unclosed") is None
    assert last_boxed("none") is None
    assert extract_final_answer("Final Answer: The final answer is $16$. I hope it is correct."
                                ) == "$16$"
    # lm-eval appends "I hope it is correct." with no space: a trailing ". " still matches
    assert extract_final_answer("Final Answer: The final answer is 16. ") == "16"
    assert extract_final_answer("Final Answer: The final answer is 16.") is None
    assert extract_final_answer("Final Answer: The final answer is\n3. I hope it is correct."
                                ) is None  # the wildcards do not cross a newline
    assert last_math("a $1$ b $$2$$") == "2"
    assert last_math("only $ one") is None


def test_symbolic_timeout_is_a_non_match() -> None:
    start = time.monotonic()
    assert not is_equiv("9^{9^{9^{9}}}", "1", timeout=1.0)
    assert time.monotonic() - start < 10
    assert is_equiv(r"\frac{1}{2}", "0.5", timeout=5.0)  # the worker restarts after a kill


def _self_check(items: list, task: object) -> list[str]:
    bad = []
    for it in items:
        res = grade_math(final(it.reference), it.reference)
        if res.strict != 1 or res.flexible != 1:
            bad.append(it.item_id)
    return bad


def test_every_reference_grades_correct(shared_data: Path) -> None:
    """Full files (about 1 s, so in the default run): >= 99.5% must come back correct."""
    task = get_task("math")
    items = task.items("test")
    assert len(items) == 5000 and all(it.reference for it in items)
    for split in ("test", "math500"):
        items = task.items(split)
        bad = _self_check(items, task)
        assert len(bad) / len(items) <= 0.005, bad


def test_math500_and_prompt(shared_data: Path) -> None:
    task = get_task("math")
    items = task.items("math500")
    assert len(items) == 500 and items[0].item_id.startswith("test/")
    text = task.render(items[0])
    assert text.startswith("Problem:\nFind the domain of the expression")
    assert text.endswith(f"Problem:\n{items[0].question}\n\nSolution:")
    assert text.count("I hope it is correct.") == 4
