"""Identity-checked process trees and escalating kills (the ProcessManager's OS layer).

Every signal goes through a `psutil.Process` captured while its identity
(pid + create time) was verified, and psutil re-checks that identity before it
signals, so a process that merely reuses a PID is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..messages import Message

IDENTITY_TOLERANCE = 0.05  # seconds; create_time is read from /proc with jiffy precision
POLL = 0.05


@dataclass(frozen=True)
class Identity:
    pid: int
    create_time: float


def spawn(
    cmd: Sequence[str],
    log_path: Path,
    env: dict[str, str],
    stdin: int = subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen:
    """Start a process in a session (and group) of its own, its output appended to `log_path`
    (and `pass_fds` open in it)."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped as a whole, survives our Ctrl-C
            env=env,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find(identity: Identity) -> tuple[psutil.Process | None, Message | None]:
    """The live process with this identity, or None and why not."""
    try:
        proc = psutil.Process(identity.pid)
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return None, Message("why.worker_gone", pid=identity.pid)
    except psutil.Error as error:
        return None, Message("why.worker_uninspectable", pid=identity.pid, error=str(error))
    if abs(started - identity.create_time) > IDENTITY_TOLERANCE:
        return None, Message("why.pid_reused", pid=identity.pid)
    if not is_alive(proc):
        return None, Message("why.worker_has_exited", pid=identity.pid)
    return proc, None


def _group_members(pgid: int, not_before: float) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.create_time() >= not_before - IDENTITY_TOLERANCE:
                members.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return members


def tree(leader: psutil.Process) -> list[psutil.Process]:
    """The leader, its descendants, and the rest of its process group (it leads a session)."""
    members = {leader.pid: leader}
    try:
        for child in leader.children(recursive=True):
            members[child.pid] = child
        if os.getpgid(leader.pid) == leader.pid:
            for proc in _group_members(leader.pid, leader.create_time()):
                members.setdefault(proc.pid, proc)
    except (psutil.Error, ProcessLookupError):
        pass
    return list(members.values())


def metrics(procs: list[psutil.Process]) -> tuple[float, int]:
    """CPU % (since the previous call on the same objects) and RSS bytes, summed."""
    cpu, rss = 0.0, 0
    for proc in procs:
        try:
            with proc.oneshot():
                cpu += proc.cpu_percent(interval=None)
                rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return cpu, rss


def rss_mb(leader: psutil.Process) -> float:
    """The memory (RSS, MB) that `leader` and its tree take now; 0 when they are gone."""
    return metrics(tree(leader))[1] / 2**20


def gpu_memory(pids: list[int]) -> int | None:
    """Bytes of GPU memory these processes hold (NVIDIA, as nvidia-smi reports it); None where
    there is no nvidia-smi to ask."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    query = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    try:
        lines = subprocess.run([tool, *query], capture_output=True, text=True, timeout=5).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return None
    wanted, used = set(pids), 0
    for line in lines:
        pid, _, mib = line.partition(",")
        if pid.strip().isdigit() and int(pid) in wanted and mib.strip().isdigit():
            used += int(mib) * 2**20
    return used


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)  # psutil refuses if the PID now belongs to someone else
        except psutil.Error:
            continue


def wait_gone(procs: list[psutil.Process], timeout: float, reap=lambda: None) -> list[psutil.Process]:
    """Wait until every process has exited (zombies count as exited); return the survivors."""
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while True:
        reap()
        alive = [p for p in alive if is_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL)


def kill_tree(
    leader: psutil.Process, grace: float, reap=lambda: None
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """SIGTERM the tree, wait `grace` s, SIGKILL what is left. Returns (termed, killed)."""
    procs = tree(leader)
    _signal_all(procs, signal.SIGTERM)
    _signal_all(procs, signal.SIGCONT)  # a stopped (SIGSTOP) process acts on TERM only once continued
    survivors = wait_gone(procs, grace, reap)
    # Anything forked while we waited is a member of the group too.
    late = [p for p in _group_members(leader.pid, leader.create_time()) if p not in procs]
    survivors += late
    if survivors:
        _signal_all(survivors, signal.SIGKILL)
        wait_gone(survivors, 5.0, reap)
    return procs, survivors


def describe_exit(returncode: int, download: bool = False, out_of_memory: bool = False) -> Message:
    """How a worker (or a download) process ended, as a reason."""
    if out_of_memory:
        return Message("why.download_out_of_memory" if download else "why.worker_out_of_memory")
    if returncode >= 0:
        return Message("why.download_exited" if download else "why.worker_exited", code=returncode)
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return Message("why.download_killed" if download else "why.worker_killed", signal=name)
