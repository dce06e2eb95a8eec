"""Waking the loop the instant a signal arrives.

A Python-level signal handler runs only between bytecodes: a signal that lands after the
interpreter last checked for one and before the loop enters its poll would wait for the next
event or timer. ``signal.set_wakeup_fd`` closes that gap: the C-level handler writes the signal
number to a pipe the loop polls, so the poll returns at once and the Python handler runs.
"""

from __future__ import annotations

import os
import signal

__all__ = ["SignalWakeup"]


class SignalWakeup:
    """A pipe installed as the process's signal wake-up fd while the loop handles signals.

    The wake-up fd is process-wide: the previous one is restored by ``close()``.
    """

    __slots__ = ("_previous", "_read_fd", "_write_fd")

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read_fd, self._write_fd = read_fd, write_fd
        try:
            self._previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            os.close(read_fd)
            os.close(write_fd)
            raise

    def fileno(self) -> int:
        """The fd the loop polls for readability."""
        return self._read_fd

    def drain(self) -> None:
        """Consume the signal numbers written so far (the Python handlers do the work)."""
        try:
            while os.read(self._read_fd, 512):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Restore the previous wake-up fd and release the pipe."""
        try:
            signal.set_wakeup_fd(self._previous)
        except ValueError:  # pragma: no cover - closed from another thread
            pass
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
