"""ForwardProxy: an HTTP proxy for clients configured to use one (absolute-form and CONNECT).

Requests carry absolute-form targets (``GET http://example.com/ HTTP/1.1``): the upstream is
the target's origin and the Host sent is its authority (RFC 9112 §3.2.2: a Host field that
disagrees is replaced). ``CONNECT host:port`` opens a TCP tunnel to ports in ``connect_ports``
only (403 otherwise); ``check_ip`` may keep the proxy off some addresses (403). A CONNECT
with content (a Transfer-Encoding, or a Content-Length other than 0) gets 400 and the client's
connection is closed: a CONNECT has none (RFC 9110 §9.3.6), and reading one would take tunnel
bytes for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thor.tcp import TcpClient

from ._base import ProxyBase

if TYPE_CHECKING:
    from .._server import HttpServer
    from ..client import HttpClient
    from ._exchange import ProxyExchange

__all__ = ["ForwardProxy"]


class ForwardProxy(ProxyBase):
    """A forward proxy: fetches absolute-form targets for its clients and tunnels CONNECT.

    Args:
        server: the HttpServer the clients talk to (the proxy listens to its ``'exchange'``).
        client: the HttpClient used upstream; one is made when None.
        connect_ports: the ports CONNECT may reach (``(443,)``); others get 403.

    Attributes:
        connect_ports: a frozenset of ports.
        check_ip: None, or a callable taking an IP address string and returning whether the
            proxy may connect there (for CONNECT and, when the proxy made its client, for
            requests); refused addresses get 403.

    Settings, hooks: those of ``ProxyBase``.

    Events:
        access (AccessRecord): a request is over (a CONNECT when its tunnel is set up); once
            per request.
        error (Exception): a hook raised; many times.
        tunnel (ProxyExchange, Tunnel): a CONNECT or an Upgrade became a tunnel; many times.
    """

    def __init__(
        self,
        server: HttpServer,
        client: HttpClient | None = None,
        connect_ports: Iterable[int] = (443,),
        check_ip: Callable[[str], bool] | None = None,
    ) -> None:
        made = client is None
        ProxyBase.__init__(self, server, client)
        self.connect_ports = frozenset(connect_ports)
        self.check_ip = check_ip
        if made and check_ip is not None:
            self.client.check_ip = check_ip

    def _resolve(self, px: ProxyExchange) -> bool:
        if px.method == b"CONNECT":
            if not self._connect_has_content(px):
                self._connect(px)
            return False
        target = px.target
        if target[:1] == b"/" or target == b"*":
            px.respond(400, None, [], b"A proxy request needs an absolute URL\n", close=True)
            return False
        origin = self._absolute_form(px)
        if origin is None:
            return False
        px.upstream = self.upstream_for_url(origin)
        return True

    def _select(self, px: ProxyExchange) -> None:
        px._ready(px.upstream, None)

    def _connect(self, px: ProxyExchange) -> None:
        """CONNECT: check the port, then connect; the sink (``px``) answers 200 and splices."""
        target = px.target
        if target[:1] == b"[":
            end = target.find(b"]")
            host = target[1:end] if end > 0 else b""
            port_b = target[end + 2 :] if end > 0 and target[end + 1 : end + 2] == b":" else b""
        else:
            host, _, port_b = target.rpartition(b":")
        port = int(port_b) if port_b.isdigit() and len(port_b) <= 5 else 0
        if not host or not 0 < port < 65536:
            px.respond(400, None, [], b"Bad CONNECT target\n", close=True)
            return
        if port not in self.connect_ports:
            px.record.error = f"port {port} not allowed"
            px.respond(403, None, [], b"CONNECT to this port is not allowed\n")
            return
        if self._answer_locally and self.answer_locally(px):
            return
        px.record.upstream = f"{host.decode('latin-1')}:{port}"
        tcp_client = TcpClient(self.loop)
        tcp_client.check_ip = self.check_ip
        tcp_client.sink(px)
        px._connecting = tcp_client
        tcp_client.connect(host, port, self.upstream_connect_timeout)
