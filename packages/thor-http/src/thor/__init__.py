"""thor: easy evented intermediation — the classic ``import thor`` surface.

``thor`` is a namespace shared by four distributions (thor-events, thor-loop, thor-net,
thor-http); this file, shipped by the top one (thor-http), makes ``import thor; thor.run()`` and
the classic shortcuts work. It stays cheap: names are resolved on first use (PEP 562), and
``thor.loop``, ``thor.http.server`` and the other submodules are importable as attributes after a
bare ``import thor``.
"""

from __future__ import annotations

import importlib
from pkgutil import extend_path
from typing import TYPE_CHECKING, Any

# the other distributions' thor/ directories (editable installs included) join this package
__path__ = extend_path(__path__, __name__)

if TYPE_CHECKING:
    from thor import dns as dns
    from thor import events as events
    from thor import http as http
    from thor import loop as loop
    from thor import tcp as tcp
    from thor import tls as tls
    from thor import udp as udp
    from thor.dns import Address, DnsResult, DnsResultList
    from thor.events import EventListener, on
    from thor.http import (
        HttpClient,
        HttpClientExchange,
        HttpServer,
        HttpServerExchange,
        OriginType,
        RawHeaderListType,
    )
    from thor.http._version import __version__
    from thor.loop import run, schedule, stop
    from thor.tcp import TcpClient, TcpConnection, TcpServer
    from thor.tls import TlsClient
    from thor.udp import UdpEndpoint

__all__ = [
    "Address",
    "DnsResult",
    "DnsResultList",
    "EventListener",
    "HttpClient",
    "HttpClientExchange",
    "HttpServer",
    "HttpServerExchange",
    "OriginType",
    "RawHeaderListType",
    "TcpClient",
    "TcpConnection",
    "TcpServer",
    "TlsClient",
    "UdpEndpoint",
    "__version__",
    "on",
    "run",
    "schedule",
    "stop",
]

#: public name -> the module that defines it
_NAMES = {
    "on": "thor.events",
    "EventListener": "thor.events",
    "run": "thor.loop",
    "stop": "thor.loop",
    "schedule": "thor.loop",
    "TcpClient": "thor.tcp",
    "TcpServer": "thor.tcp",
    "TcpConnection": "thor.tcp",
    "TlsClient": "thor.tls",
    "UdpEndpoint": "thor.udp",
    "Address": "thor.dns",
    "DnsResult": "thor.dns",
    "DnsResultList": "thor.dns",
    "HttpClient": "thor.http",
    "HttpClientExchange": "thor.http",
    "HttpServer": "thor.http",
    "HttpServerExchange": "thor.http",
    "OriginType": "thor.http",
    "RawHeaderListType": "thor.http",
    "__version__": "thor.http._version",
}
_SUBMODULES = frozenset(("events", "loop", "tcp", "tls", "udp", "dns", "http"))

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in _SUBMODULES:
            return importlib.import_module(f"thor.{name}")
        module = _NAMES.get(name)
        if module is None:
            raise AttributeError(f"module 'thor' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__) | _SUBMODULES)
