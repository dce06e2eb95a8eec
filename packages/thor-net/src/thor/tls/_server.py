"""TlsServer: a TcpServer whose connections are handed out after a TLS handshake.

Theory of operation
-------------------
Accepting is TcpServer's (bounded batches, back-off when out of fds or memory,
``max_connections``); each accepted socket is wrapped and its handshake runs on the loop, one
non-blocking step whenever the socket is ready (the first step at once: the ClientHello is
usually there already). A client that connects and sends nothing costs one registered fd and a
timer, never the loop's time; after ``handshake_timeout`` it is closed.

A connection counts in ``active_connections`` from accept (so ``max_connections`` bounds
half-open handshakes too) until it closes; one whose handshake fails is closed quietly (a DEBUG
log on ``thor.tls`` and a ``'tls_error'`` event) and leaves the set. ``'connect'`` is emitted
only after a successful handshake. ``shutdown()`` and ``graceful_shutdown()`` also abandon the
handshakes in progress: those connections were never handed out, nobody else can close them.

SNI: ``sni_contexts`` maps server names to contexts; the server's context gets an SNI callback
that moves each connection to the context of the name the client asked for (exact name, else a
``*.parent`` wildcard entry, else the default context).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thor.tcp import TcpServer
from thor.tcp._connection import emit_connect

from ._connection import TlsConnection
from ._context import describe_failure, server_context

if TYPE_CHECKING:
    from typing import TypeAlias

    from thor.loop import LoopBase

    #: What ``sni_contexts`` maps a name to: a context, or ``(certfile, keyfile)``.
    SniTarget: TypeAlias = (
        ssl.SSLContext | tuple[str | os.PathLike[str], str | os.PathLike[str] | None]
    )

__all__ = ["TlsServer"]

logger = logging.getLogger("thor.tls")

_BLOCKING = (BlockingIOError, InterruptedError)


class TlsServer(TcpServer):
    """Listens on a TCP (or Unix) socket and emits each connection once its TLS handshake is done.

    Args:
        host, port, sock, loop, backlog, reuse_port: as for TcpServer.
        certfile: PEM file with the certificate chain (and the key unless ``keyfile`` is given).
        keyfile: PEM file with the private key.
        password: the key's password, if it is encrypted.
        context: a server ``ssl.SSLContext`` to use instead of ``certfile``/``keyfile``. It is
            used as it is, except that with ``sni_contexts`` the server installs its SNI
            callback on it (refused if it has one already).
        sni_contexts: server name -> context, or name -> ``(certfile, keyfile)``, for clients
            asking for that name through SNI (``"*.example.com"`` covers one label). Contexts
            made from files get ``alpn_protocols``; given contexts keep their own ALPN.
        alpn_protocols: the ALPN protocols accepted, preferred first: the first one the client
            also offers wins. Not with ``context`` (set ALPN on it).

    Attributes:
        context: the default server context.
        host, port, sock, active_connections: as on TcpServer (``active_connections``
            includes connections still handshaking).

    Settings (class attributes):
        handshake_timeout: seconds a connection has to complete its handshake, then it is
            closed (and ``'tls_error'`` emitted); None for no limit (10.0).
        connection_class: the class of the connections (TlsConnection).
        accept_backoff, accept_batch, max_connections: as on TcpServer.

    Events:
        start (): on the loop's first turn after construction; once.
        connect (TlsConnection): a client connected and completed the handshake (the connection
            starts paused); many times.
        tls_error (address, message: str): a handshake failed or timed out; the connection was
            closed. Informational (no listener needed); many times.
        accept_paused (errno: int), accept_resumed (): as on TcpServer.
        stop (): as on TcpServer; once.
    """

    handshake_timeout: float | None = 10.0
    connection_class: type[TlsConnection] = TlsConnection

    def __init__(
        self,
        host: bytes,
        port: int,
        sock: socket.socket | None = None,
        loop: LoopBase | None = None,
        backlog: int | None = None,
        *,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        password: str | bytes | None = None,
        context: ssl.SSLContext | None = None,
        sni_contexts: Mapping[str, SniTarget] | None = None,
        alpn_protocols: Sequence[str] | None = None,
        reuse_port: bool = False,
    ) -> None:
        # every context is complete before the listening socket exists: a bad file raises here
        if (context is None) == (certfile is None):
            raise ValueError("TlsServer needs a certfile (and keyfile) or a context, not both")
        if context is not None:
            if alpn_protocols is not None or keyfile is not None:
                raise ValueError("a given context is used as it is: set ALPN and keys on it")
        else:
            assert certfile is not None
            context = server_context(certfile, keyfile, password, alpn_protocols)
        self._sni: dict[str, ssl.SSLContext] = {}
        for name, target in (sni_contexts or {}).items():
            self._sni[name.lower().rstrip(".")] = (
                target
                if isinstance(target, ssl.SSLContext)
                else server_context(target[0], target[1], password, alpn_protocols)
            )
        if self._sni and context.sni_callback is not None:
            raise ValueError("the given context has an sni_callback already")
        self.context = context
        self._handshaking: set[TlsConnection] = set()
        TcpServer.__init__(self, host, port, sock, loop, backlog, reuse_port=reuse_port)
        if self._sni:  # only now: a failed bind leaves a given context as it was
            context.sni_callback = self._select_context

    def _accepted(self, conn_sock: socket.socket, address: Any) -> None:
        """Start the TLS handshake of an accepted socket; ``'connect'`` follows its success."""
        self.start_handshake(conn_sock, address)

    def start_handshake(self, conn_sock: socket.socket, address: Any) -> None:
        """Wrap an accepted, still plain socket and start its TLS handshake; ``'connect'``
        follows its success, ``'tls_error'`` its failure (the socket is then closed).

        TlsServer calls it for every accepted socket; a subclass that first reads something
        sent in the clear before the handshake (a PROXY protocol header from a load balancer)
        overrides ``_accepted`` and calls this afterwards, with the address it learned.
        """
        conn_sock.setblocking(False)
        try:
            tls_sock = self.context.wrap_socket(
                conn_sock,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=False,
            )
        except OSError as exc:  # the client is gone already
            conn_sock.close()
            self._report(address, describe_failure(exc)[2])
            return
        conn = self.connection_class(tls_sock, address, self.loop)
        conn._server = self
        self.active_connections.add(conn)
        self._handshaking.add(conn)
        conn._start_handshake(self._handshake_done, self.handshake_timeout)

    def _handshake_done(self, conn: TlsConnection, exc: BaseException | None) -> None:
        self._handshaking.discard(conn)
        if exc is None:
            emit_connect(self, conn)
            return
        conn.abort()
        self._report(conn.address, describe_failure(exc)[2])

    def _report(self, address: object, message: str) -> None:
        logger.debug("TLS handshake with %r failed: %s", address, message)
        self.emit("tls_error", address, message)

    def _select_context(
        self, sslobj: ssl.SSLSocket | ssl.SSLObject, name: str | None, context: ssl.SSLContext
    ) -> int | None:
        """SNI callback: switch the connection to the context of the name asked for."""
        if name:
            name = name.lower().rstrip(".")
            chosen = self._sni.get(name)
            if chosen is None and "." in name:
                chosen = self._sni.get("*." + name.split(".", 1)[1])
            if chosen is not None:
                sslobj.context = chosen
        return None

    def shutdown(self) -> None:
        """Stop listening, close the listening socket and the connections still handshaking;
        emit ``'stop'``. Established connections are left alone. Idempotent."""
        TcpServer.shutdown(self)
        self._abandon_handshakes()

    def graceful_shutdown(self) -> None:
        """Stop listening and close the connections still handshaking; emit ``'stop'`` once
        every established connection has closed. Idempotent."""
        TcpServer.graceful_shutdown(self)
        self._abandon_handshakes()

    def _abandon_handshakes(self) -> None:
        pending, self._handshaking = self._handshaking, set()
        for conn in pending:
            conn.abort()

    def __repr__(self) -> str:
        return TcpServer.__repr__(self).replace("<TcpServer", "<TlsServer", 1)
