"""Answer extraction for tasks whose answer is one number (GSM8K, arith).

Follows lm-evaluation-harness's ``gsm8k_cot`` filters (see docs/tasks.md), with these
deliberate differences, each a fix of a quirk that ``LM_EVAL_EXTRACTION.md`` documents or of a
rule that credits a wrong answer:

* strict accepts the number at the very end of the text (lm-eval's trailing wildcard ``.``
  turns a final ``The answer is 18`` into ``1``) and an optional ``$`` before it;
* flexible takes the last run of ``[$0-9.,]`` characters that holds a digit (lm-eval would
  take a trailing ``...``);
* numbers are compared after normalisation as decimals, so ``18.00``, ``18.``, ``18`` agree and
  ``.5`` is ``0.5``; lm-eval compares strings after deleting ``,``, ``$`` and one trailing ``.``;
* a hedge is no answer: ``The answer is 1000 or 1001`` (strict) and ``... 1001 or 1000``
  (flexible) name two numbers, so both are wrong, whichever the reference is. Numbers joined
  by "or" (``or possibly``, ``(or 1001)``, ``and/or``) are the alternatives; when they are all
  the same number (``1000 or 1,000``) that number is the answer.

Both scans are linear in the text length (no backtracking regex over long runs).
``lm_eval_strict`` / ``lm_eval_flexible`` / ``lm_eval_exact_match`` are lm-eval's own rules, for
the separately named ``gsm8k:lm-eval`` grader.
"""

from __future__ import annotations

import re
from collections import deque
from decimal import Decimal, InvalidOperation

_NUMBER = r"-?(?:[0-9]|\.[0-9])[0-9.,]*"
STRICT_RE = re.compile(rf"The answer is \$?({_NUMBER})")
_RUN_RE = re.compile(r"-?[$0-9.,]+")
_PLAIN_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_MAX_DIGITS = 60  # longer strings are compared as text, never converted
MAX_ALTERNATIVES = 8
# what joins two alternatives: "1000 or 1001", "1000, or possibly 1001", "1000 (or 1001)"
_OR_GAP = r"\s*[,;]?\s*\(?\s*(?:or|and\s*/\s*or)\s+(?:(?:possibly|maybe|perhaps|even)\s+)?\$?"
_NEXT_RE = re.compile(rf"{_OR_GAP}({_NUMBER})", re.IGNORECASE)
_GAP_RE = re.compile(_OR_GAP, re.IGNORECASE)


def normalize_number(s: str) -> str:
    """Canonical text of a number: no ``$`` or commas, no trailing ``.``, ``18.50`` -> ``18.5``,
    ``.5`` -> ``0.5``.

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


def _clean(tok: str) -> str:
    return tok.rstrip(".,")


def strict_alternatives(text: str) -> list[str] | None:
    """The number after the first ``The answer is``, then any joined to it by "or"; or None."""
    m = STRICT_RE.search(text)
    if m is None:
        return None
    first = _clean(m.group(1))
    out = [first]
    pos = m.start(1) + len(first)
    while len(out) <= MAX_ALTERNATIVES:
        n = _NEXT_RE.match(text, pos)
        if n is None:
            break
        tok = _clean(n.group(1))
        out.append(tok)
        pos = n.start(1) + len(tok)
    return out


def flexible_alternatives(text: str) -> list[str] | None:
    """The last number-like run (``[$0-9.,]`` with a digit), then those joined to it by "or"
    before it (last first); or None."""
    runs: deque[tuple[int, int, str]] = deque(maxlen=MAX_ALTERNATIVES + 1)
    for m in _RUN_RE.finditer(text):
        tok = m.group(0)
        if any(c.isdigit() for c in tok):
            runs.append((m.start(), m.end(), tok))
    if not runs:
        return None
    start, _, tok = runs.pop()
    out = [_clean(tok)]
    while runs:
        p_start, p_end, p_tok = runs.pop()
        if not _GAP_RE.fullmatch(text, p_end, start):
            break
        out.append(_clean(p_tok))
        start = p_start
    return out


def extract_strict(text: str) -> str | None:
    """The number after the first ``The answer is``, or None."""
    alts = strict_alternatives(text)
    return alts[0] if alts else None


def extract_flexible(text: str) -> str | None:
    """The last number-like run (``[$0-9.,]`` with at least one digit), or None."""
    alts = flexible_alternatives(text)
    return alts[0] if alts else None


def resolve(alternatives: list[str] | None) -> tuple[str | None, bool]:
    """``(answer, hedged)``: the one number the alternatives name, or ``(None, True)`` when
    they name more than one."""
    if not alternatives:
        return None, False
    first = normalize_number(alternatives[0])
    if len(alternatives) > MAX_ALTERNATIVES or any(
            normalize_number(a) != first for a in alternatives[1:]):
        return None, True
    return alternatives[0], False


def same_number(extracted: str | None, reference: str) -> bool:
    return extracted is not None and normalize_number(extracted) == normalize_number(reference)


# ---- lm-evaluation-harness gsm8k_cot, as it is (LM_EVAL_EXTRACTION.md) -----------------------

LM_EVAL_STRICT = re.compile(r"The answer is (\-?[0-9\.\,]+).")
LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
LM_EVAL_INVALID = "[invalid]"
_LM_EVAL_MARK = "#### "


def _lm_eval_filter(pattern: re.Pattern[str], text: str, select: int) -> str:
    found = pattern.findall(text)
    if not found:
        return LM_EVAL_INVALID
    match = found[select]
    if isinstance(match, tuple):
        groups = [g for g in match if g]
        match = groups[0] if groups else LM_EVAL_INVALID
    return str(match).strip()


def lm_eval_strict(text: str) -> str:
    """lm-eval's ``strict-match``: the first ``The answer is (\\-?[0-9\\.\\,]+).``."""
    return _lm_eval_filter(LM_EVAL_STRICT, text, 0)


def lm_eval_flexible(text: str) -> str:
    """lm-eval's ``flexible-extract``: the last ``(-?[$0-9.,]{2,})|(-?[0-9]+)``."""
    return _lm_eval_filter(LM_EVAL_FLEXIBLE, text, -1)


def lm_eval_exact_match(pred: str, reference: str) -> bool:
    """lm-eval's ``exact_match`` with ``gsm8k_cot``'s ``regexes_to_ignore`` and ignore_case."""
    def norm(s: str) -> str:
        s = s.replace(",", "").replace("$", "")
        # "(?s).*#### " deletes through the last "#### " (the regex is quadratic on long text)
        cut = s.rfind(_LM_EVAL_MARK)
        if cut >= 0:
            s = s[cut + len(_LM_EVAL_MARK):]
        return re.sub(r"\.$", "", s).lower()
    return norm(pred) == norm(reference)
