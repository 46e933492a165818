"""Per-job log files: rotation with gzip, retention, and a fast tail across parts.

A job's log is `logs/job_<id>.log`. The worker's stdout and stderr point at it
too (native libraries print there), so on every rotation the handler moves file
descriptors 1 and 2 to the new file; nothing keeps writing into a rotated part.
"""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
TAIL_BLOCK = 64 * 1024


def job_log_path(log_dir: Path, job_id: int) -> Path:
    return log_dir / f"job_{job_id}.log"


def download_log_path(log_dir: Path, download_id: int) -> Path:
    return log_dir / f"download_{download_id}.log"


def _gzip_rotator(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(source)


class JobLogHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose parts are gzip-compressed (`job_1.log.1.gz`, ...)."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int, capture_std: bool = False):
        self.capture_std = capture_std
        self.write_error: OSError | None = None  # the first failed write (a full disk), for the worker
        super().__init__(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self.namer = lambda name: name + ".gz"
        self.rotator = _gzip_rotator
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self._point_std_here()

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        super().doRollover()
        self._point_std_here()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self.write_error = self.write_error or error
            return
        super().handleError(record)

    def _point_std_here(self) -> None:
        if self.capture_std and self.stream is not None:
            fd = self.stream.fileno()
            for std in (1, 2):
                os.dup2(fd, std)


def rotated_parts(path: Path) -> list[Path]:
    """The current file first, then older parts, newest first."""
    parts = [path] if path.exists() else []
    n = 1
    while True:
        part = path.with_name(f"{path.name}.{n}.gz")
        if not part.exists():
            break
        parts.append(part)
        n += 1
    return parts


def _tail_plain(path: Path, lines: int) -> list[str]:
    """Read whole blocks backwards from the end until `lines` lines are found."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode("utf-8", errors="replace").splitlines()
    if pos > 0:
        text = text[1:]  # the first line may be cut in half
    return text[-lines:] if lines else []


def _tail_gzip(path: Path, lines: int) -> list[str]:
    # A part is at most log_max_bytes uncompressed; stream it, keeping only the tail.
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in deque(f, maxlen=lines)]


def tail(path: Path | str | None, lines: int = 200) -> list[str]:
    """The last `lines` lines of a job log, reaching into rotated parts when needed."""
    if path is None or lines <= 0:
        return []
    collected: list[str] = []
    for part in rotated_parts(Path(path)):
        need = lines - len(collected)
        if need <= 0:
            break
        try:
            chunk = _tail_gzip(part, need) if part.suffix == ".gz" else _tail_plain(part, need)
        except OSError:
            break  # a part rotated away under us: what we have is the tail
        collected = chunk + collected
    return collected


def purge_old_logs(
    log_dir: Path, retention_days: float, keep: set[Path], now: float | None = None
) -> list[Path]:
    """Delete log files (and rotated parts) older than the retention, except `keep`."""
    if not log_dir.is_dir():
        return []
    cutoff = (now or time.time()) - retention_days * 86400
    removed = []
    for path in log_dir.iterdir():
        base = path.with_name(path.name.split(".log")[0] + ".log")
        if base in keep or not path.is_file():
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def follow(path: Path, keep_going: Callable[[], bool], poll: float = 0.5) -> Iterator[str]:
    """Lines appended to a log from this call on, across rotation, while keep_going()."""
    start = path.stat().st_size if path.exists() else 0
    return _follow(path, start, keep_going, poll)


def follow_copy(
    read: Callable[[int], list[tuple[int, str]]],
    after: int,
    keep_going: Callable[[], bool],
    poll: float = 1.0,
) -> Iterator[str]:
    """Lines of a job's log copy in the store (`Store.log_chunks`) added after chunk `after`, while
    keep_going(): how a job that runs on another machine is followed."""
    while True:
        going = keep_going()
        for chunk_id, text in read(after):
            after = chunk_id
            yield from text.splitlines()
        if not going:
            return
        time.sleep(poll)


def _follow(path: Path, offset: int, keep_going: Callable[[], bool], poll: float) -> Iterator[str]:
    handle = None
    inode = None
    pending = ""
    while True:
        if handle is None and path.exists():
            handle = open(path, encoding="utf-8", errors="replace")
            inode = os.fstat(handle.fileno()).st_ino
            handle.seek(offset)
        if handle is not None:
            chunk = handle.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                yield from lines
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = True
            if rotated:  # the file we read was renamed away: finish it, then read the new one
                pending += handle.read()
                handle.close()
                handle, offset = None, 0
                continue
        if not keep_going():
            if handle is not None:
                handle.close()
            if pending:
                yield pending
            return
        time.sleep(poll)


class LogShipper:
    """Copies what a job's log file gains into the store (`Store.append_log`), for the machines
    that cannot read the file: whole lines, read from where the last copy stopped.

    The file it follows is kept open, so that lines written just before a rotation are read
    from the rotated file before the new one is opened. At most `limit` bytes are copied per
    run; then one line says where the rest is.
    """

    def __init__(self, path: Path, send: Callable[[str], None], limit: int, host: str) -> None:
        self.path, self.send, self.limit, self.host = path, send, limit, host
        self.file = open(path, "rb") if path.exists() else None  # noqa: SIM115 - kept open while it runs
        if self.file is not None:
            self.file.seek(0, os.SEEK_END)  # what earlier runs wrote was theirs to copy
        self.unsent = b""  # read, not yet in the store (a partial line, or a failed send)
        self.sent = 0
        self.full = False
        self.lock = threading.Lock()  # the heartbeat's thread ships, and the worker once more at its end

    def ship(self, final: bool = False) -> None:
        """Send the whole lines the file gained (with `final`, a last partial line too)."""
        with self.lock:
            self._ship(final)

    def _ship(self, final: bool) -> None:
        if self.full:
            return
        self.unsent += self._read()
        cut = len(self.unsent) if final else self.unsent.rfind(b"\n") + 1
        if cut <= 0:
            return
        chunk = self.unsent[:cut]
        full = self.sent + len(chunk) > self.limit
        if full:
            chunk = chunk[: max(self.limit - self.sent, 0)]
            chunk = chunk[: chunk.rfind(b"\n") + 1]
            chunk += f"(the rest of this run's log is in {self.path.name} on {self.host})\n".encode()
        self.send(chunk.decode("utf-8", errors="replace"))  # raises: kept, sent with the next lines
        self.unsent = self.unsent[cut:]
        self.sent += len(chunk)
        self.full = full

    def _read(self) -> bytes:
        data = b""
        if self.file is None:
            if not self.path.exists():
                return data
            self.file = open(self.path, "rb")  # noqa: SIM115
        data += self.file.read()
        try:
            rotated = os.stat(self.path).st_ino != os.fstat(self.file.fileno()).st_ino
        except FileNotFoundError:
            rotated = True
        if rotated:  # the rest of the old file, then the new one from its start
            data += self.file.read()
            self.file.close()
            self.file = None
            if self.path.exists():
                self.file = open(self.path, "rb")  # noqa: SIM115
                data += self.file.read()
        return data

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
