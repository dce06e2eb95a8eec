"""What the loop knows about one registered file descriptor, and the interest masks.

Interest is a bit mask over the four fd events of thor's classic API. Backends translate it to
their own flags; the registration keeps the handler methods of its source already bound, so
dispatch is an attribute load and a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

__all__ = [
    "EVENT_MASKS",
    "FD_CLOSE",
    "FD_ERROR",
    "FD_READABLE",
    "FD_WRITABLE",
    "FdHandler",
    "FdRegistration",
    "events_to_mask",
]

FD_READABLE = 1
FD_WRITABLE = 2
FD_ERROR = 4
FD_CLOSE = 8

EVENT_MASKS: dict[str, int] = {
    "fd_readable": FD_READABLE,
    "fd_writable": FD_WRITABLE,
    "fd_error": FD_ERROR,
    "fd_close": FD_CLOSE,
}


def events_to_mask(events: str | Iterable[str]) -> int:
    """The interest mask for one classic event name or several (``'fd_readable'``...).

    Raises:
        ValueError: a name is not one of the four fd events.
    """
    if isinstance(events, str):
        events = (events,)
    mask = 0
    for event in events:
        try:
            mask |= EVENT_MASKS[event]
        except KeyError:
            raise ValueError(
                f"unknown fd event {event!r}; expected one of {sorted(EVENT_MASKS)}"
            ) from None
    return mask


class FdHandler(Protocol):
    """What a loop calls when a registered fd is ready (``EventSource`` implements it)."""

    def handle_fd_readable(self) -> None: ...
    def handle_fd_writable(self) -> None: ...
    def handle_fd_error(self) -> None: ...
    def handle_fd_close(self) -> None: ...


class FdRegistration:
    """One registered fd: its source, interest mask and bound handlers.

    ``generation`` is the loop's poll-batch counter when the fd was registered: events polled in
    a batch that started before a registration belong to the fd's previous owner and are dropped.
    ``active`` goes False on unregistration, so a handler that unregisters its fd stops the
    dispatch of the other events polled for it in the same batch.
    """

    __slots__ = (
        "active",
        "close",
        "error",
        "fd",
        "generation",
        "mask",
        "readable",
        "source",
        "writable",
    )

    def __init__(self, fd: int, mask: int, source: FdHandler, generation: int) -> None:
        self.fd = fd
        self.mask = mask
        self.source = source
        self.generation = generation
        self.active = True
        self.readable: Callable[[], None] = source.handle_fd_readable
        self.writable: Callable[[], None] = source.handle_fd_writable
        self.error: Callable[[], None] = source.handle_fd_error
        self.close: Callable[[], None] = source.handle_fd_close

    def __repr__(self) -> str:
        return f"<FdRegistration fd={self.fd} mask={self.mask:#x} source={self.source!r}>"
