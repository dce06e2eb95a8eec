"""UdpEndpoint: a UDP socket on the thor loop that sends and receives datagrams.

Theory of operation
-------------------
An endpoint owns at most one socket, made when it is first needed: by ``bind``, or by the
first ``send`` (an unbound endpoint gets an ephemeral port on all addresses of the
destination's family). ``bind(b"", port)`` binds every address: one dual-stack IPv6 socket
(``::`` with IPV6_V6ONLY off, which also receives IPv4 as IPv4-mapped addresses) when the host
has IPv6, else ``0.0.0.0``. A literal address binds at once; a name is resolved first with
``thor.dns.lookup`` (hosts file, then DNS), and datagrams sent meanwhile wait for the bind.
Bind failures close the endpoint and are reported as ``'socket_error'`` on the next loop pass.

The fd is registered with the loop as soon as the socket exists; ``fd_readable`` is wanted only
while not paused (endpoints start paused, as in thor 0.17). Where the error queue exists, the
endpoint also wants ``fd_error`` and ``fd_close``: thor.loop leaves an fd with no read,
write or hang-up interest out of the kernel's poll set, and the ICMP reports must reach
``handle_fd_error`` while paused too. A UDP socket never hangs up: ``handle_fd_close`` is called
only by a loop that cannot tell a hang-up from readability (select), and it reports the queued
errors, or, if a datagram waiting made the socket readable, drops the watch until
``pause(False)`` (the loop would wake for it on every pass).
(Only where the error queue exists, that is Linux: with kqueue, ``fd_close`` interest means a
read filter, which would wake a paused endpoint for every datagram waiting.)

Receiving reads up to ``read_batch`` datagrams per readable event, until EAGAIN: bounded, so a
flood on one endpoint cannot starve the rest of the loop; the kernel keeps the rest for the
next pass. Each read is ``recvfrom(65536)``: every UDP payload (at most 65527 bytes) fits, so
nothing is ever truncated (thor 0.17 read 8 KiB and silently cut longer datagrams). Measured on
Linux with CPython 3.11, ``recvfrom(65536)`` beat ``recvfrom_into`` a reused buffer plus the
copy out to ``bytes`` at every size: 64 B 0.94 vs 0.98 µs, 1400 B 0.90 vs 1.06 µs, 8 KiB 2.06
vs 2.44 µs, 65507 B 5.05 vs 6.99 µs (the allocator shrinks the 64 KiB block in place).

A ``'datagram'`` listener that raises propagates to the loop, which reports the exception and
carries on; the endpoint is unaffected (its state changes only before the emit), the datagram
was delivered, and those not yet read stay in the kernel for the next pass. A listener that
pauses or shuts the endpoint down stops the batch at once.

Sending is one ``sendto`` to a cached socket address. Thor 0.17's rules are kept: EAGAIN (a
full socket buffer) drops the datagram silently, as UDP may; a datagram over ``max_dgram``
raises ValueError; sending after ``shutdown()`` raises OSError. Other failures of one datagram
(no route, a destination of the wrong family) are reported as ``'socket_error'`` on the next
loop pass (an unresolvable name, when its lookup fails) and leave the endpoint open. A
destination may be a name: it is resolved with ``thor.dns.lookup`` (cached there) and its
datagrams are sent, in order, once it is; literals avoid that detour on hot paths.

ICMP errors (port unreachable...) are reported on Linux through the socket error queue, as
``'socket_error'`` events that leave the endpoint open: see ``_errqueue`` for how, and why the
endpoint retries a ``sendto`` that fails with an earlier datagram's error.
"""

from __future__ import annotations

import errno
import os
import socket
from functools import partial
from typing import TYPE_CHECKING

from thor.dns import Address, DnsResultList, lookup, parse_ip_literal
from thor.loop import EventSource

from . import _errqueue

if TYPE_CHECKING:
    from thor.loop import LoopBase

__all__ = ["MAX_DGRAM_IPV4", "MAX_DGRAM_IPV6", "UdpEndpoint"]

MAX_DGRAM_IPV4 = 65507  # 65535 - 20 (IPv4 header) - 8 (UDP header)
MAX_DGRAM_IPV6 = 65527  # 65535 - 8: the IPv6 payload length counts the UDP header only
_RECV_SIZE = 65536
_MAX_CACHED_DESTINATIONS = 256
_DROPPED = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})
_NO_IPV6 = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})
#: what the endpoint watches for the error queue's reports where there is one (see above)
_ERROR_WATCH = frozenset({"fd_error", "fd_close"})
_FATAL = frozenset({errno.EBADF, errno.ENOTSOCK, errno.EFAULT, errno.EINVAL})


class UdpEndpoint(EventSource):
    """A UDP endpoint: bind it (or not), send datagrams, and receive them as events.

    Args:
        loop: the loop to run on; the default loop when None.

    Attributes:
        host: the host given to ``bind`` (bytes, as given), or None before.
        port: the bound port (the actual one when 0 was asked), once a socket exists.
        sock: the socket; None until ``bind`` or the first ``send`` makes it, and after
            ``shutdown``.
        max_dgram: the largest datagram ``send`` accepts, in bytes: 65507 (the IPv4 limit,
            65535 minus the IP and UDP headers) unless the socket is IPv6-only, then 65527 (IPv6
            counts only the UDP header). A dual-stack socket keeps 65507, valid for both
            families. It is also capped by the socket's SO_SNDBUF.
        read_batch: datagrams read per readable event at most (class setting, default 64).

    Events:
        datagram (data: bytes, host: str, port: int): one datagram received, whole; host is
            the sender's address (IPv4-mapped senders on a dual-stack socket are shown as
            IPv4; an IPv6 zone as ``%index``). Fires per datagram while not paused.
        socket_error (err_type: str, err_id: int, err_str: str): something failed: err_type
            ``"gai"`` (resolving a name; err_id is the ``socket.EAI_*`` code) or ``"socket"``
            (err_id is an errno). A failed bind closes the endpoint; errors about sent
            datagrams (ICMP reports, no route, an unresolvable destination) do not. May fire
            many times.
    """

    read_batch: int = 64

    def __init__(self, loop: LoopBase | None = None) -> None:
        EventSource.__init__(self, loop)
        self.host: bytes | str | None = None
        self.port: int | None = None
        self.sock: socket.socket | None = None
        self.max_dgram = MAX_DGRAM_IPV4
        self._closed = False
        self._paused = True
        self._family = 0
        self._dual_stack = False
        self._errqueue = False
        self._bind_pending = False
        self._waiting_for_bind: list[tuple[bytes, bytes | str, int]] = []
        self._resolving: dict[tuple[bytes | str, int], list[bytes]] = {}
        self._destinations: dict[tuple[bytes | str, int], Address] = {}

    # -- binding ----------------------------------------------------------------------------------

    def bind(
        self,
        host: bytes | str,
        port: int,
        *,
        reuse_address: bool = False,
        reuse_port: bool = False,
    ) -> None:
        """Bind to ``host`` and ``port`` (0: an ephemeral port).

        ``b""`` binds all addresses (IPv6 and IPv4 where the host has IPv6). An IP literal binds
        now; a name is resolved first (``'socket_error'`` ``"gai"`` and a closed endpoint if it
        does not resolve). A name with several addresses binds the first that works.

        Args:
            host: an IP literal, a name, or empty for all addresses (bytes, or str).
            port: the port.
            reuse_address: set SO_REUSEADDR (lets several sockets bind the same address, e.g.
                for multicast; off by default so a port in use is an error).
            reuse_port: set SO_REUSEPORT (several processes share the port; the kernel spreads
                the datagrams among them).

        Raises:
            OSError: the endpoint is shut down, or already has a socket (bound, binding, or
                made by an earlier ``send``).
            ValueError: the port is out of range, or SO_REUSEPORT does not exist here.
        """
        if self._closed:
            raise OSError(errno.EBADF, "UDP endpoint closed")
        if self.sock is not None or self._bind_pending:
            raise OSError(errno.EINVAL, "UDP endpoint already bound (or has sent)")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, not {port!r}")
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("SO_REUSEPORT is not available on this platform")
        self.host = host
        self.port = port
        options = (reuse_address, reuse_port)
        if not host:
            self._bind_all(port, options)
            return
        literal = parse_ip_literal(host)
        if literal is not None:
            family, address, scope_id = literal
            sockaddr: Address = (
                (address, port, 0, scope_id) if family == socket.AF_INET6 else (address, port)
            )
            self._bind_first([(family, sockaddr)], options)
            return
        self._bind_pending = True
        lookup(self.loop, host, port, socket.SOCK_DGRAM, partial(self._bind_resolved, options))

    def _bind_all(self, port: int, options: tuple[bool, bool]) -> None:
        if socket.has_ipv6:
            sock = None
            try:
                sock = self._new_socket(socket.AF_INET6, options, dual_stack=True)
                sock.bind(("::", port))
            except OSError as exc:
                if sock is not None:
                    sock.close()
                if exc.errno not in _NO_IPV6:
                    self._bind_failed("socket", exc.errno or 0, str(exc.strerror or exc))
                    return
            else:
                self._adopt(sock, dual_stack=True)
                return
        self._bind_first([(socket.AF_INET, ("0.0.0.0", port))], options)

    def _bind_first(
        self, candidates: list[tuple[int, Address]], options: tuple[bool, bool]
    ) -> None:
        failure: OSError | None = None
        for family, sockaddr in candidates:
            sock = None
            try:
                sock = self._new_socket(family, options, dual_stack=False)
                sock.bind(sockaddr)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                failure = failure or exc
                continue
            self._adopt(sock, dual_stack=False)
            return
        if failure is None:
            self._bind_failed("gai", socket.EAI_NONAME, "no address to bind to")
        else:
            self._bind_failed("socket", failure.errno or 0, str(failure.strerror or failure))

    def _bind_resolved(self, options: tuple[bool, bool], result: DnsResultList | Exception) -> None:
        if self._closed or not self._bind_pending:
            return
        self._bind_pending = False
        if isinstance(result, Exception):
            code = result.errno if isinstance(result, OSError) and result.errno else 0
            self._bind_failed("gai", code, str(result))
            return
        self._bind_first([(entry[0], entry[4]) for entry in result], options)
        waiting, self._waiting_for_bind = self._waiting_for_bind, []
        for datagram, host, port in waiting:
            if self.sock is None:  # the bind failed (or a listener shut the endpoint down)
                break
            self.send(datagram, host, port)

    def _bind_failed(self, err_type: str, code: int, message: str) -> None:
        self.shutdown()
        self.loop.schedule(0, self.emit, "socket_error", err_type, code, message)

    def _new_socket(
        self, family: int, options: tuple[bool, bool], *, dual_stack: bool
    ) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6 and dual_stack:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if options[0]:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if options[1]:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError:
            sock.close()
            raise
        return sock

    def _adopt(self, sock: socket.socket, *, dual_stack: bool) -> None:
        self.sock = sock
        self._family = sock.family
        self._dual_stack = dual_stack
        self._errqueue = _errqueue.enable(sock)
        self._destinations.clear()
        self.port = sock.getsockname()[1]
        ipv6_only = sock.family == socket.AF_INET6 and not dual_stack
        limit = MAX_DGRAM_IPV6 if ipv6_only else MAX_DGRAM_IPV4
        self.max_dgram = min(limit, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        if self._errqueue:
            self._interesting_events = self._interesting_events | _ERROR_WATCH
        self.register_fd(sock.fileno())

    def _open_for(self, family: int) -> socket.socket | None:
        """The socket for an unbound endpoint's first send: all addresses, an ephemeral port
        (IPv6 sockets dual-stack, so IPv4 destinations work too)."""
        dual_stack = family == socket.AF_INET6
        sock = None
        try:
            sock = self._new_socket(family, (False, False), dual_stack=dual_stack)
            sock.bind(("::", 0) if dual_stack else ("0.0.0.0", 0))
        except OSError as exc:
            if sock is not None:
                sock.close()
            self._report_later("socket", exc.errno or 0, str(exc.strerror or exc))
            return None
        self._adopt(sock, dual_stack=dual_stack)
        return sock

    # -- sending ----------------------------------------------------------------------------------

    def send(self, datagram: bytes, host: bytes | str, port: int) -> None:
        """Send one datagram to ``host`` and ``port``.

        Args:
            datagram: the payload, at most ``max_dgram`` bytes.
            host: an IP literal (the fast path) or a name (resolved with ``thor.dns.lookup``);
                bytes or str.
            port: the destination port.

        Raises:
            ValueError: the datagram is longer than ``max_dgram``, or the port is out of range.
            OSError: the endpoint is shut down.
        """
        if self._closed:
            raise OSError(errno.EBADF, "UDP endpoint closed")
        if len(datagram) > self.max_dgram:
            raise ValueError(
                f"datagram of {len(datagram)} bytes is over max_dgram ({self.max_dgram} bytes)"
            )
        key = (host, port)
        sockaddr = self._destinations.get(key)
        if sockaddr is None:
            if not 0 <= port <= 65535:
                raise ValueError(f"port must be 0-65535, not {port!r}")
            if self._bind_pending:
                self._waiting_for_bind.append((datagram, host, port))
                return
            waiting = self._resolving.get(key)
            if waiting is not None:
                waiting.append(datagram)
                return
            literal = parse_ip_literal(host)
            if literal is None:
                self._resolving[key] = [datagram]
                lookup(self.loop, host, port, socket.SOCK_DGRAM, partial(self._resolved, key))
                return
            sockaddr = self._sockaddr_for(literal[0], literal[1], literal[2], port)
            if sockaddr is None:
                return
            if len(self._destinations) >= _MAX_CACHED_DESTINATIONS:
                self._destinations.clear()
            self._destinations[key] = sockaddr
        sock = self.sock
        assert sock is not None  # a cached destination implies the socket it was made for
        try:
            sock.sendto(datagram, sockaddr)
        except OSError as exc:
            self._send_failed(datagram, sockaddr, exc)

    def _sockaddr_for(self, family: int, address: str, scope_id: int, port: int) -> Address | None:
        """The address to give ``sendto`` on this endpoint's socket (made now if needed), or
        None (reported) when the socket cannot reach that family."""
        if self.sock is None and self._open_for(family) is None:
            return None
        if self._family == socket.AF_INET6:
            if family == socket.AF_INET6:
                return (address, port, 0, scope_id)
            if self._dual_stack:
                return ("::ffff:" + address, port, 0, 0)
        elif family == socket.AF_INET:
            return (address, port)
        self._report_later(
            "socket",
            errno.EAFNOSUPPORT,
            f"cannot send to {_errqueue.describe_address((address, port))}: this endpoint's "
            f"socket is {'IPv6-only' if self._family == socket.AF_INET6 else 'IPv4'}",
        )
        return None

    def _send_failed(self, datagram: bytes, sockaddr: Address, exc: OSError) -> None:
        code = exc.errno or 0
        if code in _DROPPED:
            return  # a full buffer: dropped, as UDP may (thor 0.17 did the same)
        sock = self.sock
        if sock is not None and self._errqueue and code in _errqueue.ASYNC_ERRNOS:
            # Most likely an earlier datagram's ICMP error, which stopped this one: report the
            # queued errors, then try this datagram again.
            errors = _errqueue.read_errors(sock)
            if errors:
                for error in errors:
                    self._report_later("socket", *error)
                try:
                    sock.sendto(datagram, sockaddr)
                    return
                except OSError as again:
                    exc = again
                    code = again.errno or 0
                    if code in _DROPPED:
                        return
        where = _errqueue.describe_address(sockaddr)
        self._report_later("socket", code, f"{exc.strerror or exc} (sending to {where})")

    def _resolved(self, key: tuple[bytes | str, int], result: DnsResultList | Exception) -> None:
        datagrams = self._resolving.pop(key, None)
        if self._closed or not datagrams:
            return
        if isinstance(result, Exception):
            code = result.errno if isinstance(result, OSError) and result.errno else 0
            self.emit("socket_error", "gai", code, str(result))
            return
        usable = result
        if self.sock is not None:
            wanted = {self._family} | ({socket.AF_INET} if self._dual_stack else set())
            usable = [entry for entry in result if entry[0] in wanted] or result
        family, sockaddr = usable[0][0], usable[0][4]
        scope_id = sockaddr[3] if len(sockaddr) == 4 else 0
        target = self._sockaddr_for(family, sockaddr[0], scope_id, sockaddr[1])
        if target is None:
            return
        sock = self.sock
        for datagram in datagrams:
            if self.sock is not sock or sock is None:
                return
            try:
                sock.sendto(datagram, target)
            except OSError as exc:
                self._send_failed(datagram, target, exc)

    # -- receiving ------------------------------------------------------------------------------

    def pause(self, paused: bool) -> None:
        """Stop (True) or start (False) the ``'datagram'`` events. Endpoints start paused;
        datagrams arriving meanwhile wait in the kernel's buffer (and are dropped by it when
        that is full)."""
        self._paused = paused
        if paused:
            self._interesting_events = self._interesting_events - {"fd_readable"}
        else:
            self._interesting_events = self._interesting_events | {"fd_readable"}
            if self._errqueue:  # (the error watch comes back, if handle_fd_close dropped it)
                self._interesting_events = self._interesting_events | _ERROR_WATCH
        if self.sock is not None:
            # (re-)register rather than modify: this also restores a registration that
            # ``loop.stop()`` forgot, so an endpoint works again when the loop runs again
            self.register_fd(self.sock.fileno())

    def handle_fd_readable(self) -> None:
        """Called by the loop: read and emit up to ``read_batch`` datagrams."""
        sock = self.sock
        if sock is None:
            return
        recvfrom = sock.recvfrom
        emit = self.emit
        dual_stack = self._dual_stack
        for _ in range(self.read_batch):
            try:
                data, address = recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._receive_failed(sock, exc)
                return
            host: str = address[0]
            if len(address) == 4:
                if dual_stack and host.startswith("::ffff:") and "." in host:
                    host = host[7:]
                elif address[3]:
                    host = f"{host}%{address[3]}"
            emit("datagram", data, host, address[1])
            if self._paused or self.sock is not sock:
                return

    def _receive_failed(self, sock: socket.socket, exc: OSError) -> None:
        errors = _errqueue.read_errors(sock) if self._errqueue else []
        if not errors:
            errors = [(exc.errno or 0, str(exc.strerror or exc))]
        self._emit_errors(sock, errors)
        if not self._errqueue and exc.errno in _FATAL and self.sock is sock:
            self.shutdown()

    def handle_fd_error(self) -> None:
        """Called by the loop on an error condition: report the queued (ICMP) errors."""
        sock = self.sock
        if sock is None:
            return
        errors = _errqueue.read_errors(sock) if self._errqueue else []
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # and clear it
        if code and not errors:
            errors = [(code, os.strerror(code))]
        self._emit_errors(sock, errors)

    def handle_fd_close(self) -> None:
        """Called by a loop that cannot tell a hang-up from readability (select) while the
        endpoint is paused (a UDP socket never hangs up): reports the queued (ICMP) errors, if
        that is what made it readable; if datagrams did, the error watch is dropped until
        ``pause(False)``, since the loop would otherwise wake for them on every pass."""
        sock = self.sock
        if sock is None or not self._errqueue:
            return
        errors = _errqueue.read_errors(sock)
        if errors:
            self._emit_errors(sock, errors)
        elif self._paused:
            self._interesting_events = self._interesting_events - _ERROR_WATCH
            self.register_fd(sock.fileno())

    def _emit_errors(self, sock: socket.socket, errors: list[tuple[int, str]]) -> None:
        for code, message in errors:
            if self.sock is not sock:
                return
            self.emit("socket_error", "socket", code, message)

    def _report_later(self, err_type: str, code: int, message: str) -> None:
        self.loop.schedule(0, self._report, err_type, code, message)

    def _report(self, err_type: str, code: int, message: str) -> None:
        if not self._closed:  # ("no more events" after shutdown(); a failed bind reports itself)
            self.emit("socket_error", err_type, code, message)

    # -- closing ----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close the endpoint: no more events; ``send`` and ``bind`` raise OSError. Idempotent.

        Datagrams waiting for a bind or a name resolution are dropped."""
        if self._closed:
            return
        self._closed = True
        self._bind_pending = False
        self._waiting_for_bind.clear()
        self._resolving.clear()
        self._destinations.clear()
        self.unregister_fd()
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "paused" if self._paused else "receiving"
        return f"<UdpEndpoint {state} host={self.host!r} port={self.port!r}>"
