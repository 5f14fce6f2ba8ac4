"""Equivalence of two MATH answers: string rules (``is_equiv``), then SymPy in a worker process
with a hard time limit (``equivalent``).

SymPy runs in a separate process that the caller kills when it overruns: a parse or a
simplification can hang in C code (a huge integer power) where no signal reaches it, or eat
memory, so neither a signal nor a thread would bound it. The worker is started on first use,
reused across calls, and restarted after a kill or a crash. Model text is only ever given to
SymPy's LaTeX *parser* (the ``lark`` back end, which needs no ANTLR runtime); nothing is passed
to ``eval`` or ``exec``. Whatever goes wrong (no parse, an exception, a timeout, a dead worker)
is a non-match.

``lark`` rather than ANTLR: SymPy's ANTLR back end needs ``antlr4-python3-runtime`` 4.11,
while hydra-core (a dependency of DVC) pins 4.9, so the two cannot share an environment.
The lark grammar lacks ``\\pi``; it is swapped for a free letter and substituted back.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import subprocess
import sys
import threading
from decimal import Decimal
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
INVALID = "[invalidanswer]"  # lm-eval's mark of a text without a final-answer line
MAX_CHARS = 200  # longer answers are not given to SymPy (string match only)
MEMORY_LIMIT = 2 << 30

_PI = re.compile(r"\\pi(?![a-zA-Z])")


def _parse(s: str) -> Any:
    import sympy
    from sympy.parsing.latex import parse_latex

    free = next((c for c in "PQRSTUVWXYZ" if c not in s), None)
    if _PI.search(s):
        if free is None:
            raise ValueError("no free letter for pi")
        s = _PI.sub(" " + free + " ", s)
    expr = parse_latex(s, backend="lark")
    if free is not None:
        expr = expr.subs(sympy.Symbol(free), sympy.pi)
    return expr


def equivalent_now(a: str, b: str) -> bool:
    """Whether two LaTeX strings parse to expressions whose difference simplifies to 0.

    Runs in the calling process with no time limit: use ``equivalent`` for model text.
    """
    import sympy

    ea, eb = _parse(a), _parse(b)
    if isinstance(ea, sympy.MatrixBase) or isinstance(eb, sympy.MatrixBase):
        if not (isinstance(ea, sympy.MatrixBase) and isinstance(eb, sympy.MatrixBase)):
            return False
        if ea.shape != eb.shape:
            return False
        return bool(all(sympy.simplify(x - y) == 0 for x, y in zip(ea, eb, strict=True)))
    if not (isinstance(ea, sympy.Expr) and isinstance(eb, sympy.Expr)):
        return bool(ea == eb)
    diff = ea - eb
    if diff == 0:
        return True
    return bool(sympy.simplify(diff) == 0)


def equivalent_lm_eval(a: str, b: str) -> bool:
    """lm-eval ``minerva_math.is_equiv`` as it is: ``simplify(a - b) == 0``, nothing else."""
    import sympy

    return bool(sympy.simplify(_parse(a) - _parse(b)) == 0)


_MODES = {"gvstore": equivalent_now, "lm-eval": equivalent_lm_eval}


def _serve() -> None:  # pragma: no cover - runs in the child process
    """The worker loop: one JSON ``[a, b, mode]`` per stdin line, one ``true``/``false`` back."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    with contextlib.suppress(Exception):
        equivalent_now("1", "1")  # import SymPy and build the grammar before the first request
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            a, b, mode = json.loads(line)
            ok = _MODES[mode](str(a), str(b))
        except BaseException:  # noqa: BLE001 - any failure of SymPy is a non-match
            ok = False
        sys.stdout.write("true\n" if ok else "false\n")
        sys.stdout.flush()


class _Worker:
    """One ``python -m gvstore.tasks.math_equiv`` process, talked to over pipes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self, startup: float) -> subprocess.Popen[bytes] | None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gvstore.tasks.math_equiv"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.proc = proc
        if self._readline(startup) != "ready":
            self.stop()
            return None
        return proc

    def _readline(self, timeout: float) -> str | None:
        proc = self.proc
        if proc is None or proc.stdout is None:
            return None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = proc.stdout.readline()
        return line.decode().strip() if line else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(5)
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()

    def ask(self, a: str, b: str, timeout: float, startup: float, mode: str = "gvstore",
            ) -> bool:
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                self.stop()
                proc = self._start(startup)
                if proc is None:
                    return False
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps([a, b, mode]).encode() + b"\n")
                proc.stdin.flush()
            except OSError:
                self.stop()
                return False
            answer = self._readline(timeout)
            if answer is None:
                self.stop()  # overran or died: kill it; the next call starts a new one
                return False
            return answer == "true"


_WORKER = _Worker()


def equivalent(a: str, b: str, timeout: float = DEFAULT_TIMEOUT_S, mode: str = "gvstore",
               ) -> bool:
    """``equivalent_now`` (or, with ``mode="lm-eval"``, ``equivalent_lm_eval``) in the worker
    process, bounded by ``timeout`` seconds; never raises."""
    if mode not in _MODES:
        raise ValueError(f"unknown equivalence mode {mode!r}")
    if not a or not b or len(a) > MAX_CHARS or len(b) > MAX_CHARS:
        return False
    return _WORKER.ask(a, b, timeout, startup=60.0, mode=mode)


def shutdown() -> None:
    """Stop the worker process (it is a daemon, so it also ends with the interpreter)."""
    with _WORKER.lock:
        _WORKER.stop()


# ---- the string rules, before SymPy -------------------------------------------------------------

_CLEANUPS: tuple[tuple[str, str], ...] = (
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
    ("\\le(", "("), ("\\le[", "["), ("\\!", ""), ("\\,", ""), ("\\%", ""), ("%", ""),
    ("\\displaystyle", ""), ("^{\\prime}", "'"),
)
_BARE_DECIMAL = re.compile(r"(?<![0-9A-Za-z}])\.(?=[0-9])")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_WORD = re.compile(r"\(([A-Za-z]+)\)|([A-Za-z]+)")


def clean_latex(s: str) -> str:
    """A light clean-up beyond Minerva's: display variants and sizing commands dropped, a
    decimal with no leading digit given one (``.5`` -> ``0.5``)."""
    for before, after in _CLEANUPS:
        s = s.replace(before, after)
    return _BARE_DECIMAL.sub("0.", s.strip().rstrip("."))


def _word(s: str) -> str | None:
    """The letters of a letter answer or a word (``ACE``, ``Monday``, ``(C)`` -> ``C``)."""
    m = _WORD.fullmatch(s)
    return None if m is None else (m.group(1) or m.group(2))


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
    """``(a,b]`` -> ``("(", "]", ["a", "b"])`` when the brackets wrap the whole string; a bare
    list ``a,b`` -> ``("", "", ["a", "b"])``."""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        depth = 0
        for i, c in enumerate(s):
            depth += c in "([{"
            depth -= c in ")]}"
            if depth == 0 and i < len(s) - 1:
                break  # the first bracket closes before the end: not one tuple
        else:
            inner = _split_top(s[1:-1])
            return (s[0], s[-1], inner) if len(inner) > 1 else None
    parts = _split_top(s)
    return ("", "", parts) if len(parts) > 1 else None


def is_equiv(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two *normalised* answers are equivalent (``gvstore.tasks.math_task`` lists the
    rules): equal strings, equal after ``clean_latex``, tuples element by element, letters and
    words as strings, decimals exactly; else SymPy (``equivalent``)."""
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
    wa, wb = _word(a), _word(b)
    if wa is not None or wb is not None:
        return wa == wb  # letters name points, choices, days: never a commutative product
    if _DECIMAL.fullmatch(a) and _DECIMAL.fullmatch(b):
        return Decimal(a) == Decimal(b)
    return equivalent(a, b, timeout)


if __name__ == "__main__":
    _serve()
