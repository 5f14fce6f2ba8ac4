"""NQ-open (Lee et al. 2019): open-domain questions with a list of acceptable answers.

Prompt: an instruction, k question/answer shots written for gvstore (not taken from NQ, so no
shot can leak a test item), then ``Question: <question>?\\nAnswer:``.

The answer is the text after the last ``Answer:`` on its line when the model writes one, else
the first non-empty line (the prompt already ends with ``Answer:``); the model's next
made-up ``Question:`` is cut off. Both sides are normalised as in SQuAD / NQ-open evaluation:
lower case, punctuation removed, articles (a, an, the) removed, whitespace collapsed.

* strict: the normalised answer equals a normalised acceptable answer;
* flexible: a normalised acceptable answer occurs in the normalised answer as whole words
  ("jane austen" in "it was written by jane austen"). Only the extracted answer line is
  searched, not the whole text, so a model that lists many guesses is not rewarded for it.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from pathlib import Path

from gvstore.tasks import data
from gvstore.tasks.base import Exemplar, GradeResult, Item, Task

_SPLIT_FILES = {"dev": "NQ-open.dev.jsonl", "efficientqa": "NQ-open.efficientqa.dev.1.1.jsonl"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
MAX_ANSWER_CHARS = 1000

EXEMPLARS: tuple[Exemplar, ...] = (
    Exemplar("who wrote the novel pride and prejudice", "Jane Austen"),
    Exemplar("what is the capital city of australia", "Canberra"),
    Exemplar("how many players are on the field for one side in a football match", "11"),
    Exemplar("which planet is closest to the sun", "Mercury"),
    Exemplar("in which year did the first man walk on the moon", "1969"),
)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD's rule)."""
    s = s.lower().translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def extract_answer(text: str) -> str | None:
    """The model's answer line (see the module docstring), or None if there is none."""
    t = text
    cut = t.find("Question:")
    if cut > 0 or (cut == 0 and "Answer:" not in t):
        t = t[:cut]
    at = t.rfind("Answer:")
    if at >= 0:
        t = t[at + len("Answer:"):]
    for line in t.splitlines():
        if line.strip():
            return line.strip()[:MAX_ANSWER_CHARS]
    return None


def references(reference: str) -> list[str]:
    """The acceptable answers of a reference (a JSON list, or one plain string)."""
    try:
        got = json.loads(reference)
    except ValueError:
        return [reference]
    if isinstance(got, list):
        return [str(x) for x in got]
    return [str(got)]


def grade_nq(text: str, reference: str) -> GradeResult:
    ans = extract_answer(text)
    if ans is None:
        return GradeResult(0.0, 0.0, None)
    pred = normalize_answer(ans)
    golds = [g for g in (normalize_answer(r) for r in references(reference)) if g]
    strict = bool(pred) and pred in golds
    padded = f" {pred} "
    flexible = strict or any(f" {g} " in padded for g in golds)
    return GradeResult(float(strict), float(flexible), ans)


class NQOpen(Task):
    name = "nq_open"
    version = "1"
    description = "NQ-open factoid questions; any acceptable answer counts"
    splits = ("dev", "efficientqa")
    default_kshot = 5
    instruction = "Answer each question with a short answer: a name, a date or a number."
    question_format = "Question: {question}?\nAnswer:"
    shot_format = "Question: {question}?\nAnswer: {answer}"

    def items(self, split: str = "dev", path: Path | str | None = None) -> list[Item]:
        self.check_split(split)
        where = path if path is not None else self.data_path
        rows = data.load_jsonl("nq_open", _SPLIT_FILES[split], where)
        return [
            Item(f"{split}-{i:05d}", r["question"], json.dumps(r["answer"], ensure_ascii=False),
                 split)
            for i, r in enumerate(rows)
        ]

    def exemplars(self) -> Sequence[Exemplar]:
        return EXEMPLARS

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_nq(text, reference)
