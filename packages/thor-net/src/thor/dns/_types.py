"""The shapes of what ``thor.dns`` hands back (the aliases classic ``thor.types`` defined)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Address", "DnsCallback", "DnsResult", "DnsResultList"]

# A socket address: (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6.
Address: TypeAlias = tuple[str, int] | tuple[str, int, int, int]

# One getaddrinfo-shaped result: (family, socket type, protocol, canonical name, address).
DnsResult: TypeAlias = tuple[socket.AddressFamily, socket.SocketKind, int, str, Address]

DnsResultList: TypeAlias = list[DnsResult]

# What ``lookup`` calls: with the results, or with the exception (a ``socket.gaierror``).
DnsCallback: TypeAlias = Callable[[DnsResultList | Exception], object]
