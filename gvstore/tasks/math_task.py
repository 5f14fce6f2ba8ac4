"""MATH (Hendrycks et al. 2021) and MATH-500, graded like lm-eval's ``minerva_math``, minus
the rules that credit wrong answers (docs/tasks.md lists every deviation and why).

Prompt: ``Problem:\\n<problem>\\n\\nSolution:``, after 4 Minerva exemplars whose solutions end
"Final Answer: The final answer is $X$. I hope it is correct." Reference: the content of the
last ``\\boxed{...}`` of the solution (braces matched).

* strict: the first "Final Answer: The final answer is X. I hope it is correct." (Minerva's
  pattern, with lm-eval's habit of appending "I hope it is correct." to the text) is
  equivalent to the reference;
* flexible: that answer if present, else the last ``\\boxed{}``, else the last ``$...$``.

A hedge (``$3$ or $7$``, ``\\boxed{3} or \\boxed{7}``, ``3 \\text{ or } 7``) whose alternatives
are not all equivalent is no answer: 0 under both. Both sides are normalised by Minerva's
procedure (``normalize_final_answer``), except that commas are dropped only from a number with
thousands groups (``1,000``), never from a list (``2,3`` stays a list). Equivalence: equal
normalised strings; else equal after a light LaTeX clean-up (``\\dfrac`` -> ``\\frac``,
``\\left``/``\\right`` dropped, ``.5`` -> ``0.5``, ...); letters and words (``ACE``,
``Monday``, ``(C)``) only as strings; tuples, intervals and bare lists element by element;
else SymPy (``math_equiv.equivalent``, bounded in time); the rules are
``math_equiv.is_equiv``.

``MathLmEval`` is lm-eval's ``exact_match`` as it is, under its own grader name
``math:lm-eval``, for numbers comparable with the harness's; never the default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from gvstore.tasks import data, math_equiv
from gvstore.tasks.base import Exemplar, GradeResult, Item, Task
from gvstore.tasks.math_equiv import INVALID, is_equiv

MAX_ANSWER_CHARS = 1000  # an extracted answer longer than this is not normalised: no match

# Minerva's tables (lm-eval minerva_math, transcribed in data/math/NORMALIZATION.md)
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""),
    ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)
REMOVED_EXPRESSIONS: tuple[str, ...] = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
    "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
    "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
    "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
    "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(.*?)(\$)(.*?)(\$)(.*)"), "$\\3$"),
    (re.compile(r"(\\text\{)(.*?)(\})"), "\\2"),
    (re.compile(r"(\\textbf\{)(.*?)(\})"), "\\2"),
    (re.compile(r"(\\overline\{)(.*?)(\})"), "\\2"),
    (re.compile(r"(\\boxed\{)(.*)(\})"), "\\2"),
    (re.compile(r"(frac)([^{])(.)"), "frac{\\2}{\\3}"),
    (re.compile(r"(sqrt)([^{])"), "sqrt{\\2}"),
)

_FINAL_PREFIX = "Final Answer: The final answer is"
_FINAL_SUFFIX = " I hope it is correct."


_THOUSANDS = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")


def normalize_final_answer(answer: str, *, minerva_commas: bool = True) -> str:
    """Minerva's normalisation (Lewkowycz et al. 2022, appendix D), as lm-eval applies it.

    Its last step drops every comma when only digits would be left, so the list ``2,3`` becomes
    the number ``23``. With ``minerva_commas=False`` commas are dropped only from a number in
    thousands groups (``1,000``, ``61,328``, ``1,000.5``); a list keeps them.
    """
    s = answer.split("=")[-1]
    for before, after in SUBSTITUTIONS:
        s = s.replace(before, after)
    for expr in REMOVED_EXPRESSIONS:
        s = s.replace(expr, "")
    for pattern, repl in _REWRITES:
        s = pattern.sub(repl, s)
    s = s.replace("$", "")
    if minerva_commas:
        if s.replace(",", "").isdigit():
            s = s.replace(",", "")
    elif _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    return s


def _boxed_span(text: str, idx: int, stop: int) -> tuple[int, str] | None:
    """The end and content of the ``\boxed{...}`` (or ``\fbox{...}``) at ``idx``, braces
    matched before ``stop``; None if it is not one."""
    open_at = text.find("{", idx, stop)
    if open_at < 0 or text[idx:open_at] not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(open_at, stop):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1, text[open_at + 1 : i]
    return None


def _last_boxed_at(text: str) -> tuple[int, str] | None:
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return None
    span = _boxed_span(text, idx, len(text))
    return None if span is None else (idx, span[1])


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed X``)."""
    if "\\boxed " in text:
        return text.split("\\boxed ")[-1].split("$")[0]
    found = _last_boxed_at(text)
    return None if found is None else found[1]


def extract_final_answer(text: str) -> str | None:
    """The X of the first "Final Answer: The final answer is X. I hope it is correct."

    Equivalent to lm-eval's regex ``Final Answer: The final answer is(.*?). I hope it is
    correct.`` over ``text + "I hope it is correct."`` (dots are wildcards that stop at a
    newline), but linear in the text length.
    """
    full = text + "I hope it is correct."
    pos = 0
    while True:
        start = full.find(_FINAL_PREFIX, pos)
        if start < 0:
            return None
        line_end = full.find("\n", start)
        if line_end < 0:
            line_end = len(full)
        body = start + len(_FINAL_PREFIX)
        # the wildcard before " I hope" needs one character after the (possibly empty) group
        end = full.find(_FINAL_SUFFIX, body + 1, line_end)
        if end >= 0:
            return full[body : end - 1].strip()
        pos = line_end


def _math_spans(text: str) -> list[str]:
    t = text.replace("$$", "$")
    out: list[str] = []
    end = t.rfind("$")
    while end >= 0:
        start = t.rfind("$", 0, end)
        if start < 0:
            break
        out.append(t[start + 1 : end].strip())
        end = t.rfind("$", 0, start)
        if len(out) > MAX_ALTERNATIVES or end < 0:
            break
        if not _HEDGE_GAP.fullmatch(t, end + 1, start):
            break
    return out


def last_math(text: str) -> str | None:
    """The content of the last ``$...$`` pair (``$$...$$`` too), or None."""
    t = text.replace("$$", "$")
    end = t.rfind("$")
    if end < 0:
        return None
    start = t.rfind("$", 0, end)
    if start < 0:
        return None
    return t[start + 1 : end].strip()


# ---- hedges: "$3$ or $7$" names two answers, which is no answer --------------------------

MAX_ALTERNATIVES = 8
_TEXT_CMD = r"\\(?:text|textrm|textnormal|textit|textbf|textsf|mathrm|mathit|mbox|operatorname)"
_OR_WORD = r"(?:and\s*/\s*or|or)"
_CONNECTIVE = (rf"{_TEXT_CMD}\s*\{{\s*(?:,\s*)?{_OR_WORD}\s*\}}"
               rf"|(?<![A-Za-z\\]){_OR_WORD}(?![A-Za-z])")
_OR_SPLIT = re.compile(_CONNECTIVE, re.IGNORECASE)
_FILL = r"(?:[\s$,;:]|\\[,;:! ]|\\q?quad(?![A-Za-z]))"
_FILL_WORDS = r"(?:either|possibly|maybe|perhaps|equivalently|alternatively)(?![A-Za-z])"
_GAP_FILL = r"(?:[\s$,;:()]|\\[,;:! ]|\\q?quad(?![A-Za-z]))"
_HEDGE_GAP = re.compile(
    rf"{_GAP_FILL}*(?:{_CONNECTIVE}){_GAP_FILL}*(?:{_FILL_WORDS}{_GAP_FILL}*)?", re.IGNORECASE,
)
_EDGE = re.compile(rf"^(?:{_FILL}|{_FILL_WORDS})+|{_FILL}+$", re.IGNORECASE)


def _strip_alternative(a: str) -> str:
    """An alternative without the filler round it (``, possibly $7$)`` -> ``7``)."""
    a = _EDGE.sub("", a)
    for _ in range(2):  # a parenthesis the connective cut off: "3 (or 7)"
        if a.count("(") > a.count(")") and (a.startswith("(") or a.endswith("(")):
            a = a[1:] if a.startswith("(") else a[:-1]
        if a.count(")") > a.count("(") and (a.startswith(")") or a.endswith(")")):
            a = a[:-1] if a.endswith(")") else a[1:]
        a = _EDGE.sub("", a)
    return a


def alternatives(answers: Sequence[str]) -> list[str]:
    """The answers a text offers: ``answers`` (joined by connectives in the text), each split
    at "or" (``3 \\text{ or } 7``, ``$3$ or $7$``); a plain answer is a list of one."""
    out: list[str] = []
    for ans in answers:
        parts = [_strip_alternative(x) for x in _OR_SPLIT.split(ans)]
        parts = [x for x in parts if x]
        out += parts if len(parts) > 1 else [ans]
    return out


def resolve_hedge(answers: Sequence[str], timeout: float = math_equiv.DEFAULT_TIMEOUT_S,
                  ) -> tuple[str | None, bool]:
    """``(answer, hedged)``: the first alternative when all are equivalent, else ``(None,
    True)``. ``answers`` are the raw answers of one extraction, the last first."""
    alts = alternatives(list(reversed(answers)))
    if len(alts) <= 1:
        return (alts[0] if alts else None), False
    if len(alts) > MAX_ALTERNATIVES:
        return None, True
    norms = [_normalized(a) for a in alts]
    first = norms[0]
    if first is None:
        return None, True
    for other in norms[1:]:
        if other is None or not (other == first or is_equiv(other, first, timeout)):
            return None, True
    return alts[0], False


def _boxed_chain(text: str) -> list[str]:
    """The last ``\\boxed{}`` content, then those before it joined to it by "or", last first."""
    if "\\boxed " in text:
        last = last_boxed(text)
        return [] if last is None else [last]
    found = _last_boxed_at(text)
    if found is None:
        return []
    start, content = found
    out = [content]
    while len(out) <= MAX_ALTERNATIVES:
        window = max(0, start - 2 * MAX_ANSWER_CHARS)
        prev = max(text.rfind("\\boxed", window, start), text.rfind("\\fbox", window, start))
        if prev < 0:
            break
        span = _boxed_span(text, prev, start)
        if span is None or not _HEDGE_GAP.fullmatch(text, span[0], start):
            break
        out.append(span[1])
        start = prev
    return out


_ROW_BREAK = re.compile(r"\\\\\s+")


def _normalized(ans: str | None, *, minerva_commas: bool = False) -> str | None:
    if ans is None or len(ans) > MAX_ANSWER_CHARS:
        return None
    # Minerva drops every "\\ " (backslash, space): a row break "\\\\ 2" would become "\\2"
    return normalize_final_answer(_ROW_BREAK.sub(r"\\\\", ans), minerva_commas=minerva_commas)


def _hedge_mark(answers: Sequence[str]) -> str:
    return "[hedge] " + " | ".join(alternatives(list(reversed(answers))))[:MAX_ANSWER_CHARS]


def grade_math(text: str, reference: str, timeout: float = math_equiv.DEFAULT_TIMEOUT_S,
               ) -> GradeResult:
    gold = _normalized(reference) or ""
    final = extract_final_answer(text)
    if final is not None:
        # the answer line counts for both: a hedge there is no answer, with no fallback
        answer, hedged = resolve_hedge([final], timeout)
        if hedged:
            return GradeResult(0.0, 0.0, _hedge_mark([final]))
        norm = _normalized(answer)
        ok = norm is not None and is_equiv(norm, gold, timeout)
        return GradeResult(float(ok), float(ok), norm)
    chain = _boxed_chain(text) or _math_spans(text)
    if not chain:
        return GradeResult(0.0, 0.0, None)
    answer, hedged = resolve_hedge(chain, timeout)
    if hedged:
        return GradeResult(0.0, 0.0, _hedge_mark(chain))
    norm = _normalized(answer)
    ok = norm is not None and is_equiv(norm, gold, timeout)
    return GradeResult(0.0, float(ok), norm)


def grade_math_lm_eval(text: str, reference: str,
                       timeout: float = math_equiv.DEFAULT_TIMEOUT_S) -> GradeResult:
    """lm-eval ``minerva_math`` ``exact_match`` as it is: the final-answer line (else
    ``[invalidanswer]``), Minerva's normalisation with its comma rule, and SymPy alone (no
    string match, no hedge rule). Strict and flexible are the same number. The one bound
    added: an answer over ``MAX_ANSWER_CHARS`` is not normalised (Minerva's first rewrite is
    quadratic in its length) and is a non-match, as is one over SymPy's 200 characters."""
    final = extract_final_answer(text)
    if final is not None and len(final) > MAX_ANSWER_CHARS:
        return GradeResult(0.0, 0.0, None)
    pred = normalize_final_answer(final) if final is not None else INVALID
    gold = normalize_final_answer(reference)
    ok = pred != INVALID and math_equiv.equivalent(pred, gold, timeout, mode="lm-eval")
    return GradeResult(float(ok), float(ok), pred)


@cache
def _exemplars(path: str | None) -> tuple[Exemplar, ...]:
    rows = data.load_jsonl("math", "minerva_exemplars.jsonl", path)
    return tuple(Exemplar(r["problem"], r["solution"]) for r in rows)


class MathTask(Task):
    name = "math"
    # 2: letters and words as strings, hedges 0, commas dropped only from thousands, ".5"
    version = "2"
    description = "MATH competition problems (test: 5000, math500: 500), Minerva 4-shot"
    splits = ("test", "math500")
    default_kshot = 4
    question_format = "Problem:\n{question}\n\nSolution:"
    shot_format = "Problem:\n{question}\n\nSolution: {answer}"

    def items(self, split: str = "test", path: Path | str | None = None) -> list[Item]:
        self.check_split(split)
        where = path if path is not None else self.data_path
        out: list[Item] = []
        if split == "test":
            for i, r in enumerate(data.load_jsonl("math", "test.jsonl", where)):
                ref = last_boxed(r["solution"])
                out.append(Item(
                    f"test-{int(r.get('idx', i)):04d}", r["problem"], ref or "", split,
                    {"level": r.get("level"), "type": r.get("type")},
                ))
        else:
            for r in data.load_jsonl("math", "math500/test.jsonl", where):
                ref = last_boxed(r["solution"]) or r.get("answer", "")
                out.append(Item(
                    r["unique_id"], r["problem"], ref, split,
                    {"level": r.get("level"), "type": r.get("subject")},
                ))
        return out

    def exemplars(self) -> Sequence[Exemplar]:
        return _exemplars(data.data_dir(self.data_path))

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_math(text, reference)


class MathLmEval(MathTask):
    """``math`` graded exactly as lm-eval's ``minerva_math`` ``exact_match`` does."""

    variant = "lm-eval"
    version = "1"

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_math_lm_eval(text, reference)
