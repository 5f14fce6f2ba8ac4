"""Progress bars for long work, silenced when not on a terminal or when asked."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
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


class StepBar:
    """The bar of one model step (``gvstore.steps.base.Progress``): ``title`` while it runs,
    ``loading`` while the back end is made; ``rate(done, tokens, seconds)`` is its rate text,
    timed from the first tick. The bar shows from the step's first report (a step that fails
    while planning shows none)."""

    def __init__(self, quiet: bool, title: str, loading: str,
                 rate: Callable[[int, int, float], str]) -> None:
        self.quiet, self.title, self.loading_title, self.rate = quiet, title, loading, rate
        self.bar: Progress | None = None
        self.job: TaskID | None = None
        self.start = 0.0

    def _update(self, **fields: Any) -> None:
        if self.bar is None:
            self.bar = progress(self.quiet)
            self.bar.start()
            self.job = self.bar.add_task(self.title, total=None, rate="")
        assert self.job is not None
        self.bar.update(self.job, **fields)

    def tick(self, done: int, todo: int, tokens: int) -> None:
        if not self.start:
            self.start = time.monotonic()
        dt = max(time.monotonic() - self.start, 1e-9)
        self._update(completed=done, total=todo, rate=self.rate(done, tokens, dt))

    def loading(self, started: bool) -> None:
        self._update(description=self.loading_title if started else self.title)

    def finish(self, made: int) -> None:
        self._update(completed=made, total=max(made, 1))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def step_bar(title: str, loading: str, rate: Callable[[int, int, float], str],
             quiet: bool = False) -> Iterator[StepBar]:
    """A progress bar (``progress``) for one step's job."""
    sb = StepBar(quiet, title, loading, rate)
    try:
        yield sb
    finally:
        sb.close()


def generate_bar(model: str, task: str, quiet: bool = False) -> AbstractContextManager[StepBar]:
    """The progress bar of generating ``model``'s samples of ``task``."""
    return step_bar(f"generate {model} {task}", f"loading {model}",
                    lambda done, tokens, dt: f"{done / dt:.2f} samples/s {tokens / dt:.1f} tok/s",
                    quiet)


def verify_bar(method: str, verifier: str, task: str,
               quiet: bool = False) -> AbstractContextManager[StepBar]:
    """The progress bar of one verifier's ``method`` on ``task``."""
    unit = "matches" if method == "tournament" else "verifications"
    return step_bar(f"verify {method} {verifier} {task}", f"loading {verifier}",
                    lambda done, tokens, dt: f"{done / dt:.2f} {unit}/s", quiet)
