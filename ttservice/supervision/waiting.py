"""Waits that wake when something happens, instead of polling.

An `Interrupt` (an Event a `poll()` can wait on, set safely from a signal
handler), which `wait_readable` (from `platform`) sleeps on beside the
descriptors of exiting processes (`platform.exit_fd`). The ProcessManager, the
service's main loop and the CLI all sleep on these: an idle service wakes once
a second, a waiting CLI not at all.
"""

from __future__ import annotations

import os
import signal
import threading

from ..platform import drain, wait_readable

__all__ = ["Interrupt", "wait_readable"]


class Interrupt(threading.Event):
    """An Event that `select()` can wait on too: `set()` also writes to a pipe.

    Safe to set from a signal handler, and it wakes a thread blocked in
    `wait_readable` at once instead of at its next poll. `ring()` wakes such a
    thread without setting the event.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pipe: tuple[int, int] | None = None  # made when first waited on
        self._pipe_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        self.ring()

    def ring(self) -> None:
        pipe = self._pipe  # no lock: this may run in a signal handler
        if pipe is None:
            return  # nobody has waited yet; whoever waits first sees the state
        try:
            os.write(pipe[1], b"!")
        except BlockingIOError:
            pass  # the pipe is full: it is readable already

    def drain(self) -> None:
        drain(self.fileno())

    def clear(self) -> None:
        super().clear()
        self.drain()

    def wake_on_signals(self) -> None:
        """Wake the waiters on any signal that has a Python handler (call in the main thread).

        The kernel may deliver a signal to any thread; Python runs the handler in the
        main thread only once that thread wakes, which a wait on this pipe now does.
        """
        self.fileno()
        signal.set_wakeup_fd(self._pipe[1])

    def fileno(self) -> int:
        with self._pipe_lock:
            if self._pipe is None:
                self._pipe = os.pipe()
                for fd in self._pipe:
                    os.set_blocking(fd, False)
                if self.is_set():
                    os.write(self._pipe[1], b"!")
            return self._pipe[0]

    def __del__(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
