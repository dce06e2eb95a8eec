"""TlsClient: a TcpClient that runs the TLS handshake before handing the connection out.

Theory of operation
-------------------
TcpClient does the connecting (name resolution, happy eyeballs, ``check_ip``); when TCP is up,
its ``_connected`` hook lands here with the client still busy and ``connect_timeout`` still
running, so the timeout covers connect **and** handshake. The socket is wrapped (SNI and the
host-name check use the name given to ``connect``, or ``server_hostname``; Python sends no SNI
for IP literals and checks them against the certificate's IP addresses), and the handshake runs
on the loop, never blocking it. Exactly one outcome follows (none after ``cancel()``, which
aborts a handshake in progress through ``_finish``): ``'connect'`` with a TlsConnection, or one
``'connect_error'``: ``("ssl", code, message)`` for TLS failures (a certificate problem
says which: ``"certificate verify failed: Hostname mismatch..."``), ``("socket", errno, ...)``
for a refused, reset or timed-out connection. On failure the socket is closed.

Which context: a given ``context`` is used as it is; otherwise the shared context of the
configuration (``verify``, ``ca_file``, ``alpn_protocols``) is looked up when ``connect`` is
called (see ``_context``), so ``TlsClient.verify_certificates`` may be set by an application at
any time before it connects.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thor.tcp import TcpClient
from thor.tcp._connection import emit_connect

from ._connection import TlsConnection
from ._context import client_context, describe_failure, warn_if_unverified

if TYPE_CHECKING:
    from thor.loop import LoopBase

__all__ = ["TlsClient"]


class TlsClient(TcpClient):
    """Connects to a TLS server and emits the connection once the handshake succeeded.

    Certificates and host names are verified by default, against the system's CA store.

    Args:
        loop: the loop; the default loop when None.
        context: an ``ssl.SSLContext`` to use as it is (client certificates, pinned CAs, other
            versions or ciphers...). It excludes ``verify``, ``ca_file`` and ``alpn_protocols``.
        verify: True to verify certificates and host names, False to accept any certificate
            (thor 0.17's behaviour, for tools that probe broken sites: logged once per process
            as a WARNING on the ``thor.tls`` logger); None follows ``verify_certificates``.
        ca_file: PEM file of the certificate authorities to trust instead of the system store.
        alpn_protocols: protocols to offer through ALPN, preferred first (``["h2",
            "http/1.1"]``); the connection's ``alpn_protocol`` says what the server chose.
        server_hostname: the name to send as SNI and to check the certificate against, instead
            of the host given to ``connect`` (e.g. when connecting to an address, or over a
            Unix socket, which has no name otherwise).

    Attributes:
        check_ip, hostname, address: as on TcpClient.
        tls_sock: the ``ssl.SSLSocket`` once TCP connected (None before).

    Settings (class attributes):
        verify_certificates: the default of ``verify`` for every TlsClient (True). Setting
            ``TlsClient.verify_certificates = False`` turns verification off for a whole
            application, as thor 0.17 had it; prefer ``verify=False`` on the clients that need it.
        connection_class: the class of the connections handed out (TlsConnection).
        connect_attempt_delay: as on TcpClient.

    Events:
        connect (TlsConnection): connected and handshake done; the connection starts paused.
            Once per attempt; never after ``cancel()``.
        connect_error (err_type: str, err_id: int, err_str: str): connecting failed; once per
            attempt, and never after ``connect`` or ``cancel()``.
            err_type "ssl": the TLS handshake failed (err_id is the X.509 verify code for a
            certificate problem, e.g. 62 host-name mismatch, 10 expired, 20 unknown issuer;
            else OpenSSL's error number); "socket": errno from the OS (ETIMEDOUT when
            ``connect_timeout`` passed, during connect or handshake); "gai" and "access" as on
            TcpClient.
    """

    verify_certificates: bool = True
    connection_class: type[TlsConnection] = TlsConnection

    def __init__(
        self,
        loop: LoopBase | None = None,
        *,
        context: ssl.SSLContext | None = None,
        verify: bool | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        alpn_protocols: Sequence[str] | None = None,
        server_hostname: str | None = None,
    ) -> None:
        TcpClient.__init__(self, loop)
        if context is not None and (
            verify is not None or ca_file is not None or alpn_protocols is not None
        ):
            raise ValueError(
                "a given context is used as it is: configure verification, CAs and ALPN on it"
            )
        self.tls_sock: ssl.SSLSocket | None = None
        self._given_context = context
        self._verify = verify
        self._ca_file = ca_file
        self._alpn = tuple(alpn_protocols) if alpn_protocols is not None else None
        self._server_hostname = server_hostname
        self._context: ssl.SSLContext | None = None
        self._tls_conn: TlsConnection | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """The SSL context the next (or current) connection uses. Do not modify it: unless it
        was given, it is shared with every TlsClient of the same configuration."""
        if self._given_context is not None:
            return self._given_context
        verify = self._verify if self._verify is not None else type(self).verify_certificates
        return client_context(verify, self._ca_file, self._alpn)

    def _begin(self, host: bytes, port: int, connect_timeout: float | None) -> None:
        # resolve the context first: a bad ca_file raises from connect(), before any work
        context = self.context
        TcpClient._begin(self, host, port, connect_timeout)
        self._context = context
        warn_if_unverified(context)

    def _server_name(self, sock: socket.socket) -> str | None:
        if self._server_hostname is not None:
            return self._server_hostname
        if sock.family == socket.AF_UNIX or not self.hostname:
            return None
        try:
            name = self.hostname.decode("ascii")
        except UnicodeDecodeError:
            name = self.hostname.decode("utf-8", "replace")
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        return name

    def _connected(self, sock: socket.socket, address: Any) -> None:
        context = self._context
        assert context is not None  # set by _begin
        try:
            tls_sock = context.wrap_socket(
                sock,
                server_hostname=self._server_name(sock),
                do_handshake_on_connect=False,
                suppress_ragged_eofs=False,
            )
        except (OSError, ValueError) as exc:  # ValueError: a host-name check without a name
            sock.close()
            self._error("ssl", getattr(exc, "errno", None) or 0, f"TLS setup failed: {exc}")
            return
        self.sock = self.tls_sock = tls_sock
        conn = self.connection_class(tls_sock, address, self.loop)
        self._tls_conn = conn
        conn._start_handshake(self._handshake_done)

    def _handshake_done(self, conn: TlsConnection, exc: BaseException | None) -> None:
        if conn is not self._tls_conn:
            return
        self._tls_conn = None
        if exc is None:
            self._finish()
            emit_connect(self, conn)
            return
        conn.abort()
        self._error(*describe_failure(exc))

    def _finish(self) -> None:
        conn, self._tls_conn = self._tls_conn, None
        TcpClient._finish(self)
        if conn is not None:  # timed out (or failed) during the handshake: close its socket
            conn.abort()

    def __repr__(self) -> str:
        return TcpClient.__repr__(self).replace("<TcpClient", "<TlsClient", 1)
