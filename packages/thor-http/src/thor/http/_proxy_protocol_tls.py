"""The PROXY protocol in front of TLS: an HTTPS listener behind a load balancer that passes TLS
through and names the client in a PROXY header (``HttpServer.proxy_protocol`` with a
``tls_context``).

Theory of operation
-------------------
Such a balancer sends the PROXY header in the clear, then the client's TLS bytes. For each
accepted socket, ``ProxyTlsServer`` (a TlsServer) reads the header first with a
``RawProxyHeaderReader``, then starts the TLS handshake with the address the header names, so
the connection's ``address`` is the client's from its first event on.

The reader must not take a byte past the header: what follows is the ClientHello, which the ssl
module reads from the socket itself. So it peeks (``MSG_PEEK``) at what arrived, gives that to a
``ProxyHeaderParser`` and then really reads only the header's bytes: all it peeked while the
header is incomplete (every byte so far belongs to the header), else the header's length minus
what was taken before. That is two system calls per read instead of one, once per connection;
a balancer sends the header in one packet.

The first read is tried at once (the header is usually there already): the socket is watched
by the loop only when it is not. A bad header, the peer closing first, or the timeout (the
server's ``request_head_timeout``, else ``request_timeout``, as they are when the connection
arrives) closes the socket without a word, as on plain TCP (logged at DEBUG on ``thor.http``).
Sockets whose header is being read count against the server's ``max_connections`` (as a TLS
handshake in progress does), though they are not in ``active_connections`` yet; ``shutdown()``
and ``graceful_shutdown()`` close them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thor.loop import EventSource
from thor.tls import TlsServer

from ._proxy_protocol import V1_MAX_LENGTH, ProxyHeaderParser, ProxyProtocolError

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

    from ._proxy_protocol import ProxyHeader

__all__ = ["ProxyTlsServer", "RawProxyHeaderReader"]

logger = logging.getLogger("thor.http")

_PEEK = int(socket.MSG_PEEK)


class RawProxyHeaderReader(EventSource):
    """Reads the PROXY header at the start of an accepted plain socket without taking a byte
    past it, then hands the socket over. Nothing happens until ``start()``.

    Args:
        sock: the accepted socket (made non-blocking here).
        address: its peer address, kept when the header names none (LOCAL, UNKNOWN, UNSPEC).
        loop: the loop that watches the socket.
        timeout: seconds for the whole header to arrive; None for no limit.
        done: called with ``(reader, sock, address)`` once the header is read; ``address`` is
            the header's source, or the socket's own. The socket is no longer watched.
        gone: called with ``(reader)`` when the socket was closed instead (a bad or late
            header, the peer closed or failed first, or ``abort()``).
        max_v2_length: passed to the ProxyHeaderParser.

    Attributes:
        header: the ProxyHeader once read, else None.
    """

    def __init__(
        self,
        sock: socket.socket,
        address: Any,
        loop: LoopBase,
        *,
        timeout: float | None,
        done: Callable[[RawProxyHeaderReader, socket.socket, Any], object],
        gone: Callable[[RawProxyHeaderReader], object],
        max_v2_length: int = 4096,
    ) -> None:
        EventSource.__init__(self, loop)
        self.header: ProxyHeader | None = None
        self._sock: socket.socket | None = sock
        self._address = address
        self._parser = ProxyHeaderParser(max_v2_length)
        self._peek_size = max(V1_MAX_LENGTH, max_v2_length)
        self._done = done
        self._gone = gone
        self._timer: ScheduledEvent | None = (
            loop.schedule(timeout, self._expire) if timeout is not None else None
        )
        sock.setblocking(False)

    def start(self) -> None:
        """Try a first read; watch the socket for more only if the header is not complete."""
        self.handle_fd_readable()
        sock = self._sock
        if sock is not None:
            self.register_fd(sock.fileno(), "fd_readable")

    def handle_fd_readable(self) -> None:
        """Peek at what arrived; take the header's bytes; hand over once it is complete."""
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(self._peek_size, _PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(f"connection failed: {exc}")
            return
        parser = self._parser
        try:
            if not data:
                parser.eof()  # raises: the header is not complete
            header = parser.feed(data)
        except ProxyProtocolError as err:
            self._fail(f"rejected: {err}")
            return
        taken = len(data) - len(parser.rest) if header is not None else len(data)
        try:
            while taken:  # (the peeked bytes are there: one read takes them)
                got = sock.recv(taken)
                if not got:
                    raise ConnectionResetError("the peeked bytes went away")
                taken -= len(got)
        except OSError as exc:
            self._fail(f"connection failed: {exc}")
            return
        if header is not None:
            self.header = header
            self._stop()
            self._done(self, sock, header.source or self._address)

    handle_fd_close = handle_fd_readable  # (the read sees the end, after any last bytes)
    handle_fd_error = handle_fd_readable  # (the read reports the error)

    def abort(self) -> None:
        """Close the socket now (the server is shutting down). Idempotent."""
        self._fail("abandoned: the server is shutting down")

    def _expire(self) -> None:
        self._timer = None
        self._fail("rejected: PROXY_TIMEOUT: the header was not complete in time")

    def _stop(self) -> None:
        self._sock = None
        self.unregister_fd()
        if self._timer is not None:
            self._timer.delete()
            self._timer = None

    def _fail(self, why: str) -> None:
        sock = self._sock
        if sock is None:
            return
        self._stop()
        logger.debug("PROXY protocol header from %r (before TLS) %s", self._address, why)
        sock.close()
        self._gone(self)


class ProxyTlsServer(TlsServer):
    """A TlsServer whose connections start with a PROXY protocol header sent in the clear: each
    accepted socket's header is read (``RawProxyHeaderReader``) before the TLS handshake, which
    then starts with the client's address as the connection's ``address``.

    Settings (class attributes, or set on the instance; read for each connection):
        proxy_header_timeout: seconds for the header to arrive (None: no limit); unless
            ``header_timeout`` is given, which then says it for each connection (HttpServer
            gives its ``request_head_timeout``, else ``request_timeout``, as they are then).
        max_v2_length: the most bytes of a version 2 header, TLVs included (4096).
    """

    proxy_header_timeout: float | None = 10.0
    max_v2_length: int = 4096

    def __init__(
        self,
        *args: Any,
        header_timeout: Callable[[], float | None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._reading: set[RawProxyHeaderReader] = set()
        self._header_timeout = header_timeout
        TlsServer.__init__(self, *args, **kwargs)

    def _accepted(self, conn_sock: socket.socket, address: Any) -> None:
        """Read the PROXY header first; the handshake starts once it is complete."""
        timeout = (
            self._header_timeout()
            if self._header_timeout is not None
            else self.proxy_header_timeout
        )
        reader = RawProxyHeaderReader(
            conn_sock,
            address,
            self.loop,
            timeout=timeout,
            done=self._header_read,
            gone=self._header_gone,
            max_v2_length=self.max_v2_length,
        )
        self._reading.add(reader)  # (counts against max_connections until it is a connection)
        reader.start()

    def _header_read(self, reader: RawProxyHeaderReader, sock: socket.socket, address: Any) -> None:
        self._reading.discard(reader)
        try:
            if self.sock is None:  # shut down meanwhile (its readers were aborted: not reached)
                sock.close()
            else:
                self.start_handshake(sock, address)  # (in active_connections from now on)
        except BaseException:
            sock.close()
            raise
        finally:
            self._held_released()

    def _header_gone(self, reader: RawProxyHeaderReader) -> None:
        self._reading.discard(reader)
        self._held_released()

    def _held(self) -> int:
        return len(self._reading)

    def shutdown(self) -> None:
        """As TlsServer's, and close the sockets whose PROXY header is still being read."""
        TlsServer.shutdown(self)
        self._abandon_headers()

    def graceful_shutdown(self) -> None:
        """As TlsServer's, and close the sockets whose PROXY header is still being read."""
        TlsServer.graceful_shutdown(self)
        self._abandon_headers()

    def _abandon_headers(self) -> None:
        for reader in list(self._reading):
            reader.abort()  # (which forgets it)

    def __repr__(self) -> str:
        return TlsServer.__repr__(self).replace("<TlsServer", "<ProxyTlsServer", 1)
