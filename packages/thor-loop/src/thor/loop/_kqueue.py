"""The kqueue backend (BSD, macOS), level-triggered.

Interest in ``fd_readable`` or ``fd_close`` keeps a read filter on the fd (the peer's EOF is
reported on it, flagged EV_EOF); interest in ``fd_writable`` a write filter. A read filter that
fires without EV_EOF for an fd wanting only ``fd_close`` calls ``handle_fd_close`` (as the
select backend does for readability): the source finds out whether that was a hang-up, and a
paused reader with bytes waiting takes its fd off the loop, which would otherwise wake for
them on every pass.
"""

from __future__ import annotations

import select
from typing import Any

from ._errors import BackendUnavailableError
from ._loop import LoopBase
from ._registration import FD_CLOSE, FD_READABLE, FD_WRITABLE

__all__ = ["KqueueLoop"]

_READ_INTEREST = FD_READABLE | FD_CLOSE


class KqueueLoop(LoopBase):
    """A loop polling with kqueue (BSD, macOS). See LoopBase."""

    def __init__(self, precision: float | None = None) -> None:
        if not hasattr(select, "kqueue"):
            raise BackendUnavailableError("kqueue is not available on this platform")
        self._kqueue: Any = select.kqueue()  # type: ignore[attr-defined,unused-ignore]
        self._filter_count = 0
        super().__init__(precision)

    def _control(self, fd: int, kfilter: int, flags: int) -> None:
        event = select.kevent(fd, kfilter, flags)  # type: ignore[attr-defined,unused-ignore]
        try:
            self._kqueue.control([event], 0, 0)
        except OSError:
            if not flags & select.KQ_EV_DELETE:  # type: ignore[attr-defined,unused-ignore]
                raise
        else:
            if flags & select.KQ_EV_DELETE:  # type: ignore[attr-defined,unused-ignore]
                self._filter_count -= 1
            else:
                self._filter_count += 1

    def _backend_register(self, fd: int, mask: int) -> None:
        self._backend_modify(fd, 0, mask)

    def _backend_modify(self, fd: int, old_mask: int, mask: int) -> None:
        add = select.KQ_EV_ADD  # type: ignore[attr-defined,unused-ignore]
        delete = select.KQ_EV_DELETE  # type: ignore[attr-defined,unused-ignore]
        read_filter = select.KQ_FILTER_READ  # type: ignore[attr-defined,unused-ignore]
        write_filter = select.KQ_FILTER_WRITE  # type: ignore[attr-defined,unused-ignore]
        was_reading, reading = old_mask & _READ_INTEREST, mask & _READ_INTEREST
        if reading and not was_reading:
            self._control(fd, read_filter, add)
        elif was_reading and not reading:
            self._control(fd, read_filter, delete)
        was_writing, writing = old_mask & FD_WRITABLE, mask & FD_WRITABLE
        if writing and not was_writing:
            self._control(fd, write_filter, add)
        elif was_writing and not writing:
            self._control(fd, write_filter, delete)

    def _backend_unregister(self, fd: int, mask: int) -> None:
        self._backend_modify(fd, mask, 0)

    def _backend_close(self) -> None:
        self._kqueue.close()

    def _poll(self, timeout: float | None) -> list[Any]:
        return list(self._kqueue.control(None, max(self._filter_count, 1), timeout))

    def _dispatch(self, events: list[Any]) -> None:
        self._io_generation = generation = self._io_generation + 1
        registrations = self._registrations
        read_filter = select.KQ_FILTER_READ  # type: ignore[attr-defined,unused-ignore]
        write_filter = select.KQ_FILTER_WRITE  # type: ignore[attr-defined,unused-ignore]
        eof = select.KQ_EV_EOF  # type: ignore[attr-defined,unused-ignore]
        error = select.KQ_EV_ERROR  # type: ignore[attr-defined,unused-ignore]
        for kevent in events:
            reg = registrations.get(kevent.ident)
            if reg is None or reg.generation == generation or not reg.active:
                continue
            try:
                if kevent.flags & error:
                    reg.error()
                elif kevent.filter == read_filter:
                    if reg.mask & FD_READABLE:
                        reg.readable()
                    elif not kevent.flags & eof:
                        # readable, but only the hang-up is wanted (a paused reader): the
                        # source looks (peeks) and may step aside, as with select, since the
                        # filter would fire on every pass while the bytes wait
                        reg.close()
                    if kevent.flags & eof and reg.active:
                        if kevent.fflags:
                            reg.error()
                        if reg.active:
                            reg.close()
                elif kevent.filter == write_filter:
                    if reg.mask & FD_WRITABLE:
                        reg.writable()
                    if kevent.flags & eof and reg.active:
                        reg.close()
            except Exception as exc:
                self._report(exc, f"fd handler of {reg.source!r}")
