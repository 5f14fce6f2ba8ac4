"""Symbolic equivalence of two LaTeX answers, in a worker process with a hard time limit.

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

import multiprocessing as mp
import re
import threading
from multiprocessing.connection import Connection
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
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


def _worker(conn: Connection) -> None:  # pragma: no cover - runs in the child process
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    import sympy  # noqa: F401 - import once, before the first request
    from sympy.parsing.latex import parse_latex

    try:
        parse_latex("1", backend="lark")  # build the grammar once
    except Exception:
        pass
    while True:
        try:
            a, b = conn.recv()
        except (EOFError, OSError):
            return
        try:
            ok = equivalent_now(a, b)
        except BaseException:  # noqa: BLE001 - any failure of SymPy is a non-match
            ok = False
        conn.send(ok)


class _Worker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: Any = None
        self.conn: Connection | None = None

    def _start(self) -> Connection:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child,), daemon=True, name="gvstore-sympy")
        proc.start()
        child.close()
        self.proc, self.conn = proc, parent
        return parent

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None

    def ask(self, a: str, b: str, timeout: float, startup: float) -> bool:
        with self.lock:
            fresh = self.conn is None or self.proc is None or not self.proc.is_alive()
            if fresh:
                self.stop()
                conn = self._start()
            else:
                assert self.conn is not None
                conn = self.conn
            try:
                conn.send((a, b))
                # a fresh worker first imports SymPy: that time is not the answer's fault
                if conn.poll(timeout + (startup if fresh else 0.0)):
                    return bool(conn.recv())
            except (EOFError, OSError):
                pass
            self.stop()  # overran or died: kill it, the next call starts a new one
            return False


_WORKER = _Worker()


def equivalent(a: str, b: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """``equivalent_now`` in the worker process, bounded by ``timeout`` seconds; never raises."""
    if not a or not b or len(a) > MAX_CHARS or len(b) > MAX_CHARS:
        return False
    return _WORKER.ask(a, b, timeout, startup=60.0)


def shutdown() -> None:
    """Stop the worker process (it is a daemon, so it also ends with the interpreter)."""
    with _WORKER.lock:
        _WORKER.stop()
