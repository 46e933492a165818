"""What this operating system offers supervision, decided in one place.

The rest of the code asks this module instead of testing `sys.platform` itself:

- wake when a process exits: a pidfd on Linux, a kqueue with KQ_FILTER_PROC /
  KQ_NOTE_EXIT on macOS and the BSDs; elsewhere none, and the callers look again
  at an interval;
- a child dies with its parent: PR_SET_PDEATHSIG on Linux; elsewhere none, and a
  foreground worker checks its parent at every heartbeat;
- sleep on several descriptors: poll() on Linux, select() elsewhere;
- give the C heap back: glibc's malloc_trim on Linux; elsewhere nothing.

`TTSERVICE_PORTABLE=1` turns every Linux-only primitive off, so that Linux runs
exactly the code a Mac runs where a Mac has no equivalent; the test command runs
the supervision and fault suites a second time that way. It is read from the
environment at each call, and a worker inherits it from whoever started it.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import sys
from collections.abc import Sequence

import psutil

PORTABLE_ENV = "TTSERVICE_PORTABLE"
PORTABLE_MEANING = (
    "1 uses only what every POSIX system has (no pidfds, no `PR_SET_PDEATHSIG`): the code a Mac runs,"
    " for testing it on Linux."
)
LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1


def portable() -> bool:
    """True when TTSERVICE_PORTABLE asks for the code that every POSIX system runs."""
    return os.environ.get(PORTABLE_ENV, "").strip().lower() not in {"", "0", "false", "no", "off"}


def _linux() -> bool:
    return LINUX and not portable()


def exit_fd(pid: int) -> int | None:
    """A descriptor of our own that becomes readable once process `pid` exits, or None.

    Only for a process whose PID cannot be reused meanwhile (our unreaped child).
    The caller closes it (`os.close`); `os.dup` gives a second one.
    """
    if _linux():
        try:
            return os.pidfd_open(pid)
        except (AttributeError, OSError):  # Linux before 5.3
            return None
    if hasattr(select, "kqueue"):
        return _kqueue_exit_fd(pid)
    return None


def _kqueue_exit_fd(pid: int) -> int | None:  # macOS and the BSDs
    queue = select.kqueue()
    try:
        event = select.kevent(
            pid,
            filter=select.KQ_FILTER_PROC,
            flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
            fflags=select.KQ_NOTE_EXIT,
        )
        queue.control([event], 0, 0)
        return os.dup(queue.fileno())  # the registration lives with the queue, not the descriptor
    except OSError:  # gone already (ESRCH): the caller's next look sees it
        return None
    finally:
        queue.close()


def die_with_parent(sig: int) -> bool:
    """Have the kernel send `sig` when the parent dies (0 undoes it); False where it cannot."""
    if not _linux():
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def wait_readable(fds: Sequence[int], timeout: float | None) -> bool:
    """Block until one of `fds` is readable or `timeout` s pass; True if one is."""
    timeout = None if timeout is None else max(0.0, timeout)
    if _linux():
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else timeout * 1000))
    readable, _, _ = select.select(list(fds), [], [], timeout)
    return bool(readable)


def drain(fd: int) -> None:
    """Read a non-blocking pipe or FIFO empty: it says something happened, not what."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def trim_heap() -> None:
    """Give the C heap's free memory back to the system (glibc), so that RSS shows what is used."""
    if _linux():
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot, or None where that
    cannot be told (not Linux). A worker killed by SIGKILL while this count rose was the one
    killed: the killer counts before it signals."""
    if not _linux():  # macOS's jetsam kills with SIGKILL too, and keeps no such count
        return None
    try:
        with open("/proc/vmstat", encoding="ascii") as stats:
            for line in stats:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (the kernel's own high-water mark)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KiB here


def boot_id() -> str:
    """What tells this boot of the machine from the one before: every process of an earlier
    boot is gone. The kernel's random boot id on Linux, else the time the system started."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return f"booted-{psutil.boot_time():.0f}"


def node_name() -> str:
    """This machine's hostname."""
    return socket.gethostname()


def lower_priority(nice: int) -> int:
    """Run this process at niceness `nice` (never a higher priority than it has); the niceness it
    then has. On Linux a niceness is each thread's: every thread there is now is set (native
    pools start at import, OpenBLAS's with numpy), and threads started later inherit it from the
    thread that starts them. Elsewhere (macOS) it is the process's."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    wanted = min(max(nice, current), 19)
    if wanted != current:
        threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
        for thread in threads:
            try:
                os.setpriority(os.PRIO_PROCESS, thread, wanted)
            except ProcessLookupError:  # it ended meanwhile
                pass
    _autogroup(wanted)  # a new session's autogroup starts at 0, whatever its first process's niceness
    return os.getpriority(os.PRIO_PROCESS, 0)


def _autogroup(nice: int) -> None:
    """Linux with autogroups (sched_autogroup_enabled) shares the CPU between sessions first and
    only then by niceness inside each: a process in a session of its own (every worker) gets a
    session's share whatever its niceness, unless its autogroup is given the niceness too."""
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:  # no autogroups here, or not ours to set
        pass


def describe() -> dict[str, str]:
    """What supervision uses here, in words (for `ttservice --version` and the docs)."""
    linux = _linux()
    if linux:
        exits = "pidfd"
    elif hasattr(select, "kqueue"):
        exits = "kqueue (NOTE_EXIT)"
    else:
        exits = "a look at an interval (0.02 s in a waiting command, 0.1 s in the service)"
    return {
        "system": sys.platform + (" (portable mode)" if LINUX and portable() else ""),
        "process exit seen by": exits,
        "a foreground worker ends with its command by": "PR_SET_PDEATHSIG"
        if linux
        else "a check of its parent at every heartbeat",
        "a worker killed for memory is told by": "the kernel's count of OOM kills (/proc/vmstat)"
        if oom_kills() is not None
        else "nothing (it reads as killed by SIGKILL)",
    }
