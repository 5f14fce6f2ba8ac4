"""What gvstore shows people and machines: rich tables and text for people, JSON for machines.

This module builds what is shown and owns the two consoles; it prints nothing itself. The
printing is done by the top layer only: ``gvstore/cli/console.py`` for the commands and
``stages/common.py`` for the DVC stages. Everything shown is built here, and everything that
comes from data (model, task and
verifier names, keys, ids, references, model output, error text) is printed as text:

* the consoles never read rich markup (``[bold]``, ``[link=...]``) or emoji codes in what they
  print: a name ``[/]`` prints as ``[/]``; styling is done with :class:`rich.text.Text` styles;
* :func:`safe_text` shows control characters escaped (``ESC`` as ``\\x1b``, ``CR`` as ``\\r``,
  C1 controls, line and paragraph separators and bidirectional overrides as ``\\u....``), so no
  escape sequence from data (an OSC window title, a clear screen, an OSC 8 hyperlink) reaches a
  terminal or a pipe. Every string a console renders, every table cell and title, progress bar
  descriptions, spinner texts and the one-line error go through it;
* JSON (``--json``) is ASCII with every control character escaped by ``json.dumps``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.status import Status
from rich.style import Style
from rich.table import Table
from rich.text import Text


def _escape(code: int) -> str:
    special = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if code in special:
        return special[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 controls, DEL, C1 controls, line/paragraph separators and the bidirectional embeddings,
# overrides and isolates (which reorder what a terminal shows).
_UNSAFE = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A)]
_ONE_LINE = {c: _escape(c) for c in _UNSAFE}
_MULTI_LINE = {c: e for c, e in _ONE_LINE.items() if c not in (0x09, 0x0A)}


def safe_text(value: Any, *, multiline: bool = False) -> str:
    """``value`` as a string safe to print: every control character shown escaped.

    ``ESC`` becomes ``\\x1b``, ``BEL`` ``\\x07``, ``CR`` ``\\r``, a newline ``\\n`` (kept as a line
    break with ``multiline``, as is a tab). Markup needs no escaping here: the consoles of this
    module never interpret it.
    """
    return str(value).translate(_MULTI_LINE if multiline else _ONE_LINE)


def one_line(message: Any) -> str:
    """``message`` on one line: runs of spaces, tabs and newlines become one space, every other
    control character is shown escaped."""
    return safe_text(" ".join(re.split(r"[ \t\n]+", str(message).strip(" \t\n"))))


def styled(text: Any, style: str | Style = "", *, multiline: bool = False) -> Text:
    """A :class:`rich.text.Text` of ``text`` (made safe) in ``style``: how to style output."""
    return Text(safe_text(text, multiline=multiline), style=style)


class _SafeConsole(Console):
    """A console that prints every string as text: no markup or emoji codes read, control
    characters escaped (newlines and tabs kept)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(safe_text(text, multiline=True), **kwargs)

    def status(self, status: RenderableType, **kwargs: Any) -> Status:
        if isinstance(status, str):  # rich would read markup in it
            status = styled(status, multiline=True)
        return super().status(status, **kwargs)


# Off a terminal (pipes, files, CI logs) rich would wrap at 80 columns; tables read better
# wider: $COLUMNS if set, else 140.
_cols = os.environ.get("COLUMNS", "")
console: Console = _SafeConsole(
    width=None if sys.stdout.isatty() else (int(_cols) if _cols.isdigit() and int(_cols) >= 40
                                            else 140),
    markup=False, emoji=False, highlight=False)
err_console: Console = _SafeConsole(stderr=True, markup=False, emoji=False, highlight=False)


def line_text(message: Any, style: str | Style = "") -> Text:
    """One note line (newlines kept) of safe text in ``style``: print it with
    ``soft_wrap=True`` so it is never wrapped."""
    return styled(message, style, multiline=True)


def error_text(label: str, message: Any) -> Text:
    """``label: message`` on one line (the label red on a terminal)."""
    return Text.assemble((safe_text(label) + ": ", "red"), one_line(message))


def error_block_text(message: Any) -> Text:
    """``error: message`` keeping the message's lines (a caret under a fault)."""
    return Text.assemble(("error: ", "red"), safe_text(message, multiline=True))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_text(data: Any) -> str:
    """``data`` as indented ASCII JSON (NaN and infinities become null), with a final newline."""
    # ensure_ascii: every control character and every non-ASCII character is \\u-escaped
    return json.dumps(_clean(data), indent=2, sort_keys=False, ensure_ascii=True) + "\n"


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: ``-`` for None and non-finite numbers, a number to ``digits``, any other
    value as one line of safe text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
    return safe_text(value)


WHOLE_WORDS = ("spec", "sweep", "template", "filter")
"""Columns whose header has one of these words hold specs: never wrapped or cut."""


def _whole_floats(rows: Sequence[Sequence[Any]], i: int) -> bool:
    """Whether column ``i`` holds floats only (and None), every one a whole number."""
    seen = False
    for r in rows:
        v = r[i]
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            continue
        if not isinstance(v, float) or not v.is_integer() or abs(v) >= 1e15:
            return False
        seen = True
    return seen


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    lift: Sequence[str] = (),
) -> Table:
    """A rich table of already-ordered rows; every title, header and cell printed as text.

    A cell is :func:`fmt` of its value (one line), or a :class:`rich.text.Text` the caller built
    from safe text (e.g. a value with its interval on a second line). So that a table reads
    the same in every command:

    * a column whose numbers are all whole floats (``8.0``, ``2.0``) prints them as integers;
    * a blank header is shown as ``field`` (the name column of a name/value table);
    * a column of specs (its header has a word of ``WHOLE_WORDS``) is never cut inside a name:
      a spec longer than ``SPEC_LINE`` is broken into lines after commas
      (``wrap_at_commas``) and the column is as wide as its longest line; any other column
      folds a cell too long for it onto more lines (``overflow="fold"``), never cutting it
      short with an ellipsis.

    Columns named in ``lift`` whose value is the same in every row move into the title
    (``task=arith generator=...``), which keeps wide result tables readable.
    """
    keep = list(range(len(columns)))
    lifted = []
    if rows:
        for i, c in enumerate(columns):
            if c in lift and len({fmt(r[i]) for r in rows}) == 1:
                lifted.append(f"{c}={fmt(rows[0][i])}")
                keep.remove(i)
    if lifted:
        title = f"{title or ''}\n{'  '.join(lifted)}".strip()
    whole = {i for i in keep if _whole_floats(rows, i)}
    # Text, not str, everywhere: safe and never read as markup, whichever console prints it
    t = Table(title=None if title is None else styled(title, "table.title", multiline=True),
              title_justify="left")
    specs = {i for i in keep if any(w in columns[i].lower() for w in WHOLE_WORDS)}
    cells = [[_cell(row[i], i in whole, i in specs) for i in keep] for row in rows]
    for j, i in enumerate(keep):
        name = columns[i] if columns[i].strip() else "field"
        if i in specs:
            width = max([len(name), *(max(map(len, c.plain.split("\n")))
                                      for row in cells for c in row[j:j + 1])])
            t.add_column(styled(name), no_wrap=True, min_width=width)
        else:
            t.add_column(styled(name), overflow="fold")
    for row_cells in cells:
        t.add_row(*row_cells)
    return t


def _cell(value: Any, as_int: bool, spec: bool) -> Text:
    if isinstance(value, Text):
        return value
    if as_int and isinstance(value, float) and math.isfinite(value):
        return Text(str(int(value)))
    text = fmt(value)
    return Text(wrap_at_commas(text) if spec else text)


SPEC_LINE = 40
"""A spec longer than this is shown on several lines, broken after commas."""


def wrap_at_commas(text: str, width: int = SPEC_LINE) -> str:
    """``text`` on lines of at most ``width`` characters where it can be, each line break
    right after a comma (a part longer than ``width`` keeps its own line whole): a long spec
    is never cut inside a name, and its characters are all kept."""
    if len(text) <= width or "," not in text:
        return text
    lines, line = [], ""
    for part in re.split(r"(?<=,)", text):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])
