"""What the fault suites share: the ledger of faults and checks, and a stranger process.

The fault-injection suite (`tests/faults`) and the scale-out suite (`tests/scale`)
record each fault they inject and each invariant they check here; a run that
injected any ends with the table (`summary`, called by the root conftest).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

STRANGER = """
import signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT):
    signal.signal(sig, lambda n, f: log.write(f"{n}\\n"))
print("ready", flush=True)
while True:
    time.sleep(1)
"""


@dataclass
class Ledger:
    faults: list[str] = field(default_factory=list)
    checks: int = 0
    violations: list[str] = field(default_factory=list)


LEDGER = Ledger()


def summary(terminalreporter) -> None:
    """The table at the end of a run that injected faults (`pytest_terminal_summary`)."""
    if not LEDGER.faults:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault injection")
    write(f"{'faults injected':<22}{len(LEDGER.faults):>6}")
    write(f"{'invariants checked':<22}{LEDGER.checks:>6}")
    write(f"{'violations':<22}{len(LEDGER.violations):>6}")
    for name in sorted(set(LEDGER.faults)):
        write(f"  {LEDGER.faults.count(name)} x {name}")
    for violation in LEDGER.violations:
        write(f"  VIOLATION: {violation}")


class Stranger:
    """A process that is not ours, in its own session; it logs every catchable signal it gets.

    `within` starts it inside another process's namespaces (`nsenter`): a simulated host's.
    """

    def __init__(self, tmp: Path, within: Sequence[str] = (), name: str = "stranger") -> None:
        self.log = tmp / f"{name}-signals.txt"
        self.log.touch()
        self.process = subprocess.Popen(
            [*within, sys.executable, "-c", STRANGER, str(self.log)],
            stdout=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"
        self.pid = self.process.pid
        self.create_time = psutil.Process(self.pid).create_time()

    def untouched(self) -> str | None:
        if self.process.poll() is not None:
            return f"the stranger process {self.pid} died ({self.process.returncode})"
        if psutil.Process(self.pid).status() == psutil.STATUS_STOPPED:
            return f"the stranger process {self.pid} was stopped"
        received = self.log.read_text().split()
        return f"the stranger process {self.pid} received signals {received}" if received else None

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
