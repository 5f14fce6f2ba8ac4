"""Progress bars for long work, silenced when not on a terminal or when asked."""

from __future__ import annotations

import os

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from gvstore.output import err_console, safe_text


class _SafeTextColumn(TextColumn):
    """A text column that prints its text as text: descriptions hold model and task names, so
    no markup is read and control characters are shown escaped."""

    def render(self, task: Task) -> Text:
        return Text(safe_text(self.text_format.format(task=task)), style=self.style,
                    justify=self.justify)


def progress(quiet: bool = False) -> Progress:
    """A rich progress bar on stderr; disabled by ``quiet`` or ``GVSTORE_NO_PROGRESS=1``."""
    disable = quiet or os.environ.get("GVSTORE_NO_PROGRESS") == "1"
    return Progress(
        _SafeTextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _SafeTextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disable,
        transient=False,
    )
