"""Fixes found by an audit of thor.events against its docs, thor 0.17 and Node: the leak warning
made an error leaves a whole registration, points at the caller through the ``@on`` decorators
too; ``remove_listener`` given a ``'newListener'`` wrapper removes that registration; a
subclass's ``__slots__`` survive pickling and copying; a ``ContextWrapper`` takes keyword
arguments as 0.17's did."""

from __future__ import annotations

import copy
import pickle
import warnings
from typing import Any

import pytest

from thor.events import ContextWrapper, EventEmitter, MaxListenersExceededWarning, on


def test_a_leak_warning_made_an_error_leaves_the_listener_fully_registered() -> None:
    emitter = EventEmitter()
    heard: list[str] = []
    emitter.on("newListener", lambda event, wrapper: heard.append(event))
    for _ in range(10):
        emitter.on("data", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaxListenersExceededWarning)
        with pytest.raises(MaxListenersExceededWarning):
            emitter.on("data", lambda: None)
    assert emitter.listener_count("data") == 11
    assert heard.count("data") == 11  # 'newListener' came before the warning


def make_listener() -> Any:
    def listener() -> None:
        pass

    return listener


@pytest.mark.parametrize("how", ["on", "decorator by name", "decorator with event"])
def test_the_leak_warning_points_at_the_code_that_added_the_listener(how: str) -> None:
    emitter = EventEmitter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(11):
            if how == "on":
                emitter.on("data", make_listener())
            elif how == "decorator by name":

                @on(emitter)
                def data() -> None:
                    pass

            else:
                on(emitter, "data")(make_listener())
    assert len(caught) == 1
    assert caught[0].filename == __file__, caught[0].filename


def test_remove_listener_with_a_new_listener_wrapper_removes_that_registration() -> None:
    emitter = EventEmitter()
    wrappers: list[ContextWrapper] = []
    emitter.on("newListener", lambda event, wrapper: wrappers.append(wrapper))
    calls: list[int] = []

    def handler() -> None:
        calls.append(len(calls) + 1)

    emitter.on("tick", handler)
    emitter.once("tick", handler)
    once_wrapper = wrappers[-1]
    assert once_wrapper.once
    emitter.remove_listener("tick", once_wrapper)
    emitter.emit("tick")
    emitter.emit("tick")
    assert calls == [1, 2]  # the permanent registration stayed
    assert emitter.listener_count("tick") == 1


class Slotted(EventEmitter):
    __slots__ = ("__secret", "name", "unset")

    def __init__(self) -> None:
        EventEmitter.__init__(self)
        self.name = "conn-1"
        self.__secret = 42

    def secret(self) -> int:
        return self.__secret


@pytest.mark.parametrize("clone", [lambda e: pickle.loads(pickle.dumps(e)), copy.copy])
def test_slot_values_of_a_subclass_survive_pickling_and_copying(clone: Any) -> None:
    original = Slotted()
    original.extra = "kept"  # type: ignore[attr-defined]  # (EventEmitter has a __dict__)
    original.on("data", lambda: None)
    twin = clone(original)
    assert twin.name == "conn-1"
    assert twin.secret() == 42
    assert twin.extra == "kept"
    assert not hasattr(twin, "unset")
    assert twin.listener_count("data") == 0


def test_a_context_wrapper_takes_keyword_arguments() -> None:
    def listener(status: int, reason: str | None = None) -> tuple[int, str | None]:
        return status, reason

    wrapper = ContextWrapper(listener)
    assert wrapper(200) == (200, None)
    assert wrapper(200, reason="OK") == (200, "OK")
