"""The poll(2) backend: any POSIX system."""

from __future__ import annotations

import select
from typing import Any

from ._errors import BackendUnavailableError
from ._loop import LoopBase
from ._registration import FD_CLOSE, FD_READABLE, FD_WRITABLE

__all__ = ["PollLoop"]

_IN = getattr(select, "POLLIN", 0x001)
_PRI = getattr(select, "POLLPRI", 0x002)
_OUT = getattr(select, "POLLOUT", 0x004)
_ERR = getattr(select, "POLLERR", 0x008) | getattr(select, "POLLNVAL", 0x020)
_HUP = getattr(select, "POLLHUP", 0x010)
_RDHUP = getattr(select, "POLLRDHUP", 0)

_READ_FLAGS = _IN | _PRI
_HANGUP_FLAGS = _HUP | _RDHUP


def _poll_mask(mask: int) -> int:
    flags = 0
    if mask & FD_READABLE:
        flags |= _IN
    if mask & FD_WRITABLE:
        flags |= _OUT
    if mask & FD_CLOSE:
        flags |= _RDHUP
    return flags


class PollLoop(LoopBase):
    """A loop polling with poll(2). See LoopBase."""

    def __init__(self, precision: float | None = None) -> None:
        poll = getattr(select, "poll", None)
        if poll is None:
            raise BackendUnavailableError("poll is not available on this platform")
        self._poller = poll()
        super().__init__(precision)

    # An fd with no interest at all is kept out of the poll set: poll reports hang-ups whatever
    # the mask, so a paused fd whose peer hung up would otherwise wake the loop forever.
    # (Interest in fd_error alone registers it with no flags: errors and hang-ups are reported.)

    def _backend_register(self, fd: int, mask: int) -> None:
        self._backend_modify(fd, 0, mask)

    def _backend_modify(self, fd: int, old_mask: int, mask: int) -> None:
        if mask:
            self._poller.register(fd, _poll_mask(mask))
        else:
            self._backend_unregister(fd, old_mask)

    def _backend_unregister(self, fd: int, mask: int) -> None:
        try:
            self._poller.unregister(fd)
        except KeyError:
            pass

    def _backend_close(self) -> None:
        pass

    def _poll(self, timeout: float | None) -> list[Any]:
        # poll() takes milliseconds; round up so a timer is never polled for too early
        events: list[Any] = self._poller.poll(None if timeout is None else -(-timeout * 1000 // 1))
        return events

    def _dispatch(self, events: list[Any]) -> None:
        self._io_generation = generation = self._io_generation + 1
        registrations = self._registrations
        for fd, flags in events:
            reg = registrations.get(fd)
            if reg is None or reg.generation == generation:
                continue
            try:
                if flags & _READ_FLAGS and reg.mask & FD_READABLE:
                    reg.readable()
                if flags & _OUT and reg.active and reg.mask & FD_WRITABLE:
                    reg.writable()
                if flags & _ERR and reg.active:
                    reg.error()
                if flags & _HANGUP_FLAGS and reg.active:
                    reg.close()
            except Exception as exc:
                self._report(exc, f"fd handler of {reg.source!r}")
