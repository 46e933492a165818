"""What this operating system offers supervision, decided in one place.

The rest of the code asks this module instead of testing `sys.platform` itself:
whether a process's exit can be waited on (a pidfd on Linux), whether a child can
be told to die with its parent (PR_SET_PDEATHSIG on Linux), and how to give the C
heap back (glibc's malloc_trim). Where a primitive is missing the callers fall
back to looking again at an interval.
"""

from __future__ import annotations

import ctypes
import os
import sys

LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1


def drain(fd: int) -> None:
    """Read a non-blocking pipe or FIFO empty: it says something happened, not what."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def pidfd_of(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def die_with_parent(sig: int) -> bool:
    """Have the kernel send `sig` when the parent dies (0 undoes it); False where it cannot."""
    if not LINUX:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def trim_heap() -> None:
    """Give the C heap's free memory back to the system (glibc), so that RSS shows what is used."""
    if LINUX:
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc
