"""thor.loop: the event loop (reactor) of thor, with the classic module-level functions.

    import thor.loop

    def hello(name: str) -> None:
        print("hello,", name)
        thor.loop.stop()

    thor.loop.schedule(0.1, hello, "world")
    thor.loop.run()

``thor.loop._loop`` is the process's default loop; ``run``, ``stop``, ``schedule``,
``run_in_loop`` and ``time`` here are its bound methods. ``make()`` creates independent loops.
"""

from ._default import available_backends, get_default_loop, make
from ._epoll import EpollLoop
from ._errors import BackendUnavailableError, LoopError
from ._kqueue import KqueueLoop
from ._loop import LoopBase
from ._poll import PollLoop
from ._registration import FD_CLOSE, FD_ERROR, FD_READABLE, FD_WRITABLE, FdRegistration
from ._select import SelectLoop
from ._source import EventSource
from ._timers import ScheduledEvent, Timer
from ._version import __version__

_loop: LoopBase = get_default_loop()

run = _loop.run
stop = _loop.stop
schedule = _loop.schedule
run_in_loop = _loop.run_in_loop
time = _loop.time

__all__ = [
    "FD_CLOSE",
    "FD_ERROR",
    "FD_READABLE",
    "FD_WRITABLE",
    "BackendUnavailableError",
    "EpollLoop",
    "EventSource",
    "FdRegistration",
    "KqueueLoop",
    "LoopBase",
    "LoopError",
    "PollLoop",
    "ScheduledEvent",
    "SelectLoop",
    "Timer",
    "__version__",
    "available_backends",
    "get_default_loop",
    "make",
    "run",
    "run_in_loop",
    "schedule",
    "stop",
    "time",
]
