"""One place that prints results: a rich table for people, JSON for machines."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# Off a terminal (pipes, files, CI logs) rich would wrap at 80 columns; tables read better
# wider: $COLUMNS if set, else 140.
_cols = os.environ.get("COLUMNS", "")
console = Console(width=None if sys.stdout.isatty() else
                  (int(_cols) if _cols.isdigit() and int(_cols) >= 40 else 140))
err_console = Console(stderr=True)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN and infinities become null)."""
    sys.stdout.write(json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    lift: Sequence[str] = (),
) -> Table:
    """A rich table of already-ordered rows.

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
    t = Table(title=title, title_justify="left")
    for i in keep:
        t.add_column(columns[i])
    for row in rows:
        t.add_row(*(fmt(row[i]) for i in keep))
    return t


def emit(data: Any, as_json: bool, *renderables: Any) -> None:
    """``data`` as JSON if ``as_json``, else the human renderables."""
    if as_json:
        print_json(data)
    else:
        for r in renderables:
            console.print(r)
