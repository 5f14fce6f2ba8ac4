"""Graders never raise on any text and return in bounded time; the registry and prompts."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gvstore.errors import GvstoreError
from gvstore.tasks import get_task, list_tasks
from gvstore.tasks.base import Item
from gvstore.tasks.registry import VARIANTS

REFS = {
    "gsm8k": "18", "arith": "-7", "math": r"\frac{1}{2}",
    "nq_open": json.dumps(["the Beatles"]), "sudoku": "_2_43_____4___21|1234341221434321",
}
BOUND_S = 15.0  # the SymPy time limit (5 s) plus a worker restart, with room to spare

pieces = st.sampled_from([
    "The answer is ", "Final Answer: The final answer is ", ". I hope it is correct.",
    "\\boxed{", "}", "{", "$", "\\frac", "\\sqrt", "^", "=", ",", ".", "-", "1", "9", "\n",
    "Answer:", "Question:", "12 34", "_", " ", "\\text{", "\\left(", "\\pi", "x", "\\\\",
    " or ", "\\text{ or }", "$3$", ".5", "(or ",
])
texts = st.one_of(st.text(max_size=300), st.lists(pieces, max_size=60).map("".join))
# every grader: each task's own, then each separately named one (gsm8k:lm-eval, ...)
GRADERS = [(n, None) for n in list_tasks()] + sorted(VARIANTS)


@pytest.mark.parametrize(("name", "variant"), GRADERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_graders_never_raise(name: str, variant: str | None, text: str) -> None:
    start = time.monotonic()
    res = get_task(name, variant=variant).grade(text, REFS[name])
    assert time.monotonic() - start < BOUND_S
    assert 0.0 <= res.strict <= 1.0 and 0.0 <= res.flexible <= 1.0
    assert res.extracted is None or isinstance(res.extracted, str)


ADVERSARIAL = [
    "{" * 100_000,
    "}" * 100_000 + "{" * 100_000,
    "\\boxed{" * 50_000,
    "$" * 100_000,
    "." * 100_000 + "The answer is " + "1" * 100_000,
    "Final Answer: The final answer is " * 5_000,
    "Final Answer: The final answer is $" + "\\frac{" * 300 + "1" + "}{2}" * 300
    + "$. I hope it is correct.",
    "\\boxed{" + "\\frac{" * 2000 + "1" + "}{2}" * 2000 + "}",
    "Final Answer: The final answer is $9^{9^{9^{9}}}$. I hope it is correct.",
    "Answer:\n" + "12 34\n" * 50_000,
    "Question: " * 20_000,
    "\x00\ud7ff\U0010ffff" * 10_000,
    "$1$ or " * 20_000,
    "\\boxed{1} or " * 20_000,
    "The answer is " + "1 or " * 20_000,
    "1 or " * 50_000,
]


@pytest.mark.parametrize(("name", "variant"), GRADERS)
def test_adversarial_inputs(name: str, variant: str | None) -> None:
    for text in ADVERSARIAL:
        start = time.monotonic()
        res = get_task(name, variant=variant).grade(text, REFS[name])
        assert time.monotonic() - start < BOUND_S, (name, text[:40])
        assert res.strict in (0.0, 1.0)


def test_registry() -> None:
    assert list_tasks() == ["arith", "gsm8k", "math", "nq_open", "sudoku"]
    with pytest.raises(GvstoreError, match="known tasks: arith, gsm8k"):
        get_task("nope")
    for name in list_tasks():
        t = get_task(name)
        assert t.name == name and t.version and t.description
    for name in ("arith", "nq_open", "sudoku"):  # no data files needed
        assert get_task(name).template_digest().startswith("sha256:")


def test_prompt_record_is_deterministic() -> None:
    task = get_task("arith")
    item = task.items()[3]
    a, b = task.prompt_record(item), task.prompt_record(item, 4)
    assert a == b
    assert (a.task, a.split, a.item_id, a.kshot, a.reference) == ("arith", "test", item.item_id,
                                                                  4, item.reference)
    assert a.template.startswith("sha256:") and a.text == task.render(item)
    assert task.prompt_record(item, 0).text == f"Q: {item.question}\nA:"
    with pytest.raises(GvstoreError, match="kshot"):
        task.prompt_record(item, 99)
    with pytest.raises(GvstoreError, match="no split"):
        task.items("train")
    assert isinstance(item, Item)
