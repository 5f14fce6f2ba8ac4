"""Progress bars for long work, silenced when not on a terminal or when asked."""

from __future__ import annotations

import os

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gvstore.output import err_console


def progress(quiet: bool = False) -> Progress:
    """A rich progress bar on stderr; disabled by ``quiet`` or ``GVSTORE_NO_PROGRESS=1``."""
    disable = quiet or os.environ.get("GVSTORE_NO_PROGRESS") == "1"
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disable,
        transient=False,
    )
