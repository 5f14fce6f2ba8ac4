"""GSM8K (Cobbe et al. 2021): grade-school maths word problems, graded on the final number.

Prompts follow lm-eval's ``gsm8k_cot``: ``Q: <question>\\nA: <worked answer>`` shots from the
8 Wei et al. exemplars (default 4), each ending "The answer is N.", then ``Q: <question>\\nA:``.
Grading is ``numeric``'s; ``GSM8KLmEval`` (grader ``gsm8k:lm-eval``) is lm-eval's own, as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from gvstore.errors import GvstoreError
from gvstore.tasks import data
from gvstore.tasks.base import Exemplar, GradeResult, Item, Task
from gvstore.tasks.numeric import (
    flexible_alternatives,
    lm_eval_exact_match,
    lm_eval_flexible,
    lm_eval_strict,
    resolve,
    same_number,
    strict_alternatives,
)

_SPLIT_FILES = {"test": "test.jsonl", "train": "train.jsonl"}


def reference_of(answer: str) -> str:
    """The final number of a GSM8K worked answer (what follows the last ``####``)."""
    if "####" not in answer:
        raise GvstoreError("GSM8K answer has no '#### N' line")
    return answer.split("####")[-1].strip()


def grade_number(text: str, reference: str) -> GradeResult:
    """Strict: the first "The answer is N" is right. Flexible: the last number is right.

    Either is wrong when it is a hedge naming two numbers (``1000 or 1001``); ``extracted`` is
    then the alternatives joined by `` or ``.
    """
    strict_alts, flex_alts = strict_alternatives(text), flexible_alternatives(text)
    strict, strict_hedged = resolve(strict_alts)
    flexible, flex_hedged = resolve(flex_alts)
    if strict_hedged:
        extracted: str | None = " or ".join(strict_alts or [])
    elif strict is not None:
        extracted = strict
    elif flex_hedged:
        extracted = " or ".join(reversed(flex_alts or []))
    else:
        extracted = flexible
    return GradeResult(
        strict=float(same_number(strict, reference)),
        flexible=float(same_number(flexible, reference)),
        extracted=extracted,
    )


def grade_lm_eval(text: str, reference: str) -> GradeResult:
    """lm-eval ``gsm8k_cot`` as it is: its two regex filters and ``exact_match``."""
    strict, flexible = lm_eval_strict(text), lm_eval_flexible(text)
    return GradeResult(
        strict=float(lm_eval_exact_match(strict, reference)),
        flexible=float(lm_eval_exact_match(flexible, reference)),
        extracted=strict,
    )


@cache
def _exemplars(path: str | None) -> tuple[Exemplar, ...]:
    rows = data.load_jsonl("gsm8k", "cot_exemplars.jsonl", path)
    return tuple(Exemplar(r["question"], r["answer"]) for r in rows)


class GSM8K(Task):
    name = "gsm8k"
    version = "2"  # 2: a hedge ("1000 or 1001") is wrong under both; ".5" is 0.5
    description = "GSM8K maths word problems, chain of thought, 'The answer is N.'"
    splits = ("test", "train")
    default_kshot = 4

    def items(self, split: str = "test", path: Path | str | None = None) -> list[Item]:
        self.check_split(split)
        where = path if path is not None else self.data_path
        rows = data.load_jsonl("gsm8k", _SPLIT_FILES[split], where)
        return [
            Item(f"{split}-{i:05d}", r["question"], reference_of(r["answer"]), split)
            for i, r in enumerate(rows)
        ]

    def exemplars(self) -> Sequence[Exemplar]:
        return _exemplars(data.data_dir(self.data_path))

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_number(text, reference)


class GSM8KLmEval(GSM8K):
    """``gsm8k`` graded exactly as lm-eval's ``gsm8k_cot`` does (``gsm8k:lm-eval``)."""

    variant = "lm-eval"
    version = "1"

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_lm_eval(text, reference)
