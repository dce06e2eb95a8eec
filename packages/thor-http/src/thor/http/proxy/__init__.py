"""thor.http.proxy: building blocks for HTTP intermediaries (reverse and forward proxies).

    import thor.loop
    from thor.http.server import HttpServer
    from thor.http.proxy import ReverseProxy

    server = HttpServer(b"127.0.0.1", 8000)
    proxy = ReverseProxy(server, "http://127.0.0.1:8080")
    thor.loop.run()

``ReverseProxy`` (``_reverse``) and ``ForwardProxy`` (``_forward``) share ``ProxyBase``
(``_base``: settings, hooks, the request flow); each request is relayed by a ``ProxyExchange``
(``_exchange``); what an intermediary does to headers is in ``_intermediary``; Upgrade and
CONNECT tunnels in ``_tunnel``. Choosing upstreams: ``Upstream``, ``UpstreamGroup``
(``_balance``), ``Router`` and ``Route`` (``_routing``), ``HealthChecker`` (``_health``).
Observing: ``AccessRecord`` and its writers (``_access_log``), ``ProxyMetrics`` (``_metrics``).
"""

from ._access_log import AccessRecord, CommonLogWriter, JsonLinesWriter
from ._balance import GroupStatistics, Upstream, UpstreamGroup, UpstreamStatistics
from ._base import ProxyBase, StaticUpstream
from ._exchange import ProxyExchange, status_for_error
from ._forward import ForwardProxy
from ._health import HealthChecker
from ._intermediary import TrustedHops
from ._metrics import ProxyMetrics
from ._reverse import ReverseProxy
from ._routing import Route, Router
from ._tunnel import Tunnel

__all__ = [
    "AccessRecord",
    "CommonLogWriter",
    "ForwardProxy",
    "GroupStatistics",
    "HealthChecker",
    "JsonLinesWriter",
    "ProxyBase",
    "ProxyExchange",
    "ProxyMetrics",
    "ReverseProxy",
    "Route",
    "Router",
    "StaticUpstream",
    "TrustedHops",
    "Tunnel",
    "Upstream",
    "UpstreamGroup",
    "UpstreamStatistics",
    "status_for_error",
]
