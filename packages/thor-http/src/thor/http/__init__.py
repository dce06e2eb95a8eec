"""thor.http (thor-http): HTTP/1.1 server, client and helpers on the thor loop.

    import thor
    from thor.events import on

    def hello(exchange):
        @on(exchange)
        def request_done(trailers):
            exchange.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
            exchange.response_body(b"Hello, world!")
            exchange.response_done([])

    server = thor.http.HttpServer(b"127.0.0.1", 8000)
    server.on("exchange", hello)
    thor.run()

The server and client modules load on first use (``thor.http.server``, ``thor.http.client``,
or one of their names from here), so importing the helpers stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import common, error
from ._headers import (
    RawHeaderListType,
    get_header,
    header_dict,
    header_names,
    hop_by_hop_hdrs,
    idempotent_methods,
    safe_methods,
    strip_hop_by_hop,
)
from ._version import __version__

if TYPE_CHECKING:
    from . import client as client
    from . import server as server
    from . import uri as uri
    from .client import HttpClient, HttpClientExchange, OriginType
    from .server import HttpServer, HttpServerExchange

__all__ = [
    "HttpClient",
    "HttpClientExchange",
    "HttpServer",
    "HttpServerExchange",
    "OriginType",
    "RawHeaderListType",
    "__version__",
    "common",
    "error",
    "get_header",
    "header_dict",
    "header_names",
    "hop_by_hop_hdrs",
    "idempotent_methods",
    "safe_methods",
    "strip_hop_by_hop",
]

_LAZY = {
    "HttpServer": "thor.http.server",
    "HttpServerExchange": "thor.http.server",
    "HttpClient": "thor.http.client",
    "HttpClientExchange": "thor.http.client",
    "OriginType": "thor.http.client",
}
_SUBMODULES = frozenset(("server", "client", "uri"))

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in _SUBMODULES:
            return importlib.import_module(f"thor.http.{name}")
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'thor.http' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__) | _SUBMODULES)
