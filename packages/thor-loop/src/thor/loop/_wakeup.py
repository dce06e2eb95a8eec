"""Waking a sleeping loop from another thread (or a signal handler).

An eventfd on Linux (one fd, an 8-byte counter), else a non-blocking pipe. ``wake()`` may be
called from any thread; the loop drains the fd when it polls readable.
"""

from __future__ import annotations

import os
import sys

__all__ = ["Waker"]


class Waker:
    """A file descriptor that becomes readable when ``wake()`` is called."""

    __slots__ = ("_read_fd", "_write_fd")

    def __init__(self) -> None:
        if sys.platform == "linux":
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read_fd = self._write_fd = fd
        else:
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            self._read_fd, self._write_fd = read_fd, write_fd

    def fileno(self) -> int:
        """The fd to poll for readability."""
        return self._read_fd

    def wake(self) -> None:
        """Make the fd readable. Thread-safe; a full pipe already means "awake"."""
        try:
            if sys.platform == "linux":
                os.eventfd_write(self._write_fd, 1)
            else:
                os.write(self._write_fd, b"\0")
        except OSError:
            pass

    def drain(self) -> None:
        """Consume the pending wake-ups."""
        try:
            if sys.platform == "linux":
                os.eventfd_read(self._read_fd)
            else:
                while os.read(self._read_fd, 4096):
                    pass
        except OSError:
            pass

    def close(self) -> None:
        """Release the fd(s)."""
        for fd in {self._read_fd, self._write_fd}:
            try:
                os.close(fd)
            except OSError:
                pass
        self._read_fd = self._write_fd = -1
