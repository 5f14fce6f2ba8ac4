"""Multiple-choice verification: P(Correct) / (P(Correct) + P(Incorrect)) by log-likelihood.

The verifier is asked to answer Correct or Incorrect; instead of sampling, each answer is
scored as a whole continuation of the prompt (``Backend.loglik`` sums the log-probabilities of
all its tokens). On SmolLM2 ``"Correct"`` is one token and ``"Incorrect"`` two (``"In"``,
``"correct"``; with a leading space ``" Inc"``, ``"orrect"``), so comparing first tokens
would compare ``"Correct"`` with ``"In"``: a prefix that many other words share. Whole
continuations avoid that.

``p_correct`` and ``p_incorrect`` are the raw ``exp(loglik)`` of the two continuations (they
need not sum to 1: the model may prefer a third answer); the score is the normalised
``p_correct / (p_correct + p_incorrect)``, computed from the log-likelihoods so it is defined
even when both probabilities underflow. Log-likelihoods are deterministic, so one
verification per generation is all ``mc`` makes (``repeats > 1`` is refused).

The prompt: judge the solution, answer Correct or Incorrect. An instruct model sees the text
as its user message with the assistant turn opened, so the answers are scored as the
assistant's first word, without a leading space (``"Correct"``, ``"Incorrect"``). A base
model sees the raw text, which then ends with ``"\\nVerdict:"`` (``MC_BASE_CUE``) and the
answers carry a leading space (``" Correct"``, ``" Incorrect"``); that cue is part of the
template text, so the two kinds never share a digest. Scores lie in [0, 1]; the histogram
counts them in tenths.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from gvstore.backends.base import LoglikRequest
from gvstore.verifiers.base import Method
from gvstore.verifiers.templates import SUBJECT, SUDOKU_RULES, body, per_family

MC_BASE_CUE = "\nVerdict:"
"""Appended to an ``mc`` template for base models (raw text, no chat template)."""
MC_ANSWERS = {"instruct": ("Correct", "Incorrect"), "base": (" Correct", " Incorrect")}
"""The two continuations ``mc`` scores, by model kind (see the module docstring)."""
TENTHS = tuple(f"{k / 10:.1f}-{(k + 1) / 10:.1f}" for k in range(10))


@dataclass(frozen=True)
class MCResult:
    """What one ``mc`` verification records."""

    score: float
    p_correct: float
    p_incorrect: float
    raw: str


def requests(prompt: str, answers: tuple[str, str]) -> list[LoglikRequest]:
    """The two log-likelihood requests of one verification: (correct, incorrect)."""
    return [LoglikRequest(prompt, answers[0]), LoglikRequest(prompt, answers[1])]


def normalised(ll_correct: float, ll_incorrect: float) -> float:
    """P(correct) / (P(correct) + P(incorrect)) from log-likelihoods (a stable logistic)."""
    d = ll_incorrect - ll_correct
    if d > 0:
        e = math.exp(-d)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(d))


def result(answers: tuple[str, str], correct: tuple[float, int],
           incorrect: tuple[float, int]) -> MCResult:
    """The record fields from the two (loglik, n_tokens) answers of the back end.

    ``raw`` is JSON naming each continuation, its summed log-likelihood and its token count,
    so a record shows how many tokens each answer was scored over.
    """
    (lc, nc), (li, ni) = correct, incorrect
    raw = json.dumps({
        "correct": {"continuation": answers[0], "loglik": lc, "tokens": nc},
        "incorrect": {"continuation": answers[1], "loglik": li, "tokens": ni},
    }, sort_keys=True)
    return MCResult(score=normalised(lc, li), p_correct=math.exp(lc),
                    p_incorrect=math.exp(li), raw=raw)


def mc_answers(kind: str) -> tuple[str, str]:
    """(correct, incorrect) continuations ``mc`` scores for a verifier of model ``kind``."""
    return METHOD.loglik_answers(kind)


def _tenth(score: float) -> str:
    return TENTHS[min(int(score * 10), 9)]


def _text(family: str) -> str:
    thing, ans = SUBJECT[family]
    if family == "sudoku":
        head = ("Validate the following solution of the Sudoku puzzle. " + SUDOKU_RULES
                + " Answer with either Correct or Incorrect.")
    elif family == "qa":
        head = ("Judge the correctness of the following answer to the question. "
                "Answer with either Correct or Incorrect.")
    else:
        head = ("Judge the correctness of the following solution of the problem. "
                "Answer with either Correct or Incorrect.")
    return head + "\n\n" + body(label_problem=thing.capitalize(),
                                label_solution=ans.capitalize())


METHOD = Method(
    name="mc", call="loglik", templates=per_family("mc", _text), score_range=(0.0, 1.0),
    bins=TENTHS, bin_of=_tenth, base_cue=MC_BASE_CUE, answers=MC_ANSWERS,
)
