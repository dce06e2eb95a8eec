"""EventSource: the classic event face of an object that watches one file descriptor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.events import EventEmitter

from . import _default
from ._registration import events_to_mask

if TYPE_CHECKING:
    from ._loop import LoopBase

__all__ = ["EventSource"]


class EventSource(EventEmitter):
    """Base for objects that own a file descriptor and react to its readiness.

    The loop calls the ``handle_fd_*`` methods directly; by default each emits the classic event
    of the same name. Subclasses on a hot path override the methods instead of listening.

    Args:
        loop: the loop to register with; the default loop when None.

    Attributes:
        loop: that loop.

    Events:
        fd_readable (): the fd can be read (or is at EOF); repeats while that stays true.
        fd_writable (): the fd can be written; repeats while that stays true.
        fd_error (): the fd reported an error condition.
        fd_close (): the peer hung up.
    """

    #: the events watched for; replaced, never changed in place (most sources never set it)
    _interesting_events: frozenset[str] = frozenset()

    def __init__(self, loop: LoopBase | None = None) -> None:
        EventEmitter.__init__(self)
        self.loop: LoopBase = loop or _default.get_default_loop()
        self._fd = -1

    def register_fd(self, fd: int, event: str | None = None) -> None:
        """Watch ``fd`` (replacing any fd watched before) for the interesting events, plus
        ``event`` if given."""
        if event is not None:
            events_to_mask(event)
            self._interesting_events = self._interesting_events | {event}
        if self._fd >= 0 and self._fd != fd:
            self.unregister_fd()
        self.loop._fd_register(fd, events_to_mask(self._interesting_events), self)
        self._fd = fd

    def unregister_fd(self) -> None:
        """Stop watching the fd. Idempotent."""
        if self._fd >= 0:
            self.loop._fd_unregister(self._fd)
            self._fd = -1

    def event_add(self, event: str) -> None:
        """Add an event to the interesting ones (applied at once if an fd is watched)."""
        events_to_mask(event)  # rejects unknown names
        self._interesting_events = self._interesting_events | {event}
        self._apply_interest()

    def event_del(self, event: str) -> None:
        """Remove an event from the interesting ones."""
        events_to_mask(event)  # rejects unknown names
        self._interesting_events = self._interesting_events - {event}
        self._apply_interest()

    def _apply_interest(self) -> None:
        if self._fd < 0:
            return
        mask = events_to_mask(self._interesting_events)
        registration = self.loop._registrations.get(self._fd)
        if registration is None or registration.source is not self:
            # the loop forgot the fd (stop() does that): watch it again
            self.loop._fd_register(self._fd, mask, self)
        else:
            self.loop._fd_set_mask(self._fd, mask)

    def interesting_events(self) -> set[str]:
        """The events this source is watching for."""
        return set(self._interesting_events)

    def handle_fd_readable(self) -> None:
        """Called by the loop when the fd is readable; emits ``'fd_readable'``."""
        self.emit("fd_readable")

    def handle_fd_writable(self) -> None:
        """Called by the loop when the fd is writable; emits ``'fd_writable'``."""
        self.emit("fd_writable")

    def handle_fd_error(self) -> None:
        """Called by the loop on an error condition; emits ``'fd_error'``."""
        self.emit("fd_error")

    def handle_fd_close(self) -> None:
        """Called by the loop when the peer hung up; emits ``'fd_close'``."""
        self.emit("fd_close")
