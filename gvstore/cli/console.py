"""The commands' printing: notes and errors on stderr, results on stdout (rich or JSON).

What is printed is built by ``gvstore.output`` (safe text, tables, JSON text); this module
and ``stages/common.py`` are the only places that print it.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.style import Style

from gvstore.output import (
    console,
    err_console,
    error_block_text,
    error_text,
    json_text,
    line_text,
)


def note(message: Any, *, err: bool = True, style: str | Style = "") -> None:
    """Print one line of text (stderr by default), made safe, never wrapped."""
    (err_console if err else console).print(line_text(message, style), soft_wrap=True)


def error_line(label: str, message: Any) -> None:
    """``label: message`` on one line of stderr."""
    err_console.print(error_text(label, message), soft_wrap=True)


def error_block(message: Any) -> None:
    """``error: message`` on stderr keeping the message's lines (a caret under a fault)."""
    err_console.print(error_block_text(message), soft_wrap=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN and infinities become null)."""
    sys.stdout.write(json_text(data))
    sys.stdout.flush()


def emit(data: Any, as_json: bool, *renderables: Any) -> None:
    """``data`` as JSON if ``as_json``, else the human renderables."""
    if as_json:
        print_json(data)
    else:
        for r in renderables:
            console.print(r)
