"""The disk reserve: ballast kept beside the SQLite file, deleted when the disk fills.

With the database on the same disk as the media and the logs, a full disk would
otherwise leave no room for the write that records *why* a job failed. The
first disk-full error deletes the reserve; the sweep puts it back once there is
room again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

RESERVE_BYTES = 2 * 2**20
RESERVE_NAME = ".disk-reserve"


class DiskReserve:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / RESERVE_NAME

    def ensure(self) -> bool:
        """(Re)create the ballast file when there is room for it and more; True if it is there."""
        if self.path.exists():
            return True
        try:
            if shutil.disk_usage(self.path.parent).free < 4 * RESERVE_BYTES:
                return False
            with open(self.path, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
        except OSError:
            self.path.unlink(missing_ok=True)
            return False
        return True

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
