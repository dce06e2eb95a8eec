"""TcpClient: opens one outgoing connection, racing addresses in the happy-eyeballs fashion.

Theory of operation
-------------------
A host name is resolved on the loop (``thor.dns.lookup``, IPv6 and IPv4 interleaved); an IP
literal is used as it is. ``check_ip`` may veto addresses. Connection attempts start one after
another: the next one when the previous failed, or after ``connect_attempt_delay`` (RFC 8305's
250 ms) when it is merely slow, so a broken IPv6 path costs a quarter of a second, not a timeout.
The first attempt to connect wins; the others are closed. ``connect_timeout`` covers resolution
and every attempt. The outcome is exactly one ``'connect'`` or one ``'connect_error'``, unless
``cancel()`` comes first: then there is none.

Everything an attempt leaves pending is undone by ``_finish`` (the one exit: success, error and
``cancel()`` all pass through it): timers and deferred reports are deleted, sockets still
connecting are closed. A name lookup cannot be called off, so its answer carries the attempt's
generation (bumped by ``_finish``) and is dropped when it comes back for an earlier one.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from thor.loop import FD_WRITABLE, EventSource

from ._connection import TcpConnection, emit_connect

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

__all__ = ["TcpClient"]

DnsResult = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}


def ip_literal(host: bytes, port: int) -> DnsResult | None:
    """The connect target for an IPv4/IPv6 literal (``b"[::1]"`` too), or None for a name."""
    text = host.decode("ascii", "replace")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6:
        info = socket.getaddrinfo(
            text, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
        return (socket.AF_INET6, socket.SOCK_STREAM, 0, "", info[0][4])
    return (socket.AF_INET, socket.SOCK_STREAM, 0, "", (text, port))


class _Attempt:
    """One connecting socket; the loop tells it when the connect finished."""

    __slots__ = ("client", "fd", "result", "sock")

    def __init__(self, client: TcpClient, sock: socket.socket, result: DnsResult) -> None:
        self.client = client
        self.sock = sock
        self.result = result
        self.fd = sock.fileno()

    def handle_fd_writable(self) -> None:
        self.client._attempt_finished(self)

    handle_fd_error = handle_fd_close = handle_fd_writable

    def handle_fd_readable(self) -> None:
        pass

    def close(self) -> None:
        self.client.loop._fd_unregister(self.fd)
        self.sock.close()


class TcpClient(EventSource):
    """Connects to a TCP server (or a Unix socket) and emits the connection.

    Args:
        loop: the loop; the default loop when None.

    Attributes:
        check_ip: None, or a callable taking an IP address string and returning whether
            connecting there is allowed (e.g. to keep a fetcher off private networks).
        hostname: the host given to ``connect`` (bytes).
        address: the address connected to, once connected.

    Settings (class attributes):
        connect_attempt_delay: seconds before racing the next address while one is still
            connecting (0.25, RFC 8305).

    Events:
        connect (TcpConnection): connected; the connection starts paused. Once per attempt;
            never after ``cancel()``.
        connect_error (err_type: str, err_id: int, err_str: str): connecting failed; once per
            attempt, and never after ``connect`` or ``cancel()``.
            err_type is "socket" (errno from the OS; ETIMEDOUT for ``connect_timeout``),
            "gai" (resolution failed; err_id an EAI_* code) or "access" (``check_ip`` refused
            every address; emitted before ``connect`` returns for an IP literal).
    """

    connect_attempt_delay: float = 0.25

    def __init__(self, loop: LoopBase | None = None) -> None:
        EventSource.__init__(self, loop)
        self.check_ip: Callable[[str], bool] | None = None
        self.hostname: bytes | None = None
        self.address: Any = None
        self.sock: socket.socket | None = None
        self._port = 0
        self._pending: deque[DnsResult] = deque()
        self._attempts: list[_Attempt] = []
        self._timeout_ev: ScheduledEvent | None = None
        self._delay_ev: ScheduledEvent | None = None
        self._report_ev: ScheduledEvent | None = None
        self._generation = 0
        self._last_error: tuple[str, int, str] | None = None
        self._error_sent = False
        self._busy = False

    # -- starting -------------------------------------------------------------------------------

    def connect(self, host: bytes, port: int, connect_timeout: float | None = None) -> None:
        """Connect to ``host`` (bytes: a name, or an IPv4/IPv6 literal) and ``port``.

        Raises:
            RuntimeError: this client is already connecting.
        """
        self._begin(host, port, connect_timeout)
        try:
            literal = ip_literal(host, port)
        except (OSError, UnicodeError) as exc:  # an IPv6 zone that names no interface
            code = exc.errno if isinstance(exc, OSError) and exc.errno else socket.EAI_NONAME
            # reported from the loop, as a failed lookup is
            self._report_ev = self.loop.schedule(0, self._error, "gai", code, f"{host!r}: {exc}")
            return
        if literal is not None:
            self._start([literal])
            return
        from thor import dns  # noqa: PLC0415 - resolving names is the uncommon path

        resolved = partial(self._resolved, self._generation)
        dns.lookup(self.loop, host, port, socket.SOCK_STREAM, resolved)

    def connect_dns(
        self, hostname: bytes, dns_result: DnsResult, connect_timeout: float | None = None
    ) -> None:
        """Connect to one already-resolved ``thor.dns`` result (``hostname`` is informative)."""
        self._begin(hostname, dns_result[4][1], connect_timeout)
        self._start([dns_result])

    def connect_unix(self, path: str | bytes, connect_timeout: float | None = None) -> None:
        """Connect to the Unix domain stream socket at ``path``."""
        self._begin(os.fsencode(path), 0, connect_timeout)
        self._start([(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", path)])

    def _begin(self, host: bytes, port: int, connect_timeout: float | None) -> None:
        if self._busy:
            raise RuntimeError("this TcpClient is already connecting")
        self._busy = True
        self._error_sent = False
        self._last_error = None
        self.hostname = host
        self._port = port
        if connect_timeout:
            self._timeout_ev = self.loop.schedule(connect_timeout, self._timed_out)

    def _resolved(self, generation: int, results: list[DnsResult] | Exception) -> None:
        if generation != self._generation:  # the attempt it was for is over (or cancelled)
            return
        if isinstance(results, Exception):
            code = results.errno if isinstance(results, OSError) and results.errno else 0
            self._error("gai", code, str(results) or type(results).__name__)
        elif not results:
            self._error("gai", socket.EAI_NONAME, "no address for this name")
        else:
            self._start(results)

    def _start(self, results: list[DnsResult]) -> None:
        check = self.check_ip
        if check is not None:
            results = [r for r in results if r[0] == socket.AF_UNIX or check(str(r[4][0]))]
            if not results:
                self._error("access", 0, "IP check failed")
                return
        self._pending = deque(results)
        self._next_attempt()

    # -- attempts -------------------------------------------------------------------------------

    def _next_attempt(self) -> None:
        self._delay_ev = None
        while self._busy and self._pending:
            result = self._pending.popleft()
            try:
                sock = socket.socket(result[0], socket.SOCK_STREAM)
            except OSError as exc:
                self._last_error = ("socket", exc.errno or 0, exc.strerror or str(exc))
                continue
            sock.setblocking(False)
            code = sock.connect_ex(result[4])
            if code == 0 or (code in _IN_PROGRESS and result[0] != socket.AF_UNIX):
                attempt = _Attempt(self, sock, result)
                self._attempts.append(attempt)
                self.loop._fd_register(attempt.fd, FD_WRITABLE, attempt)
                if self._pending:
                    self._delay_ev = self.loop.schedule(
                        self.connect_attempt_delay, self._next_attempt
                    )
                return
            sock.close()
            self._last_error = ("socket", code, os.strerror(code))
        if self._busy and not self._attempts:
            # reported from the loop, never from inside connect(): the caller may not be ready
            error = self._last_error or ("socket", errno.EHOSTUNREACH, "no address")
            self._report_ev = self.loop.schedule(0, self._error, *error)

    def _attempt_finished(self, attempt: _Attempt) -> None:
        try:
            code = attempt.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            code = exc.errno or errno.EIO
        self._attempts.remove(attempt)
        if code:
            attempt.close()
            self._last_error = ("socket", code, os.strerror(code))
            if self._delay_ev is not None:
                self._delay_ev.delete()
            self._next_attempt()
            return
        self.loop._fd_unregister(attempt.fd)
        self._stop_attempts()
        self.sock = attempt.sock
        self.address = attempt.result[4]
        self._connected(attempt.sock, attempt.result[4])

    def cancel(self) -> None:
        """Abandon the connection attempt in progress, if any. Idempotent.

        Every connecting socket is closed (a TlsClient's socket in its handshake too), the
        ``connect_timeout`` and racing timers are stopped, and a name lookup still running is
        ignored when it answers: neither ``'connect'`` nor ``'connect_error'`` is emitted for
        this attempt afterwards. Once the attempt had its outcome (or before ``connect``), it
        does nothing; a connection already handed out is not affected. The client is idle
        again and may ``connect`` anew.
        """
        if self._busy:
            self._finish()

    def _finish(self) -> None:
        """Stop every timer, deferred report and pending attempt; the client is idle again."""
        self._busy = False
        self._generation += 1
        if self._timeout_ev is not None:
            self._timeout_ev.delete()
            self._timeout_ev = None
        if self._report_ev is not None:
            self._report_ev.delete()
            self._report_ev = None
        self._stop_attempts()

    def _stop_attempts(self) -> None:
        """Stop racing addresses: the other attempts, the ones not started, the delay timer."""
        if self._delay_ev is not None:
            self._delay_ev.delete()
            self._delay_ev = None
        for other in self._attempts:
            other.close()
        self._attempts = []
        self._pending.clear()

    # -- outcomes -------------------------------------------------------------------------------

    def _connected(self, sock: socket.socket, address: Any) -> None:
        """The TCP connection is up. The other attempts are stopped, but the client is still
        busy and ``connect_timeout`` still runs: subclasses (TLS) continue from here, and call
        ``_finish()`` (then ``_hand_over``) when done, or ``_error(...)`` when not."""
        self._finish()
        self._hand_over(sock, address)

    def _hand_over(self, sock: socket.socket, address: Any) -> None:
        """Wrap the connected socket and emit ``'connect'``."""
        emit_connect(self, TcpConnection(sock, address, self.loop))

    def _timed_out(self) -> None:
        self._timeout_ev = None
        self._error("socket", errno.ETIMEDOUT, "connect timed out")

    def _error(self, err_type: str, err_id: int, err_str: str) -> None:
        self._finish()
        if not self._error_sent:
            self._error_sent = True
            self.emit("connect_error", err_type, err_id, err_str)

    def __repr__(self) -> str:
        state = "connecting" if self._busy else "idle"
        return f"<TcpClient {self.hostname!r}:{self._port} {state}>"
