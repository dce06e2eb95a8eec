"""thor.events: a Node-style EventEmitter, the pure base of the thor stack.

from thor.events import EventEmitter, on

class Door(EventEmitter):
    def open(self) -> None:
        self.emit("open", "front")

door = Door()

@on(door)
def open(which: str) -> None:
    print(which, "door opened")

door.open()
"""

from ._emitter import (
    ContextWrapper,
    EventEmitter,
    EventListener,
    on,
    set_unhandled_error_handler,
)
from ._errors import EventEmitterError, MaxListenersExceededWarning, UnhandledError
from ._version import __version__

__all__ = [
    "ContextWrapper",
    "EventEmitter",
    "EventEmitterError",
    "EventListener",
    "MaxListenersExceededWarning",
    "UnhandledError",
    "__version__",
    "on",
    "set_unhandled_error_handler",
]
