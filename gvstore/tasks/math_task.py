"""MATH (Hendrycks et al. 2021) and MATH-500, graded like lm-eval's ``minerva_math``.

Prompt: ``Problem:\\n<problem>\\n\\nSolution:``, after 4 Minerva exemplars whose solutions end
"Final Answer: The final answer is $X$. I hope it is correct." Reference: the content of the
last ``\\boxed{...}`` of the solution (braces matched).

* strict: the first "Final Answer: The final answer is X. I hope it is correct." (Minerva's
  pattern, with lm-eval's habit of appending "I hope it is correct." to the text) is
  equivalent to the reference;
* flexible: that answer if present, else the last ``\\boxed{}``, else the last ``$...$``.

Both sides are normalised by Minerva's procedure (``normalize_final_answer``). Equivalence:
equal normalised strings; else equal after a light LaTeX clean-up (``\\dfrac`` -> ``\\frac``,
``\\left``/``\\right`` dropped, ...); else tuples and intervals with the same brackets compared
element by element; else SymPy (``math_equiv.equivalent``, bounded in time).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from gvstore.tasks import data, math_equiv
from gvstore.tasks.base import Exemplar, GradeResult, Item, Task

INVALID = "[invalidanswer]"
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


def normalize_final_answer(answer: str) -> str:
    """Minerva's normalisation (Lewkowycz et al. 2022, appendix D), as lm-eval applies it."""
    s = answer.split("=")[-1]
    for before, after in SUBSTITUTIONS:
        s = s.replace(before, after)
    for expr in REMOVED_EXPRESSIONS:
        s = s.replace(expr, "")
    for pattern, repl in _REWRITES:
        s = pattern.sub(repl, s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():
        s = s.replace(",", "")
    return s


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed X``)."""
    if "\\boxed " in text:
        return text.split("\\boxed ")[-1].split("$")[0]
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return None
    open_at = text.find("{", idx)
    if open_at < 0 or text[idx:open_at] not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(open_at, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


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


_CLEANUPS: tuple[tuple[str, str], ...] = (
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
    ("\\le(", "("), ("\\le[", "["), ("\\!", ""), ("\\,", ""), ("\\%", ""), ("%", ""),
    ("\\displaystyle", ""), ("^{\\prime}", "'"),
)


def clean_latex(s: str) -> str:
    """A light clean-up beyond Minerva's: display variants and sizing commands dropped."""
    for before, after in _CLEANUPS:
        s = s.replace(before, after)
    return s.strip().rstrip(".")


def _split_top(s: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _tuple_parts(s: str) -> tuple[str, str, list[str]] | None:
    """``(a,b]`` -> ``("(", "]", ["a", "b"])`` when the brackets wrap the whole string."""
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return None
    depth = 0
    for i, c in enumerate(s):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth == 0 and i < len(s) - 1:
            return None  # the first bracket closes before the end: not one tuple
    inner = _split_top(s[1:-1])
    return (s[0], s[-1], inner) if len(inner) > 1 else None


def is_equiv(pred: str, gold: str, timeout: float = math_equiv.DEFAULT_TIMEOUT_S) -> bool:
    """Whether two *normalised* answers are equivalent (see the module docstring)."""
    if not pred or not gold or pred == INVALID:
        return False
    if pred == gold:
        return True
    a, b = clean_latex(pred), clean_latex(gold)
    if a == b:
        return True
    ta, tb = _tuple_parts(a), _tuple_parts(b)
    if ta is not None or tb is not None:
        if ta is None or tb is None or ta[:2] != tb[:2] or len(ta[2]) != len(tb[2]):
            return False
        return all(is_equiv(x, y, timeout) for x, y in zip(ta[2], tb[2], strict=True))
    return math_equiv.equivalent(a, b, timeout)


_ROW_BREAK = re.compile(r"\\\\\s+")


def _normalized(ans: str | None) -> str | None:
    if ans is None or len(ans) > MAX_ANSWER_CHARS:
        return None
    # Minerva drops every "\\ " (backslash, space): a row break "\\\\ 2" would become "\\2"
    return normalize_final_answer(_ROW_BREAK.sub(r"\\\\", ans))


def grade_math(text: str, reference: str, timeout: float = math_equiv.DEFAULT_TIMEOUT_S,
               ) -> GradeResult:
    gold = _normalized(reference) or ""
    final = extract_final_answer(text)
    flexible_raw = final
    if flexible_raw is None:
        flexible_raw = last_boxed(text)
    if flexible_raw is None:
        flexible_raw = last_math(text)
    strict_ok = False
    norm_final = _normalized(final)
    if norm_final is not None:
        strict_ok = is_equiv(norm_final, gold, timeout)
    if flexible_raw is final:
        flexible_ok = strict_ok
    else:
        norm_flex = _normalized(flexible_raw)
        flexible_ok = norm_flex is not None and is_equiv(norm_flex, gold, timeout)
    extracted = norm_final if norm_final is not None else _normalized(flexible_raw)
    return GradeResult(float(strict_ok), float(flexible_ok), extracted)


@cache
def _exemplars(path: str | None) -> tuple[Exemplar, ...]:
    rows = data.load_jsonl("math", "minerva_exemplars.jsonl", path)
    return tuple(Exemplar(r["problem"], r["solution"]) for r in rows)


class MathTask(Task):
    name = "math"
    version = "1"
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

