"""NQ-open: answer normalisation and the strict / flexible match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gvstore.tasks import get_task
from gvstore.tasks.nq_open import extract_answer, normalize_answer

REF = json.dumps(["The Beatles", "Jane Austen's novel", "14 December 1972 UTC", "December 1972"])


@pytest.mark.parametrize(("text", "strict", "flexible"), [
    (" The Beatles", 1, 1),
    (" beatles.", 1, 1),  # article and punctuation dropped
    (" Beatles!!\n\nQuestion: who else?\nAnswer: Queen", 1, 1),  # the next shot is cut off
    (" Jane Austens novel", 1, 1),  # apostrophe removed on both sides
    (" It was the Beatles, I think", 0, 1),  # contained as whole words
    (" December 1972", 1, 1),
    (" 14 december 1972 utc", 1, 1),
    (" in December 1972", 0, 1),
    (" Decembers 1972", 0, 0),  # whole words only
    (" Queen", 0, 0),
    ("", 0, 0),
    ("Answer: the   BEATLES", 1, 1),
])
def test_grader_table(text: str, strict: int, flexible: int) -> None:
    got = get_task("nq_open").grade(text, REF)
    assert (got.strict, got.flexible) == (strict, flexible)


def test_normalize_answer() -> None:
    assert normalize_answer("The  Lord of the Rings!") == "lord of rings"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"


def test_extract_answer() -> None:
    assert extract_answer(" Paris\nQuestion: x") == "Paris"
    assert extract_answer("Answer: Rome") == "Rome"
    assert extract_answer("\n\n") is None


@pytest.mark.shared_data("nq_open/NQ-open.dev.jsonl")
def test_real_items(shared_data: Path) -> None:
    task = get_task("nq_open")
    items = task.items("dev")
    assert len(items) == 3610 and len(task.items("efficientqa")) == 1800
    empty = []
    for it in items:
        first = json.loads(it.reference)[0]
        if not normalize_answer(first):  # e.g. "---": nothing survives normalisation
            empty.append(it.item_id)
            continue
        assert task.grade(f" {first}\n", it.reference).strict == 1, it.item_id
    assert len(empty) <= 5, empty
    text = task.render(items[0])
    assert text.endswith(f"Question: {items[0].question}?\nAnswer:")
