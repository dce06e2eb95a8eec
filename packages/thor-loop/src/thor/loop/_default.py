"""Choosing a backend, making loops, and the process's default loop."""

from __future__ import annotations

import select
from typing import TYPE_CHECKING

from ._errors import BackendUnavailableError

if TYPE_CHECKING:
    from ._loop import LoopBase

__all__ = ["available_backends", "get_default_loop", "make"]

_default_loop: LoopBase | None = None


def _backend_classes() -> dict[str, type[LoopBase]]:
    from ._epoll import EpollLoop  # noqa: PLC0415 - the backends import LoopBase, which imports us
    from ._kqueue import KqueueLoop  # noqa: PLC0415
    from ._poll import PollLoop  # noqa: PLC0415
    from ._select import SelectLoop  # noqa: PLC0415

    return {"epoll": EpollLoop, "kqueue": KqueueLoop, "poll": PollLoop, "select": SelectLoop}


def available_backends() -> list[str]:
    """Names of the backends usable here, best first (``make`` picks the first)."""
    found = {
        "epoll": hasattr(select, "epoll"),
        "kqueue": hasattr(select, "kqueue"),
        "poll": hasattr(select, "poll"),
        "select": hasattr(select, "select"),
    }
    return [name for name in ("epoll", "kqueue", "poll", "select") if found[name]]


def make(precision: float | None = None, backend: str | None = None) -> LoopBase:
    """A new, independent loop.

    Args:
        precision: see ``LoopBase``.
        backend: ``"epoll"``, ``"kqueue"``, ``"poll"`` or ``"select"``; by default the best
            one available (in that order).

    Raises:
        BackendUnavailableError: the backend named does not exist here (or none does).
        ValueError: ``backend`` is not one of those names, or ``precision`` is not > 0.
    """
    classes = _backend_classes()
    if backend is None:
        names = available_backends()
        if not names:
            raise BackendUnavailableError("no polling backend is available on this platform")
        backend = names[0]
    if backend not in classes:
        raise ValueError(f"unknown loop backend {backend!r}; expected one of {sorted(classes)}")
    return classes[backend](precision)


def get_default_loop() -> LoopBase:
    """The process's default loop (``thor.loop._loop``), made on first use."""
    global _default_loop
    if _default_loop is None:
        _default_loop = make()
    return _default_loop
