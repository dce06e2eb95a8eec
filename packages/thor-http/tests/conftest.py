"""Makes the shared test helpers (http_server_support, http_client_support, http_vectors)
importable by name: pytest runs in importlib mode, which keeps test directories off sys.path.
Also the ``fresh_head_cache`` fixture."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture
def fresh_head_cache() -> Iterator[None]:
    """The parser's cache of heads (``thor.http._parser._HEADS``) is process-wide: start (and
    leave) it empty, so that which heads count as repeated is up to the test."""
    from thor.http import _parser

    _parser._HEADS.entries.clear()
    _parser._HEADS.hits = _parser._HEADS.skip = 0
    yield
    _parser._HEADS.entries.clear()
    _parser._HEADS.hits = _parser._HEADS.skip = 0
