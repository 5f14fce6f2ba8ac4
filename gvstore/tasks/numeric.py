"""Answer extraction for tasks whose answer is one number (GSM8K, arith).

Follows lm-evaluation-harness's ``gsm8k_cot`` filters (see docs/tasks.md), with three
deliberate differences, each a fix of a quirk that ``LM_EVAL_EXTRACTION.md`` documents:

* strict accepts the number at the very end of the text (lm-eval's trailing wildcard ``.``
  turns a final ``The answer is 18`` into ``1``) and an optional ``$`` before it;
* flexible takes the last run of ``[$0-9.,]`` characters that holds a digit (lm-eval would
  take a trailing ``...``);
* numbers are compared after normalisation as decimals, so ``18.00``, ``18.`` and ``18``
  agree; lm-eval compares strings after deleting ``,``, ``$`` and one trailing ``.``.

Both scans are linear in the text length (no backtracking regex over long runs).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

STRICT_RE = re.compile(r"The answer is \$?(-?[0-9][0-9.,]*)")
_RUN_RE = re.compile(r"-?[$0-9.,]+")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MAX_DIGITS = 60  # longer strings are compared as text, never converted


def normalize_number(s: str) -> str:
    """Canonical text of a number: no ``$`` or commas, no trailing ``.``, ``18.50`` -> ``18.5``.

    Anything that is not a plain decimal number after that comes back stripped and lower-cased.
    """
    t = s.strip().replace(",", "").replace("$", "").replace(" ", "")
    t = t.rstrip(".")
    if len(t) <= _MAX_DIGITS and _PLAIN_NUMBER.fullmatch(t):
        try:
            d = Decimal(t)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            return t.lower()
        if d == d.to_integral_value():
            return str(int(d))
        return format(d.normalize(), "f")
    return t.lower()


def extract_strict(text: str) -> str | None:
    """The number after the first ``The answer is``, or None."""
    m = STRICT_RE.search(text)
    return m.group(1).rstrip(".,") if m else None


def extract_flexible(text: str) -> str | None:
    """The last number-like run (``[$0-9.,]`` with at least one digit), or None."""
    last: str | None = None
    for m in _RUN_RE.finditer(text):
        tok = m.group(0)
        if any(c.isdigit() for c in tok):
            last = tok
    if last is None:
        return None
    return last.rstrip(".,")


def same_number(extracted: str | None, reference: str) -> bool:
    return extracted is not None and normalize_number(extracted) == normalize_number(reference)
