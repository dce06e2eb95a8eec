"""TcpServer: accepts connections on a listening socket and hands them out as TcpConnections.

Accepting is bounded per wake-up (``accept_batch``): an unbounded accept loop under a connection
storm starves every established connection of the loop's time. When the process runs out of file
descriptors or memory, accepting pauses for ``accept_backoff`` seconds instead of spinning on the
still-readable listening socket.
"""

from __future__ import annotations

import errno
import math
import os
import socket
from typing import TYPE_CHECKING, Any

from thor.loop import FD_READABLE, EventSource

from ._connection import TcpConnection, emit_connect
from ._listen import server_listen

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

__all__ = ["TcpServer"]

_BLOCKING = (BlockingIOError, InterruptedError)
#: setsockopt(IPPROTO_TCP, ...) on a socket that is not TCP (a Unix socket)
_NOT_TCP = frozenset(
    getattr(errno, name) for name in ("EOPNOTSUPP", "ENOPROTOOPT") if hasattr(errno, name)
)

#: accept() failures that concern one incoming connection only: skip it and go on
TRANSIENT_ACCEPT_ERRORS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "ENETUNREACH",
        "ETIMEDOUT",
        "EPERM",
        "ENOPROTOOPT",
        "EOPNOTSUPP",
    )
    if hasattr(errno, name)
)


class TcpServer(EventSource):
    """Listens on a TCP (or Unix) socket and emits each accepted connection.

    Args:
        host: the address to listen on, as bytes: an IPv4/IPv6 literal, a name, or ``b""`` for
            all addresses (dual-stack where IPv6 works).
        port: the port; 0 picks a free one (the ``port`` attribute then says which).
        sock: an already listening socket to use instead (e.g. inherited from a supervisor, or
            from ``server_listen_unix``); ``host`` and ``port`` are then informative only.
        loop: the loop; the default loop when None.
        backlog: the listen queue length (default ``socket.SOMAXCONN``).
        reuse_port: set SO_REUSEPORT, so several processes can share the port.

    Attributes:
        host, port: where it listens.
        sock: the listening socket (None after shutdown).
        active_connections: the accepted connections not yet disconnected.

    Settings (class attributes):
        accept_backoff: seconds to stop accepting after running out of fds or memory (1.0).
        accept_batch: the most connections accepted per wake-up (128).
        max_connections: stop accepting while this many connections are open (None: no cap).
        connection_class: the class accepted sockets are wrapped in (TcpConnection; one that
            keeps TcpConnection's constructor is called with ``watch=False``).

    Events:
        start (): on the loop's first turn after construction; once.
        connect (TcpConnection): a connection was accepted (it starts paused); many times.
        accept_paused (errno: int): accepting stopped for ``accept_backoff`` seconds because
            of that error (EMFILE, ENFILE, ENOBUFS, ENOMEM...).
        accept_resumed (): accepting again after a pause.
        stop (): the server stopped listening (``shutdown``), or, after ``graceful_shutdown``,
            its last connection closed; once.
    """

    accept_backoff: float = 1.0
    accept_batch: int = 128
    max_connections: int | None = None
    connection_class: type[TcpConnection] = TcpConnection

    def __init__(
        self,
        host: bytes,
        port: int,
        sock: socket.socket | None = None,
        loop: LoopBase | None = None,
        backlog: int | None = None,
        *,
        reuse_port: bool = False,
    ) -> None:
        EventSource.__init__(self, loop)
        self.host = host
        self.sock: socket.socket | None = sock or server_listen(
            host, port, backlog, reuse_port=reuse_port
        )
        self.sock.setblocking(False)
        bound = self.sock.getsockname()
        self.port = bound[1] if isinstance(bound, tuple) else port
        self.active_connections: set[TcpConnection] = set()
        self._accepting = True
        self._backoff: ScheduledEvent | None = None
        self._stopping = False
        self._stopped = False
        self._listen_fd = self.sock.fileno()
        # accepted sockets are made from the raw accept's fd with the listener's family, type
        # and protocol as plain ints: socket.accept() reads them through properties that
        # convert to enums (about 1 µs each, three per connection)
        self._accept_args = (int(self.sock.family), int(self.sock.type), self.sock.proto)
        self.loop._fd_register(self._listen_fd, FD_READABLE, self)
        self.loop.schedule(0, self.emit, "start")

    def handle_fd_readable(self) -> None:
        """The listening socket is readable: accept up to ``accept_batch`` connections."""
        sock = self.sock
        if sock is None:
            return
        cap = self.max_connections
        active = self.active_connections
        raw_accept = getattr(sock, "_accept", None)  # CPython's socket: (fd, address)
        family, kind, proto = self._accept_args
        for _ in range(self.accept_batch):
            if cap is not None and len(active) + self._held() >= cap:
                self._set_accepting(False)
                return
            try:
                if raw_accept is None:
                    conn_sock, address = sock.accept()
                else:
                    fd, address = raw_accept()
                    try:
                        conn_sock = socket.socket(family, kind, proto, fileno=fd)
                    except BaseException:
                        os.close(fd)
                        raise
            except _BLOCKING:
                return
            except OSError as exc:
                if exc.errno in TRANSIENT_ACCEPT_ERRORS:
                    continue
                self._pause_accepting(exc.errno or errno.EIO)
                return
            self._accepted(conn_sock, address)
            if self.sock is None:  # a listener shut the server down
                return

    def _accepted(self, conn_sock: socket.socket, address: Any) -> None:
        """Wrap an accepted socket and emit it; subclasses (TLS) handshake first.

        The connection goes on the loop only after the ``'connect'`` listeners: one that reads
        at once, answers and closes (an HTTP server with the request already there) never
        costs the poller a registration and its removal."""
        cls = self.connection_class
        try:
            if cls.__init__ is TcpConnection.__init__:
                conn = cls(conn_sock, address, self.loop, watch=False)
            else:  # its own constructor (perhaps without ``watch``): on the loop at once
                conn = cls(conn_sock, address, self.loop)
        except BaseException:
            conn_sock.close()
            raise
        conn._server = self
        self.active_connections.add(conn)
        try:
            emit_connect(self, conn)
        finally:
            conn._watch()

    def defer_accept(self, seconds: float) -> bool:
        """Have the kernel hand over a connection only once its first bytes have arrived, or
        after some ``seconds`` of silence from it; 0 turns that off again. For protocols whose
        client speaks first (HTTP, TLS, a PROXY header): the connection then arrives with its
        first bytes to read, so one that is answered and closed in its ``'connect'`` listener
        costs no extra wake-up and no poll registration.

        Linux's TCP_DEFER_ACCEPT: the kernel rounds ``seconds`` up to its SYN-ACK retransmission
        schedule (1, 3, 7, 15... seconds) and hands a silent connection over when the client
        answers the SYN-ACK it sends again at the end of that time (one that never answers is
        dropped after ``tcp_synack_retries``). Until then the connection is in the kernel's SYN
        queue (at most ``backlog`` of them; SYN cookies or dropped SYNs beyond), not counted in
        ``active_connections`` nor ``max_connections``, and when the listener closes it is
        dropped without a packet: the client learns of it, by a reset, only when it sends.

        Returns:
            True when set; False where the platform or the socket (a Unix socket) has no such
            option, or the server has stopped listening.

        Raises:
            ValueError: ``seconds`` is not a finite number >= 0.
            OSError: the kernel refused the option for another reason.
        """
        given: object = seconds
        if (
            isinstance(given, bool)
            or not isinstance(given, (int, float))
            or not 0 <= given < math.inf  # (NaN too)
        ):
            raise ValueError(f"defer_accept needs a finite number of seconds >= 0, not {seconds!r}")
        option = getattr(socket, "TCP_DEFER_ACCEPT", None)
        sock = self.sock
        if option is None or sock is None:
            return False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, min(math.ceil(seconds), 2**31 - 1))
        except OSError as exc:
            if exc.errno in _NOT_TCP:
                return False
            raise
        return True

    def shutdown(self) -> None:
        """Stop listening and close the listening socket; emit ``'stop'``. Open connections
        are left alone. Idempotent."""
        self._close_listener()
        self._emit_stop()

    def graceful_shutdown(self) -> None:
        """Stop listening; emit ``'stop'`` once every open connection has closed (at once when
        none is open). Idempotent."""
        self._close_listener()
        self._stopping = True
        if not self.active_connections:
            self._emit_stop()

    def _close_listener(self) -> None:
        if self._backoff is not None:
            self._backoff.delete()
            self._backoff = None
        sock, self.sock = self.sock, None
        if sock is not None:
            if self._accepting:
                self.loop._fd_unregister(self._listen_fd)
            self._accepting = False
            sock.close()

    def _emit_stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.emit("stop")

    def _set_accepting(self, accepting: bool) -> None:
        if accepting != self._accepting and self.sock is not None:
            self._accepting = accepting
            if accepting:
                self.loop._fd_register(self._listen_fd, FD_READABLE, self)
            else:
                self.loop._fd_unregister(self._listen_fd)

    def _pause_accepting(self, code: int) -> None:
        self._set_accepting(False)
        if self._backoff is None:
            self._backoff = self.loop.schedule(self.accept_backoff, self._resume_accepting)
            self.emit("accept_paused", code)

    def _resume_accepting(self) -> None:
        self._backoff = None
        if self.sock is not None:
            self._set_accepting(True)
            self.emit("accept_resumed")

    def _connection_closed(self, conn: TcpConnection) -> None:
        self.active_connections.discard(conn)
        if self._stopping:
            if not self.active_connections:
                self._emit_stop()
        else:
            self._below_cap()

    def _held(self) -> int:
        """Accepted sockets a subclass holds before they become connections (a PROXY header
        being read before TLS): they count against ``max_connections`` too."""
        return 0

    def _held_released(self) -> None:
        """A subclass let go of a held socket (made it a connection, or closed it): accept
        again if that brings the count under ``max_connections``."""
        if not self._stopping:
            self._below_cap()

    def _below_cap(self) -> None:
        if (
            not self._accepting
            and self._backoff is None
            and self.max_connections is not None
            and len(self.active_connections) + self._held() < self.max_connections
        ):
            self._set_accepting(True)

    def __repr__(self) -> str:
        state = "stopped" if self.sock is None else "listening" if self._accepting else "paused"
        return (
            f"<TcpServer {self.host!r}:{self.port} {state} "
            f"connections={len(self.active_connections)}>"
        )
