"""Parsers of verifier outputs: the last well-formed verdict decides; nothing is guessed.

Each parser returns a ``Parsed``: the value (a score, or ``"A"``/``"B"``) or None, and a parse
status recorded with the verification:

* ``ok``: a well-formed verdict was found, and it is the last one in the text;
* ``empty``: the output is empty (or only whitespace);
* ``no_verdict``: the label (``Correctness``, ``Score``, ``Better``) never appears;
* ``bad_verdict``: the label appears, but never followed by a well-formed value (an echo of
  the instructions such as ``Correctness: correct/incorrect`` or ``Score: <1..10>`` is not a
  verdict);
* ``out_of_range``: the last verdict is a score outside 1..10, or out of a total other than 10
  (``Score: 4/5`` is not rescaled).

Well-formed, case-insensitively, with markdown emphasis (``*``, ``_``, backquotes) allowed
around the label and the value (``**Correctness:** correct``, ``Score: **8**``):

* binary: ``Correctness: correct`` or ``Correctness: incorrect`` (also with ``=``);
* score: ``Score: N``, ``Score: N/10``, ``Score: N out of 10``; N may have decimals
  (``Score: 8.5`` scores 8.5: it is what the verifier said, within the scale);
* choice: ``Better: A`` (also ``Better solution: (B)``, ``Winner: A``, ``Answer: B``,
  ``Solution A is better``); an output that is just the letter (``B``, ``(A).``) counts too.

Parsers never raise and run in time linear in the text (no nested quantifiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCORE_MIN, SCORE_MAX = 1.0, 10.0


@dataclass(frozen=True)
class Parsed:
    """A parsed verdict: ``value`` is None unless ``status == "ok"``."""

    value: float | str | None
    status: str


_MD = r"[\s*_`]*"  # markdown emphasis and spaces around labels and values
_SEP = _MD + r"[:=]" + _MD

_BINARY_LABEL = re.compile(r"correctness", re.IGNORECASE)
_BINARY = re.compile(
    r"\bcorrectness" + _SEP + r"(?P<v>incorrect|correct)\b(?!" + _MD + r"(?:/|\||or\b))",
    re.IGNORECASE,
)

_SCORE_LABEL = re.compile(r"\bscore\b", re.IGNORECASE)
_SCORE = re.compile(
    r"\bscore" + _SEP + r"(?P<v>-?\d{1,6}(?:\.\d{1,6})?)(?!\.?\.\d|\d)"
    r"(?:" + _MD + r"(?:/|out\s+of)\s*(?P<d>\d{1,6})(?!\d))?"
    r"(?!" + _MD + r"(?:-|to)\s*\d)",  # "Score: 1-10", "Score: 1 to 10" are echoes
    re.IGNORECASE,
)

_CHOICE_LABEL = re.compile(r"\b(?:better|winner)\b", re.IGNORECASE)
_CHOICE = re.compile(
    r"(?:\b(?:better(?:\s+(?:solution|answer))?|winner|answer|choice|verdict)" + _SEP
    + r"(?:(?:solution|answer)\s+)?\(?(?P<v>(?-i:[AB]))\b\)?(?!" + _MD + r"(?:/|\||or\b))"
    + r"|\b(?:solution|answer)\s+\(?(?P<w>(?-i:[AB]))\)?\s+is\s+(?:the\s+)?better\b)",
    re.IGNORECASE,
)
_BARE_CHOICE = re.compile(r"^[\s*_`(\[]*(?P<v>[AB])[\s*_`)\].:!]*$")


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for found in pattern.finditer(text):
        last = found
    return last


def _missing(text: str, label: re.Pattern[str]) -> Parsed:
    if not text.strip():
        return Parsed(None, "empty")
    return Parsed(None, "bad_verdict" if label.search(text) else "no_verdict")


def parse_binary(text: str) -> Parsed:
    """``cot_binary``: 1.0 for correct, 0.0 for incorrect (the last well-formed verdict)."""
    m = _last(_BINARY, text)
    if m is None:
        return _missing(text, _BINARY_LABEL)
    return Parsed(1.0 if m.group("v").lower() == "correct" else 0.0, "ok")


def parse_score(text: str) -> Parsed:
    """``cot_score``: the last well-formed ``Score:`` in 1..10, else null with a status."""
    m = _last(_SCORE, text)
    if m is None:
        return _missing(text, _SCORE_LABEL)
    value = float(m.group("v"))
    total = m.group("d")
    if total is not None and int(total) != 10:
        return Parsed(None, "out_of_range")
    if not SCORE_MIN <= value <= SCORE_MAX:
        return Parsed(None, "out_of_range")
    return Parsed(value, "ok")


def parse_choice(text: str) -> Parsed:
    """``tournament``: ``"A"`` or ``"B"`` (the last well-formed choice), else null."""
    m = _last(_CHOICE, text)
    if m is not None:
        return Parsed((m.group("v") or m.group("w")).upper(), "ok")
    bare = _BARE_CHOICE.match(text)
    if bare is not None:
        return Parsed(bare.group("v"), "ok")
    return _missing(text, _CHOICE_LABEL)


PARSERS = {"cot_binary": parse_binary, "cot_score": parse_score, "tournament": parse_choice}
