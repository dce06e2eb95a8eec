"""ICMP-reported errors for UDP sockets: the Linux socket error queue (IP_RECVERR).

Theory of operation
-------------------
When a datagram cannot be delivered, the network may say so with ICMP (port unreachable,
host unreachable, fragmentation needed...). What a UDP socket hears of it depends:

* An unconnected socket hears nothing by default: Linux applies ICMP errors only to connected
  sockets (and the BSDs and macOS never report them to unconnected ones).
* With ``IP_RECVERR`` (``IPV6_RECVERR`` for IPv6; a dual-stack socket needs both, since its
  IPv4 traffic is handled by the IPv4 code), Linux queues each error, with the destination of
  the datagram that caused it, on the socket's *error queue*, which ``recvmsg(MSG_ERRQUEUE)``
  reads. The socket polls as ``EPOLLERR`` (even with no events registered, so while paused
  too) until the queue is read.
* Linux *also* sets the socket's pending error, and the next ``sendto`` or ``recvfrom`` fails
  with it (ECONNREFUSED...) — for ``sendto``, without sending the new datagram. Reading the
  error queue clears that pending error.

So ``UdpEndpoint`` turns ``IP_RECVERR`` on, drains the queue whenever the loop reports an error
condition (``handle_fd_error``), and when ``sendto``/``recvfrom`` fails with an error that the
queue explains, drains it and (for ``sendto``) tries the datagram once more. Each queued error
becomes one ``'socket_error'`` event naming the destination; none of them closes the endpoint.
Checked on Linux 6.x with loopback: a datagram to a closed port of 127.0.0.1, ::1 or (from a
dual-stack socket) ::ffff:127.0.0.1 gives one queued ECONNREFUSED, and the following
``sendto`` fails with ECONNREFUSED until the queue is read.

Elsewhere the error queue does not exist: unconnected endpoints get no ICMP reports, and a
pending socket error (``SO_ERROR``) is reported when the loop signals it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys

__all__ = ["ASYNC_ERRNOS", "SUPPORTED", "describe_address", "enable", "read_errors"]

SUPPORTED = sys.platform.startswith("linux")

# Linux values; older Pythons' socket module does not define them.
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)

# struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_ORIGINS = {1: "a local error", 2: "ICMP", 3: "ICMPv6"}

# errno values a sendto/recvfrom may return because of an earlier datagram's ICMP error
ASYNC_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPROTO,
        errno.EMSGSIZE,
        errno.ETIMEDOUT,
        errno.EACCES,
        errno.EPERM,
        errno.ENOPROTOOPT,
    }
)


def enable(sock: socket.socket) -> bool:
    """Turn on the error queue of a UDP socket. Returns whether it is on."""
    if not SUPPORTED:
        return False
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            try:  # for the IPv4 traffic of a dual-stack socket
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
            except OSError:
                pass
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError:
        return False
    return True


def describe_address(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """``host:port`` (``[host]:port`` for IPv6), IPv4-mapped addresses shown as IPv4."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_errors(sock: socket.socket, limit: int = 64) -> list[tuple[int, str]]:
    """Read (and so clear) up to ``limit`` queued errors.

    Returns:
        ``(errno, description)`` per error, oldest first; the description names the cause and
        the destination of the datagram, e.g. ``"Connection refused (reported by ICMP for a
        datagram sent to 127.0.0.1:9)"``.
    """
    errors: list[tuple[int, str]] = []
    for _ in range(limit):
        try:
            _, ancdata, _, address = sock.recvmsg(1, 512, _MSG_ERRQUEUE)
        except OSError:  # EAGAIN: the queue is empty (or there is none)
            break
        code = 0
        origin = "the network"
        for level, kind, data in ancdata:
            if (
                (level == socket.IPPROTO_IP and kind == _IP_RECVERR)
                or (level == socket.IPPROTO_IPV6 and kind == _IPV6_RECVERR)
            ) and len(data) >= _EXTENDED_ERR.size:
                fields = _EXTENDED_ERR.unpack_from(data)
                code = fields[0]
                origin = _ORIGINS.get(fields[1], origin)
        if not code:
            continue
        where = describe_address(address) if isinstance(address, tuple) else "?"
        errors.append(
            (code, f"{os.strerror(code)} (reported by {origin} for a datagram sent to {where})")
        )
    return errors
