"""The queue FIFO beside the database: SQLite's stand-in for LISTEN/NOTIFY.

`transcriptor.db.queued` is a named pipe. The service holds its reading end and
sleeps on it; whoever queues a service job writes a byte into it, so the service
wakes at once instead of polling the database. Nobody listening costs nothing:
opening a FIFO without a reader fails at once (ENXIO) and the ring is skipped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ...platform import drain

BELL_SUFFIX = ".queued"  # transcriptor.db.queued


def bell_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + BELL_SUFFIX)


def ring(path: Path) -> None:
    """Wake the service that listens, if one does. Never blocks."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no FIFO, or nobody listening (ENXIO)
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b"!")
    except OSError:  # the FIFO is full: it has been rung already
        pass
    finally:
        os.close(fd)


class QueueBell:
    """The listening end of the FIFO."""

    def __init__(self, path: Path) -> None:
        if path.exists() and not stat.S_ISFIFO(path.stat().st_mode):
            path.unlink()
        if not path.exists():
            os.mkfifo(path, 0o600)
        self._read = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # A writer of our own, so that ringers closing their end never reads as end of file.
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self._read

    def drain(self) -> None:
        drain(self._read)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._keep)
