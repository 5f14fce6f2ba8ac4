"""What every model step shares: the summary's common counts, the progress callback and the
one batch loop.

A step (generate, verify, tournament) plans every request before any model call; each request
knows its record key. The loop takes the folder's lock, asks the store which keys are missing,
makes the back end only if any is, runs each batch that holds a missing key, and writes each
batch whole (one ``add_batch``: one segment, so a killed run keeps all of a batch or none).
Requests of a batch that are already stored are computed again only to keep the batch's
layout (``extra``) and are not written. The library prints nothing: progress goes to the
callback, results into the summary.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from gvstore.backends.base import Backend
from gvstore.records import Provenance, Record
from gvstore.store import Store
from gvstore.writer import Writer

if TYPE_CHECKING:
    from gvstore.params import RunnerParams

ProgressCallback = Callable[[int, int, int], None]
"""Called as ``(done, to do, tokens so far)``; ``tokens`` is 0 for steps that count none."""


class Progress(Protocol):
    """How a whole step reports while it runs (the CLI and the stages draw a bar from it:
    ``gvstore.progress.step_bar``)."""

    def tick(self, done: int, todo: int, tokens: int) -> None: ...

    def loading(self, started: bool) -> None:
        """True just before the back end is made (a model load), False once it is."""

    def finish(self, made: int) -> None:
        """The step is done; it wrote ``made`` records."""


@dataclass(frozen=True)
class Announced:
    """A back-end factory that tells ``progress`` while it makes the back end (a model load).
    The Ray runner ships ``factory`` to its workers and keeps ``progress`` here."""

    factory: Callable[[], Backend]
    progress: Progress | None

    def __call__(self) -> Backend:
        if self.progress is None:
            return self.factory()
        self.progress.loading(True)
        backend = self.factory()
        self.progress.loading(False)
        return backend


def announced(factory: Callable[[], Backend], progress: Progress | None
              ) -> Callable[[], Backend]:
    """``factory``, telling ``progress`` when the back end is being made."""
    return factory if progress is None else Announced(factory, progress)


def unwrap(factory: Callable[[], Backend]
           ) -> tuple[Callable[[], Backend], Callable[[bool], None] | None]:
    """The plain factory under ``announced``'s wrapper, and its progress's loading notice."""
    if isinstance(factory, Announced):
        return factory.factory, (factory.progress.loading if factory.progress else None)
    return factory, None


def ticks(progress: Progress | None) -> ProgressCallback | None:
    return None if progress is None else progress.tick


def finished(summary: S, progress: Progress | None) -> S:
    """``summary``, once ``progress`` is told the step is done."""
    if progress is not None:
        progress.finish(summary.made)
    return summary


S = TypeVar("S", bound="StepSummary")


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


R = TypeVar("R", bound=Keyed)
O = TypeVar("O")  # noqa: E741 -- one model output
T = TypeVar("T")


def cut(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive batches of ``size``."""
    return [list(items[k:k + size]) for k in range(0, len(items), size)]


def pack(rows: Sequence[Sequence[T]], size: int) -> list[list[T]]:
    """Batches of at most ``size`` over consecutive rows (a step's rows: one per sample
    index). A row of ``size`` items or more is cut on its own (``cut``); shorter rows are
    joined whole while they fit, so a task with few prompts still fills its batches (2 sudoku
    prompts x n = 16 at batch 32: one batch, not 16 of 2). A batch never splits a short row,
    so later rows (a raised n) never change an earlier full batch."""
    out: list[list[T]] = []
    open_: list[T] = []
    for row in rows:
        if len(row) >= size:
            if open_:
                out.append(open_)
                open_ = []
            out.extend(cut(row, size))
        elif len(open_) + len(row) <= size:
            open_.extend(row)
        else:
            out.append(open_)
            open_ = list(row)
    if open_:
        out.append(open_)
    return out


@dataclass
class StepSummary:
    """The counts every step reports. ``made``: records written now; ``extra``: calls made
    again only to keep a partly written batch's layout (not written)."""

    requested: int = 0
    present: int = 0
    made: int = 0
    batches_run: int = 0
    extra: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0

    def counts(self, made: str, extra: str) -> dict[str, object]:
        """The counts under the names a step's ``as_dict`` gives them."""
        return {"requested": self.requested, "present": self.present, made: self.made,
                "batches_run": self.batches_run, extra: self.extra}

    def timings(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 3),
                "model_seconds": round(self.model_seconds, 3)}


@dataclass
class Batches(Generic[R, O]):
    """How one step turns a batch into records: ``call`` asks the back end for the outputs of a
    batch, ``make`` builds the record of one request from its output; ``written`` sees each
    batch's records once stored (tallies, progress)."""

    call: Callable[[Backend, Sequence[R]], Sequence[O]]
    make: Callable[[R, O, Provenance], Record]
    written: Callable[[list[Record]], None] = lambda recs: None


def write_batches(w: Writer, batches: Sequence[Sequence[R]], missing: set[str],
                  summary: StepSummary, backend: Callable[[], Backend],
                  how: Batches[R, O]) -> None:
    """Run every batch that holds a missing key and write it whole. ``backend`` is called
    before each batch run (it may make the back end on first use)."""
    host = socket.gethostname()
    for batch in batches:
        if not any(r.key in missing for r in batch):
            continue
        b = backend()
        t0 = time.monotonic()
        outputs = how.call(b, batch)
        dt = time.monotonic() - t0
        summary.model_seconds += dt
        write_batch(w, batch, outputs, missing, summary, how, host=host, seconds=dt)


def write_batch(w: Writer, batch: Sequence[R], outputs: Sequence[O], missing: set[str],
                summary: StepSummary, how: Batches[R, O], *, host: str, seconds: float) -> None:
    """Write the records of one answered batch whole: those of its missing keys (the others
    were computed again only for the layout: ``extra``), with provenance naming ``host``
    and an equal share of the batch's ``seconds``."""
    summary.batches_run += 1
    recs: list[Record] = []
    for r, out in zip(batch, outputs, strict=True):
        if r.key not in missing:
            summary.extra += 1
            continue
        prov = Provenance(time=time.time(), host=host, duration_s=seconds / len(batch))
        recs.append(how.make(r, out, prov))
    written = w.add_batch(recs)
    summary.made += len(recs)
    how.written(written)


def run_batches(store: Store, folder: str, kind: str, batches: Sequence[Sequence[R]],
                summary: StepSummary, backend_factory: Callable[[], Backend],
                how: Batches[R, O], *, flush_seconds: float = 30.0,
                before: Callable[[Writer], None] | None = None,
                started: Callable[[int], None] | None = None,
                runner: RunnerParams | None = None) -> None:
    """The one batch loop: ``summary.requested`` and ``present`` from the store, then every
    batch with a missing ``kind`` record. ``before`` runs under the lock before any model call;
    ``started(to do)`` once the back end is made (on Ray: before the pool starts). ``runner``
    of kind ``ray``: the batches run on Ray (``steps.ray_runner``), the records are written
    here as with the local runner."""
    keys = [r.key for b in batches for r in b]
    summary.requested = len(keys)
    # The folder's lock is taken before planning: a second writer stops here, before it
    # loads a model or repeats the first one's work.
    with store.writer(folder, flush_seconds=flush_seconds) as w:
        missing = set(store.missing(keys, kind=kind))
        summary.present = summary.requested - len(missing)
        if before is not None:
            before(w)
        if not missing:
            return
        if runner is not None and runner.kind == "ray":
            if started is not None:
                started(len(missing))
            on_ray(runner, w, batches, missing, summary, backend_factory, how)
        else:
            backend = backend_factory()
            if started is not None:
                started(len(missing))
            write_batches(w, batches, missing, summary, lambda: backend, how)
    auto_compact(store, folder)


def auto_compact(store: Store, folder: str) -> None:
    """Compact the folder a run wrote when it holds many small segments
    (``gvstore.compact.needs_compaction``); a folder another writer took meanwhile is left
    for the next run."""
    import contextlib

    from gvstore import compact
    from gvstore.lock import StoreLocked

    path = store.root / folder
    if compact.needs_compaction(path):
        with contextlib.suppress(StoreLocked):
            compact.compact_folder(path)


def on_ray(runner: RunnerParams, w: Writer, batches: Sequence[Sequence[R]], missing: set[str],
           summary: StepSummary, backend_factory: Callable[[], Backend],
           how: Batches[R, O]) -> None:
    """``write_batches`` on Ray: the plain factory goes to the workers, the loading notice
    stays here."""
    from gvstore.steps import ray_runner

    factory, on_start = unwrap(backend_factory)
    ray_runner.write_batches(runner, w, batches, missing, summary, factory, how, on_start)
