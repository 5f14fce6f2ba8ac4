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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from gvstore.backends.base import LoglikRequest


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
