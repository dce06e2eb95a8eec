"""The parser against the vectors of http_vectors.py, each fed whole, byte by byte and cut in two
at every position: the same events (bodies joined per message), or the same error, every time.

An error must be the exact class the vector names, with that class's code and server status
(``ERROR_TABLE``), and must leave the parser dead: more input is ignored, no event follows.
"""

from __future__ import annotations

from collections.abc import Iterator

import http_vectors as V  # noqa: N812  (the tests' short name for the vector tables)
import pytest
from http_vectors import Case, Outcome

from thor.http import error as http_error

#: every two-piece split is tried up to this size; beyond it, a sample of split points
ALL_SPLITS_UP_TO = 700


def splits(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Ways to cut ``data``: whole, byte by byte (small inputs), and in two at many points."""
    yield "whole", [data]
    size = len(data)
    if size <= 5000:
        yield "bytewise", [data[i : i + 1] for i in range(size)]
    else:
        yield "1000-byte pieces", [data[i : i + 1000] for i in range(0, size, 1000)]
    if size <= ALL_SPLITS_UP_TO:
        points = range(1, size)
    else:
        step = max(1, size // 97)
        points = range(1, size, step)
    for point in points:
        yield f"cut at {point}", [data[:point], data[point:]]


def check_outcome(case: Case, outcome: Outcome, how: str) -> None:
    where = f"{case.id} ({how})"
    if case.error is None:
        assert outcome.error is None, f"{where}: unexpected {outcome.error!r}"
    else:
        assert outcome.error is not None, f"{where}: no error, events {outcome.events}"
        assert type(outcome.error) is case.error, f"{where}: {outcome.error!r}"
    assert V.matches(outcome.events, case.events), (
        f"{where}: events\n  {V.describe(outcome.events)}\nexpected\n  {list(case.events)}"
    )
    if case.rest is not None:
        assert outcome.parser.take_buffered() == case.rest, where


@pytest.mark.parametrize("case", V.ALL, ids=lambda case: case.id)
def test_vector(case: Case) -> None:
    for how, pieces in splits(case.data):
        check_outcome(case, V.run(case, pieces), how)


@pytest.mark.parametrize("case", V.INVALID, ids=lambda case: case.id)
def test_error_code_and_status(case: Case) -> None:
    outcome = V.run(case, [case.data])
    error = outcome.error
    assert error is not None
    code, status = V.ERROR_TABLE[case.error]
    assert error.code == code
    assert error.server_status[0] == status
    assert isinstance(error.server_status[1], bytes) and error.server_status[1]


@pytest.mark.parametrize("case", V.INVALID, ids=lambda case: case.id)
def test_parser_dead_after_error(case: Case) -> None:
    outcome = V.run(case, [case.data])
    parser = outcome.parser
    assert parser.dead
    seen = len(outcome.recorder.events)
    next_message = V.SMALL_GET if case.requests else V.rs(b"Content-Length: 0")
    parser.feed(next_message)
    parser.feed(case.data)
    parser.eof()
    parser.resume()
    assert len(outcome.recorder.events) == seen
    assert parser.dead
    assert parser.take_buffered() == b""


def test_vector_ids_are_unique_and_reasoned() -> None:
    ids = [case.id for case in V.ALL]
    assert len(ids) == len(set(ids))
    for case in V.ALL:
        assert case.reason and "\n" not in case.reason, case.id
        assert (case.error is None) == (case in V.VALID), case.id


def test_error_table_matches_the_error_module() -> None:
    for cls, (code, status) in V.ERROR_TABLE.items():
        assert getattr(http_error, cls.__name__) is cls
        assert cls.code == code
        assert cls.server_status[0] == status
    assert len({code for code, _ in V.ERROR_TABLE.values()}) == len(V.ERROR_TABLE)


def test_every_parser_error_class_has_a_vector() -> None:
    named = {case.error for case in V.INVALID}
    assert named == set(V.ERROR_TABLE)
