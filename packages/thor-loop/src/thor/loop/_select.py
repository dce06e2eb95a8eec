"""The select(2) backend: the portable fallback (fds must be below FD_SETSIZE, often 1024)."""

from __future__ import annotations

import select
from typing import Any

from ._loop import LoopBase
from ._registration import FD_CLOSE, FD_READABLE, FD_WRITABLE

__all__ = ["SelectLoop"]


class SelectLoop(LoopBase):
    """A loop polling with select(2). See LoopBase.

    select has no hang-up condition: a closed peer shows as readable (a read returns EOF), and
    the "exceptional" set (out-of-band data, connect failures on some systems) as ``fd_error``.
    Interest in ``fd_close`` without ``fd_readable`` is approximated by readability: the source's
    ``handle_fd_close`` is then called whenever the fd is readable and must look for itself
    (TcpConnection peeks), since arriving data looks the same.
    """

    def __init__(self, precision: float | None = None) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()
        super().__init__(precision)

    def _backend_register(self, fd: int, mask: int) -> None:
        self._backend_modify(fd, 0, mask)

    def _backend_modify(self, fd: int, old_mask: int, mask: int) -> None:
        if mask & (FD_READABLE | FD_CLOSE):  # a hang-up shows as readable (EOF)
            self._readers.add(fd)
        else:
            self._readers.discard(fd)
        if mask & FD_WRITABLE:
            self._writers.add(fd)
        else:
            self._writers.discard(fd)

    def _backend_unregister(self, fd: int, mask: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def _backend_close(self) -> None:
        self._readers.clear()
        self._writers.clear()

    def _poll(self, timeout: float | None) -> list[Any]:
        readers, writers = self._readers, self._writers
        try:
            readable, writable, failed = select.select(readers, writers, readers | writers, timeout)
        except OSError:
            # an fd was closed without being unregistered: find it and report it as an error
            return [(fd, 0, 0, True) for fd in readers | writers if not _is_open(fd)]
        if not (readable or writable or failed):
            return []
        return [
            (fd, fd in readable, fd in writable, fd in failed)
            for fd in set(readable) | set(writable) | set(failed)
        ]

    def _dispatch(self, events: list[Any]) -> None:
        self._io_generation = generation = self._io_generation + 1
        registrations = self._registrations
        for fd, readable, writable, failed in events:
            reg = registrations.get(fd)
            if reg is None or reg.generation == generation:
                continue
            try:
                if readable:
                    if reg.mask & FD_READABLE:
                        reg.readable()
                    elif reg.mask & FD_CLOSE:
                        reg.close()  # only watching for the hang-up: the source looks (peeks)
                if writable and reg.active and reg.mask & FD_WRITABLE:
                    reg.writable()
                if failed and reg.active:
                    reg.error()
            except Exception as exc:
                self._report(exc, f"fd handler of {reg.source!r}")


def _is_open(fd: int) -> bool:
    try:
        select.select([fd], [], [], 0)
    except OSError:
        return False
    return True
