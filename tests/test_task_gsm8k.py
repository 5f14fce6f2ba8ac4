"""GSM8K: the strict and flexible graders on tricky cases, and every real reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from gvstore.tasks import get_task
from gvstore.tasks.gsm8k import reference_of
from gvstore.tasks.numeric import extract_flexible, extract_strict, normalize_number

pytestmark = pytest.mark.shared_data("gsm8k/test.jsonl")  # for the shared_data fixture


# text, reference, strict, flexible, extracted
CASES = [
    ("So 3 + 4 = 7. The answer is 7.", "7", 1, 1, "7"),
    ("The answer is 1,234.", "1234", 1, 1, "1,234"),
    ("She owes 5. The answer is -5.", "-5", 1, 1, "-5"),
    ("The answer is $18.", "18", 1, 1, "18"),  # lm-eval's strict regex rejects the $
    ("The answer is 18", "18", 1, 1, "18"),  # lm-eval's strict gives "1" here
    ("The answer is 18.00.", "18", 1, 1, "18.00"),
    ("She pays $18.00 in total.", "18", 0, 1, "$18.00"),  # required phrase missing
    ("the answer is 18.", "18", 0, 1, "18"),  # the phrase is case-sensitive
    ("The answer is 18.\nCheck: 18 + 2 = 20", "18", 1, 0, "18"),  # flexible: last number
    ("The answer is 5. No wait, the answer is 6.", "6", 0, 1, "5"),  # strict: first match
    ("The answer is 17.", "18", 0, 0, "17"),
    ("I do not know...", "18", 0, 0, None),
    ("Total: $1,000,000.50", "1000000.5", 0, 1, "$1,000,000.50"),
    ("It is 3.5, so The answer is 3.5.", "3.5", 1, 1, "3.5"),
    ("The answer is 12 apples.", "12", 1, 1, "12"),
    ("", "0", 0, 0, None),
]


@pytest.mark.parametrize(("text", "ref", "strict", "flexible", "extracted"), CASES)
def test_grader_table(text: str, ref: str, strict: int, flexible: int,
                      extracted: str | None) -> None:
    got = get_task("gsm8k").grade(text, ref)
    assert (got.strict, got.flexible, got.extracted) == (strict, flexible, extracted)


@pytest.mark.parametrize(("raw", "norm"), [
    ("1,234", "1234"), ("$5", "5"), ("18.", "18"), ("18.0", "18"), ("18.50", "18.5"),
    ("-0", "0"), ("-3.", "-3"), ("007", "7"), ("abc", "abc"), ("1" * 100, "1" * 100),
])
def test_normalize_number(raw: str, norm: str) -> None:
    assert normalize_number(raw) == norm


def test_extractors_directly() -> None:
    assert extract_strict("x The answer is 42. y") == "42"
    assert extract_strict("no phrase 42") is None
    assert extract_flexible("1 then 2 then ...") == "2"
    assert extract_flexible("- - -") is None


def test_reference_of() -> None:
    assert reference_of("work <<1+1=2>>2\n#### 1,000") == "1,000"


def test_every_reference_grades_correct(shared_data: Path) -> None:
    task = get_task("gsm8k")
    items = task.items("test")
    assert len(items) == 1319
    results = [(it.item_id, task.grade(f"Reasoning. The answer is {it.reference}.", it.reference))
               for it in items]
    assert [i for i, r in results if r.strict != 1] == []
    assert [i for i, r in results if r.flexible != 1] == []


def test_prompt_is_lm_eval_cot_format(shared_data: Path) -> None:
    task = get_task("gsm8k")
    item = task.items("test")[0]
    text = task.render(item)
    assert text.startswith("Q: There are 15 trees in the grove.")
    assert text.endswith(f"Q: {item.question}\nA:")
    assert text.count("\nA: ") == 4 and text.count("The answer is") == 4
    rec = task.prompt_record(item, 8)
    assert rec.kshot == 8 and rec.text.count("The answer is") == 8
    assert rec.template != task.prompt_record(item, 4).template
    assert rec.reference == item.reference == "18"
    assert len(task.items("train")) == 7473
