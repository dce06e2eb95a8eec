"""Errors and warnings raised by thor.events."""

from __future__ import annotations


class EventEmitterError(Exception):
    """Base class of the errors thor.events raises itself."""

    code = "ERR_EVENT_EMITTER"


class UnhandledError(EventEmitterError):
    """An ``'error'`` event whose payload is not an exception, raised when nobody handled it.

    Only raised when the emitter asks for Node's behaviour (``raise_unhandled_errors``); the
    default reports unhandled errors through the logging module instead.

    Attributes:
        payload: the arguments that were emitted with ``'error'``.
    """

    code = "ERR_UNHANDLED_ERROR"

    def __init__(self, *payload: object) -> None:
        super().__init__(*payload)
        self.payload = payload

    def __str__(self) -> str:
        return f"unhandled 'error' event: {self.payload!r}"


class MaxListenersExceededWarning(RuntimeWarning):
    """More listeners than the emitter's limit were added for one event: probably a leak.

    Issued once per emitter and event (through ``warnings``), never raised as an error by thor.
    """
