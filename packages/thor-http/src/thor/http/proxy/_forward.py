"""ForwardProxy: an HTTP proxy for clients configured to use one (absolute-form and CONNECT).

Requests carry absolute-form targets (``GET http://example.com/ HTTP/1.1``): the upstream is
the target's origin and the Host sent is its authority (RFC 9112 §3.2.2: a Host field that
disagrees is replaced). ``CONNECT host:port`` opens a TCP tunnel to ports in ``connect_ports``
only (403 otherwise); ``check_ip`` may keep the proxy off some addresses (403). A CONNECT
with content (a Transfer-Encoding, or a Content-Length other than 0) gets 400 and the client's
connection is closed: a CONNECT has none (RFC 9110 §9.3.6), and reading one would take tunnel
bytes for it.

The CONNECT target is authority-form, ``uri-host ":" port`` (RFC 9112 §3.2.3, RFC 9110
§9.3.6), read by ``connect_target``; anything else gets 400 and the connection is closed:

- the host is a registered name (a dotted-quad IPv4 address is one, to the grammar) or a
  bracketed IPv6 literal (``[2001:db8::1]:443``) that ``ipaddress`` accepts (no zone, no
  IPvFuture); the empty host is refused. Names are left to the resolver, which refuses what
  is not a DNS name (and the legacy IPv4 spellings such as ``127.1``) with a 502;
- the port is required: ASCII digits only (no sign, ``_``, space or other digits), 1 to 65535;
- userinfo (``user@host``), a path, whitespace, or anything else outside the Host grammar
  (``is_host_value``) is refused;
- a percent-encoded registered name is refused too, although the URI grammar allows one: it
  would have to be decoded (and IDNA-encoded) before a name lookup, which thor does not do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thor.tcp import TcpClient

from .._abnf import is_host_value, parse_decimal
from ._base import ProxyBase

if TYPE_CHECKING:
    from .._server import HttpServer
    from ..client import HttpClient
    from ._exchange import ProxyExchange

__all__ = ["ForwardProxy", "connect_target"]


def connect_target(target: bytes) -> tuple[bytes, int] | None:
    """The host and port of a CONNECT request target, or None when it is not authority-form
    (see the module docstring).

    Returns:
        ``(host, port)``: the host as written, an IPv6 literal without its brackets (as
        ``TcpClient.connect`` takes it).
    """
    if not is_host_value(target):  # uri-host [ ":" port ], nothing else
        return None
    if target[:1] == b"[":
        close = target.find(b"]")  # (the grammar puts it before any ":" port)
        literal, after = target[1:close], target[close + 1 :]
        if after[:1] != b":":
            return None
        try:
            ipaddress.IPv6Address(literal.decode("ascii"))
        except ValueError:
            return None
        host, port_b = literal, after[1:]
    else:
        host, colon, port_b = target.partition(b":")  # (a registered name has no ":")
        if not host or not colon or b"%" in host:
            return None
    port = parse_decimal(port_b)  # None unless ASCII digits only
    if port is None or not 0 < port < 65536:
        return None
    return host, port


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
        parsed = connect_target(px.target)
        if parsed is None:
            px.respond(400, None, [], b"Bad CONNECT target\n", close=True)
            return
        host, port = parsed
        if port not in self.connect_ports:
            px.record.error = f"port {port} not allowed"
            px.respond(403, None, [], b"CONNECT to this port is not allowed\n")
            return
        if self._answer_locally and self.answer_locally(px):
            return
        name = host.decode("ascii")
        px.record.upstream = f"[{name}]:{port}" if b":" in host else f"{name}:{port}"
        tcp_client = TcpClient(self.loop)
        tcp_client.check_ip = self.check_ip
        tcp_client.sink(px)
        px._connecting = tcp_client
        tcp_client.connect(host, port, self.upstream_connect_timeout)
