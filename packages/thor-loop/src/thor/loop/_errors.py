"""Errors raised by thor.loop."""

from __future__ import annotations


class LoopError(RuntimeError):
    """Base class of the errors thor.loop raises itself (misuse of a loop)."""

    code = "ERR_LOOP"


class BackendUnavailableError(LoopError, ImportError):
    """The requested polling backend does not exist on this platform (e.g. epoll on macOS).

    Also an ImportError, which is what thor 0.17's ``make()`` raised when no backend was usable.
    """

    code = "ERR_LOOP_BACKEND_UNAVAILABLE"
