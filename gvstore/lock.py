"""One writer per store folder: an exclusive ``flock`` on ``<folder>/.lock``.

The lock file holds the holder's pid (for the message a second writer gets). The kernel drops
an ``flock`` when its holder exits, however it exits (SIGKILL included), so a crashed writer
never leaves the folder locked: the stale file is simply locked again by the next writer, which
writes its own pid into it. A holder removes the file when it releases the lock; a waiter that
opened the old file notices (its inode is no longer the one at the path) and opens it again.

Within one process the lock is shared: a second ``Writer`` on the same folder (or a direct
``write_segment``) counts up instead of locking against itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from gvstore.errors import GvstoreError

LOCK_NAME = ".lock"

_held: dict[str, list[int]] = {}  # realpath of the folder -> [fd, count]
_guard = threading.Lock()


class StoreLocked(GvstoreError):
    """Another process holds the folder's lock."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"store folder {folder} is being written by {who} (lock {folder / LOCK_NAME}): "
            "one writer per folder; wait for it to finish or stop it, then rerun "
            "(a crashed writer's lock is released by the system on its own)"
        )
        self.folder = folder
        self.pid = pid


def holder(folder: Path) -> int | None:
    """The pid written in the folder's lock file (whether or not it is still held)."""
    try:
        text = (folder / LOCK_NAME).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def acquire(folder: Path) -> bool:
    """Take the folder's lock (the folder must exist); True if this call took it fresh.

    Raises ``StoreLocked`` naming the holder if another process has it; ``OSError`` if the
    lock file cannot be created (a read-only folder).
    """
    key = os.path.realpath(folder)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
            return False
        path = folder / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreLocked(folder, holder(folder)) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            mine = os.fstat(fd)
            if now is None or (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev):
                os.close(fd)  # the holder removed it as we opened it: lock the new one
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _held[key] = [fd, 1]
            return True


def release(folder: Path) -> None:
    """Give back one hold; the last one removes the lock file and unlocks."""
    key = os.path.realpath(folder)
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(folder / LOCK_NAME)  # while still locked: waiters re-check the inode
        os.close(entry[0])
