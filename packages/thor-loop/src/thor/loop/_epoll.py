"""The epoll backend (Linux), level-triggered."""

from __future__ import annotations

import select
from typing import Any

from ._errors import BackendUnavailableError
from ._loop import LoopBase
from ._registration import FD_CLOSE, FD_READABLE, FD_WRITABLE

__all__ = ["EpollLoop"]

_IN = getattr(select, "EPOLLIN", 0x001)
_PRI = getattr(select, "EPOLLPRI", 0x002)
_OUT = getattr(select, "EPOLLOUT", 0x004)
_ERR = getattr(select, "EPOLLERR", 0x008)
_HUP = getattr(select, "EPOLLHUP", 0x010)
_RDHUP = getattr(select, "EPOLLRDHUP", 0x2000)

_READ_FLAGS = _IN | _PRI
_HANGUP_FLAGS = _HUP | _RDHUP


def _epoll_mask(mask: int) -> int:
    flags = 0
    if mask & FD_READABLE:
        flags |= _IN
    if mask & FD_WRITABLE:
        flags |= _OUT
    if mask & FD_CLOSE:
        flags |= _RDHUP
    return flags


class EpollLoop(LoopBase):
    """A loop polling with epoll (Linux). See LoopBase."""

    def __init__(self, precision: float | None = None) -> None:
        epoll = getattr(select, "epoll", None)
        if epoll is None:
            raise BackendUnavailableError("epoll is not available on this platform")
        self._epoll = epoll()
        super().__init__(precision)

    # An fd with no interest at all is kept out of the kernel's set: epoll reports hang-ups
    # whatever the mask, so a paused fd whose peer hung up would otherwise wake the loop forever.
    # (Interest in fd_error alone registers it with no flags: errors and hang-ups are reported.)

    def _backend_register(self, fd: int, mask: int) -> None:
        if mask:
            self._epoll.register(fd, _epoll_mask(mask))

    def _backend_modify(self, fd: int, old_mask: int, mask: int) -> None:
        if not mask:
            if old_mask:
                self._backend_unregister(fd, old_mask)
            return
        flags = _epoll_mask(mask)
        if not old_mask:
            self._epoll.register(fd, flags)
            return
        try:
            self._epoll.modify(fd, flags)
        except FileNotFoundError:  # the kernel forgot a closed fd whose number came back
            self._epoll.register(fd, flags)

    def _backend_unregister(self, fd: int, mask: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):  # already closed (EBADF, ENOENT), or a closed epoll
            pass

    def _backend_close(self) -> None:
        self._epoll.close()

    def _poll(self, timeout: float | None) -> list[Any]:
        events: list[Any] = self._epoll.poll(-1 if timeout is None else timeout)
        return events

    def _dispatch(self, events: list[Any]) -> None:
        self._io_generation = generation = self._io_generation + 1
        registrations = self._registrations
        report = self._report
        for fd, flags in events:
            reg = registrations.get(fd)
            if reg is None or reg.generation == generation:
                continue
            try:
                if flags == _IN:  # (the common case: readable and nothing else)
                    if reg.mask & FD_READABLE:
                        readable = reg.readable  # (a slot read, then a call: faster spelt out)
                        readable()
                    continue
                if flags & _READ_FLAGS and reg.mask & FD_READABLE:
                    reg.readable()
                if flags & _OUT and reg.active and reg.mask & FD_WRITABLE:
                    reg.writable()
                if flags & _ERR and reg.active:
                    reg.error()
                if flags & _HANGUP_FLAGS and reg.active:
                    reg.close()
            except Exception as exc:
                report(exc, f"fd handler of {reg.source!r}")
