"""Verifier prompt templates: every text a verifier is shown, in one place.

A template is a format string per (method, task family). Records carry ``Template.digest``
(``gvstore.digest.digest`` of the template text) in their ``template`` field, which is part of
their key: editing a template here gives new keys, so the next run verifies again instead of
mixing old and new verdicts under one key.

Families: ``math`` (GSM8K, MATH), ``arith`` (the synthetic arithmetic task), ``qa``
(NQ-open), ``sudoku`` (a validator prompt that states the rules) and ``generic`` (any other
task). The wording restates the prompts of Song et al. (ICLR 2025, appendix G) in our own
words:

* ``mc``: judge the solution, answer Correct or Incorrect; the score comes from the
  log-likelihoods of the two answers, so nothing is generated. An instruct model sees the text
  as its user message with the assistant turn opened, so the answers are scored as the
  assistant's first word, without a leading space (``"Correct"``, ``"Incorrect"``). A base
  model sees the raw text, which then ends with ``"\\nVerdict:"`` (``MC_BASE_CUE``) and the
  answers carry a leading space (``" Correct"``, ``" Incorrect"``); that cue is part of the
  template text, so the two kinds never share a digest.
* ``cot_binary``: reason briefly, end with ``Correctness: correct`` or ``incorrect``.
* ``cot_score``: reason briefly, end with ``Score: N`` for N in 1..10.
* ``tournament``: two solutions A and B of one problem, end with ``Better: A`` or ``B``.

Placeholders: ``{problem}`` and ``{solution}``; the tournament has ``{solution_a}`` and
``{solution_b}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from gvstore.digest import digest
from gvstore.errors import GvstoreError

METHODS = ("mc", "cot_binary", "cot_score", "tournament")
FAMILIES = ("math", "arith", "qa", "sudoku", "generic")
TASK_FAMILY = {"gsm8k": "math", "math": "math", "arith": "arith", "nq_open": "qa",
               "sudoku": "sudoku"}

MC_BASE_CUE = "\nVerdict:"
"""Appended to an ``mc`` template for base models (raw text, no chat template)."""
MC_ANSWERS = {"instruct": ("Correct", "Incorrect"), "base": (" Correct", " Incorrect")}
"""The two continuations ``mc`` scores, by model kind (see the module docstring)."""


@dataclass(frozen=True)
class Template:
    """One verifier prompt: ``text`` is a format string (see the module docstring)."""

    method: str
    family: str
    text: str

    @cached_property
    def digest(self) -> str:
        """What records carry in their ``template`` field."""
        return digest(self.text)

    def render(self, **fields: str) -> str:
        """The prompt text: placeholders filled (other braces in inputs are left alone)."""
        out = self.text
        for name, value in fields.items():
            out = out.replace("{" + name + "}", value)
        return out


# ---- what each family calls its problem and its answers ---------------------------------

_SUBJECT = {
    "math": ("math problem", "solution"),
    "arith": ("arithmetic problem", "solution"),
    "qa": ("question", "answer"),
    "sudoku": ("Sudoku puzzle", "solution"),
    "generic": ("problem", "solution"),
}

_SUDOKU_RULES = (
    "A 4x4 Sudoku is solved when every row, every column and every 2x2 box holds the digits "
    "1, 2, 3 and 4 exactly once, and every digit given in the puzzle is kept in its place. "
    "Rows are written as two pairs of cells, one pair per 2x2 box; _ marks a blank."
)


def _body(*, label_problem: str, label_solution: str) -> str:
    return f"{label_problem}:\n{{problem}}\n\n{label_solution}:\n{{solution}}"


def _mc(family: str) -> str:
    thing, ans = _SUBJECT[family]
    if family == "sudoku":
        head = ("Validate the following solution of the Sudoku puzzle. " + _SUDOKU_RULES
                + " Answer with either Correct or Incorrect.")
    elif family == "qa":
        head = ("Judge the correctness of the following answer to the question. "
                "Answer with either Correct or Incorrect.")
    else:
        head = ("Judge the correctness of the following solution of the problem. "
                "Answer with either Correct or Incorrect.")
    return head + "\n\n" + _body(label_problem=thing.capitalize(),
                                 label_solution=ans.capitalize())


def _cot_binary(family: str) -> str:
    thing, ans = _SUBJECT[family]
    rules = " " + _SUDOKU_RULES if family == "sudoku" else ""
    check = {
        "math": "Check each step of the reasoning and the final answer.",
        "arith": "Work the calculation out yourself and compare it with the final answer.",
        "qa": "Recall what you know about the question and compare it with the answer.",
        "sudoku": "Check every row, column and box, and that the givens are kept.",
        "generic": "Check the reasoning and the final answer.",
    }[family]
    return (
        f"Below are a {thing} and a proposed {ans}. Decide whether the {ans} is correct."
        f"{rules} {check} Write a short justification, then end your reply with one line, "
        "exactly 'Correctness: correct' or 'Correctness: incorrect'.\n\n"
        + _body(label_problem=thing.capitalize(), label_solution=ans.capitalize())
    )


def _cot_score(family: str) -> str:
    thing, ans = _SUBJECT[family]
    rules = " " + _SUDOKU_RULES if family == "sudoku" else ""
    return (
        f"Below are a {thing} and a proposed {ans}. Rate how likely the {ans} is to be "
        f"correct on a scale from 1 (surely wrong) to 10 (surely right).{rules} Write a short "
        "justification, then end your reply with one line 'Score: N', where N is a whole "
        "number from 1 to 10.\n\n"
        + _body(label_problem=thing.capitalize(), label_solution=ans.capitalize())
    )


def _tournament(family: str) -> str:
    thing, ans = _SUBJECT[family]
    rules = " " + _SUDOKU_RULES if family == "sudoku" else ""
    a, b = ans.capitalize() + " A", ans.capitalize() + " B"
    return (
        f"Below are a {thing} and two proposed {ans}s, A and B. Decide which {ans} is better: "
        f"the one more likely to be correct.{rules} Write a short justification, then end your "
        "reply with one line, exactly 'Better: A' or 'Better: B'.\n\n"
        f"{thing.capitalize()}:\n{{problem}}\n\n{a}:\n{{solution_a}}\n\n{b}:\n{{solution_b}}"
    )


_BUILD = {"mc": _mc, "cot_binary": _cot_binary, "cot_score": _cot_score,
          "tournament": _tournament}
TEMPLATES: dict[tuple[str, str], Template] = {
    (m, f): Template(m, f, _BUILD[m](f)) for m in METHODS for f in FAMILIES
}


def family_of(task: str) -> str:
    """The template family of a task (``generic`` for a task without its own wording)."""
    return TASK_FAMILY.get(task, "generic")


def get_template(method: str, task: str, kind: str = "instruct") -> Template:
    """The template ``method`` uses on ``task`` for a verifier of model ``kind``."""
    if method not in _BUILD:
        raise GvstoreError(f"unknown verification method {method!r}; "
                           f"choose from {', '.join(METHODS)}")
    t = TEMPLATES[(method, family_of(task))]
    if method == "mc" and kind == "base":
        return Template(t.method, t.family, t.text + MC_BASE_CUE)
    return t


def mc_answers(kind: str) -> tuple[str, str]:
    """(correct, incorrect) continuations ``mc`` scores for a verifier of model ``kind``."""
    return MC_ANSWERS["base" if kind == "base" else "instruct"]
