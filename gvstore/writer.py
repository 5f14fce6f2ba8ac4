"""The store's writer: buffers records and writes them as segments into one store folder.

Opening a writer takes the folder's lock (``gvstore.lock``: one writer per folder) and tidies
what dead writers left (``gvstore.segments.recover``); each flush is one segment
(``gvstore.segments.write_segment``); closing makes the journal durable and gives the lock
back. Get one from ``Store.writer``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import zstandard

from gvstore import journal, lock
from gvstore.errors import GvstoreError
from gvstore.lock import StoreLocked
from gvstore.records import Record, encoder, seal
from gvstore.segments import io_error, recover, write_segment

DEFAULT_FLUSH_RECORDS = 4096
DEFAULT_FLUSH_SECONDS = 30.0
DEFAULT_LEVEL = 6


class Writer:
    """Buffers records and writes them as segments into one store folder.

    A segment is flushed every ``flush_records`` records or ``flush_seconds`` seconds (checked
    on each ``add``), and on ``close``; a crash loses at most the unflushed batch. Leaving the
    ``with`` block flushes too, even on an exception: every buffered record is whole.
    """

    def __init__(
        self,
        folder: Path,
        *,
        flush_records: int = DEFAULT_FLUSH_RECORDS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        level: int = DEFAULT_LEVEL,
    ) -> None:
        if flush_records < 1:
            raise GvstoreError(f"flush_records must be >= 1, got {flush_records}")
        self.folder = folder
        self.flush_records = flush_records
        self.flush_seconds = flush_seconds
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._lines: list[bytes] = []
        self._last_flush = time.monotonic()
        self.written: list[Path] = []
        self.count = 0
        self._locked = False
        self._made_folder = False
        self._open_error: GvstoreError | None = None
        self._open()

    def _open(self) -> None:
        """Create the folder and take its lock. Another live writer is an error at once; a
        folder that cannot be written (read-only store) is an error only if there is
        something to write, so a run with nothing to do still works on a read-only store."""
        try:
            if not self.folder.is_dir():
                self.folder.mkdir(parents=True, exist_ok=True)
                self._made_folder = True
            fresh = lock.acquire(self.folder)
        except StoreLocked:
            raise
        except OSError as exc:
            self._open_error = io_error(exc, self.folder, "open the store folder")
            return
        self._locked = True
        self._open_error = None
        if fresh:
            try:
                recover(self.folder)
            except OSError as exc:
                self._release()
                raise io_error(exc, self.folder, "tidy the store folder") from exc

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            lock.release(self.folder)
            if self._made_folder:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()  # only if nothing was written into it

    def _maybe_flush(self) -> None:
        if (
            len(self._lines) >= self.flush_records
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def add(self, rec: Record) -> Record:
        """Append one record (sealed here if its key or id is empty); returns it sealed."""
        if not rec.id or not rec.key:
            rec = seal(rec)
        self._lines.append(encoder.encode(rec))
        self.count += 1
        self._maybe_flush()
        return rec

    def extend(self, recs: Iterable[Record]) -> None:
        for rec in recs:
            self.add(rec)

    def add_batch(self, recs: Iterable[Record]) -> list[Record]:
        """Append records that belong together (one model batch): they land in one segment,
        so a crash keeps all of them or none. Returns them sealed."""
        sealed = [r if (r.id and r.key) else seal(r) for r in recs]
        self._lines.extend(encoder.encode(r) for r in sealed)
        self.count += len(sealed)
        self._maybe_flush()
        return sealed

    def flush(self) -> Path | None:
        """Write the buffered records as one segment; returns its path (None if empty)."""
        self._last_flush = time.monotonic()
        if not self._lines:
            return None
        if not self._locked:
            self._open()
            if self._open_error is not None:
                raise self._open_error
        data = self._compressor.compress(b"\n".join(self._lines) + b"\n")
        path = write_segment(self.folder, data)  # raises GvstoreError; the lines stay buffered
        self._lines = []
        self.written.append(path)
        return path

    def close(self) -> None:
        """Flush, make the journal durable, and give the folder's lock back (also if the flush
        fails)."""
        try:
            self.flush()
            if self.written and self._locked:
                try:
                    journal.sync(self.folder)
                except OSError as exc:
                    raise io_error(exc, journal.journal_path(self.folder), "sync") from exc
        finally:
            self._lines = []
            self._release()

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
