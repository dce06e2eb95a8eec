"""Making listening sockets: TCP on IPv4/IPv6 (dual-stack for the empty host) and Unix."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

__all__ = ["server_listen", "server_listen_unix"]


def _bind_address(host: bytes, port: int) -> tuple[socket.AddressFamily, tuple[object, ...]]:
    """Family and address to bind ``host`` (bytes: an IP literal, a name, or b"" for all)."""
    text = host.decode("idna") if host else ""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        if socket.has_ipv6 and _ipv6_works():
            return socket.AF_INET6, ("::", port, 0, 0)
        return socket.AF_INET, ("0.0.0.0", port)
    flags = socket.AI_PASSIVE | socket.AI_NUMERICHOST
    try:
        info = socket.getaddrinfo(text, port, 0, socket.SOCK_STREAM, 0, flags)
    except socket.gaierror:
        # a name: resolved once, at start-up (through the system resolver, /etc/hosts included)
        info = socket.getaddrinfo(text, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    return family, address


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def server_listen(
    host: bytes, port: int, backlog: int | None = None, *, reuse_port: bool = False
) -> socket.socket:
    """A non-blocking TCP socket listening on ``host``:``port``.

    Args:
        host: an IPv4 or IPv6 literal (``b"127.0.0.1"``, ``b"::1"``), a name, or ``b""`` for
            every address (dual-stack where IPv6 is available).
        port: the port; 0 picks a free one (read it from ``getsockname()``).
        backlog: the listen queue length; ``socket.SOMAXCONN`` by default.
        reuse_port: set SO_REUSEPORT, so several processes can listen on the same port and the
            kernel spreads connections between them.

    Raises:
        OSError: the address cannot be bound (in use, not local...).
        ValueError: ``reuse_port`` is asked for where the platform has no SO_REUSEPORT.
    """
    family, address = _bind_address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise ValueError("SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and not host:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN if backlog is None else backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def server_listen_unix(path: str | bytes, backlog: int | None = None) -> socket.socket:
    """A non-blocking Unix domain stream socket listening at ``path``.

    A stale socket file left at ``path`` by an earlier process is replaced; any other kind of
    file there is an error.

    Raises:
        OSError: the path cannot be bound, or holds something that is not a socket.
    """
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(socket.SOMAXCONN if backlog is None else backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
