"""TlsConnection: a TcpConnection whose bytes go through TLS (an ``ssl.SSLSocket``).

Theory of operation
-------------------
Same API, events and states as TcpConnection (OPEN -> FLUSHING -> OUTPUT_CLOSED -> CLOSED, the
0.17 half-close event model, flow control in bytes); this class replaces only the places where
the socket is touched, because an SSLSocket differs from a plain socket in four ways:

- **"Would block" has more names.** ``SSLWantReadError`` / ``SSLWantWriteError`` mean "try again
  when the socket is ready", not failure. A read may want a write (a TLS 1.3 key update to
  answer): the connection then watches writability once and reads again.
- **Decrypted bytes can hide inside OpenSSL.** A read smaller than the TLS record it opened
  leaves the rest of that record decrypted in OpenSSL (``pending()``), where epoll cannot see
  it: after every read, what is pending is drained into the same ``'data'`` event; when reading
  resumes (``pause(False)``) with bytes pending, a read is scheduled. Bulk reads continue past
  one record (16 KiB) up to ``read_bufsize`` while full records keep arriving.
- **No sendmsg, and retries must repeat themselves.** A write on an empty queue (up to
  ``write_coalesce`` bytes) is sent at once; otherwise queued chunks are joined up to
  ``write_coalesce`` bytes (big ones split, without copying, into ``write_coalesce`` views) and
  written with one ``send``. A bigger write on an empty queue is queued and sent at once in
  such pieces for as long as the socket takes them, so that, as with TcpConnection, only what
  the kernel refuses counts towards ``'pause'``. OpenSSL writes all or nothing and, after
  ``SSLWantWriteError``, must be given the same bytes again, so that piece stays at the head of
  the queue, unchanged, until it is taken. A single write larger than ``max_write_buffer_size``
  is refused whole (BufferError), as thor 0.17 does; on an empty queue without ``'pause'``
  (True), since no drain and so no (False) would follow. ``'pause'`` obeys TcpConnection's
  rules: strictly alternating, True only with more than ``write_bufsize`` bytes queued (or a
  write refused while bytes are queued), each True followed by a False once the queue drained
  to half, unless the connection closes first.
- **Closing has a TLS step.** ``close()`` flushes the queue, then sends close_notify (without
  blocking: if the socket cannot take it now, it is retried when writable; any other failure is
  ignored, it is a courtesy), then half-closes TCP and waits for the peer's FIN (or
  ``close_timeout``) as TcpConnection does; from then on the socket is read below TLS and what
  arrives is dropped.

No half-close: ``shutdown_write()`` is ``close()`` here. Sending close_notify while reading on
would take ``SSL_shutdown`` alone, but ``SSLSocket.unwrap()`` (the only way the ssl module offers)
calls it a second time to read the peer's close_notify, and OpenSSL then rejects application data
that arrives after ours (APPLICATION_DATA_AFTER_CLOSE_NOTIFY): the data is lost and the
connection fails. A FIN without close_notify would look like a truncation to most peers.

The peer's close_notify ends the input (``'close'``). An EOF **without** close_notify (a
"ragged" or unexpected EOF) is treated as a normal close too, as browsers and most HTTP stacks
do: HTTP frames its messages itself, so a truncation is caught there; TLS-level truncation
attacks matter only to protocols that rely on the connection's end, and those should read
``close_notify_received``.

The handshake happens before the connection is handed out (TlsClient, TlsServer): a small
``_Handshake`` object takes the fd's registration while ``do_handshake`` wants to read or write,
so the connection's own handlers (the data path) carry no handshake checks.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from thor.loop import FD_READABLE, FD_WRITABLE
from thor.tcp import TcpConnection
from thor.tcp._connection import _BLOCKING, _CLOSED, _FLUSHING, _OPEN, _as_bytes

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

__all__ = ["TlsConnection"]

#: The largest TLS record's plaintext: a read that returned this much suggests more is waiting.
_MAX_RECORD = 16384
_WOULD_BLOCK = (ssl.SSLWantReadError, ssl.SSLWantWriteError, *_BLOCKING)
_EOF = object()  # a read found the end of the input (close_notify, or a ragged EOF)

HandshakeCallback = Callable[["TlsConnection", "BaseException | None"], object]


class TlsConnection(TcpConnection):
    """A TLS connection, as handed out by TlsClient and TlsServer once the handshake is done.

    Same API, settings and events as TcpConnection (``write``, ``pause``, ``close``, ``abort``;
    starts paused); ``socket`` is the ``ssl.SSLSocket``.

    Args:
        sock: a connected ``ssl.SSLSocket`` (non-blocking), normally wrapped with
            ``do_handshake_on_connect=False`` and ``suppress_ragged_eofs=False``.
        address: the peer's address.
        loop: the loop; the default loop when None.

    Attributes:
        alpn_protocol: the protocol ALPN settled on (e.g. ``"h2"``), or None.
        close_notify_received: True once the peer closed TLS cleanly (False after a ragged EOF).

    Events:
        data (bytes): decrypted bytes arrived; only while not paused; many times.
        close (): the peer closed its side (close_notify or FIN, with or without close_notify),
            or the connection failed (``error`` says why: an OSError or an ssl.SSLError); once.
        disconnect (): the socket is closed now; exactly once.
        pause (bool): True when the bytes queued after a write (what the socket did not take
            at once) passed ``write_bufsize``, or a write was refused by a hard limit while bytes
            were queued (stop writing); False when the queue drained to half of
            ``write_bufsize`` (go on). Strictly alternating, True first; every True is followed
            by a False unless the connection closes first.
        sent (): bytes were handed to the socket (may be emitted from within ``write``).
    """

    socket: ssl.SSLSocket

    def __init__(self, sock: ssl.SSLSocket, address: Any, loop: LoopBase | None = None) -> None:
        TcpConnection.__init__(self, sock, address, loop)
        self.alpn_protocol: str | None = None
        self.close_notify_received = False
        self._tls_up = True  # False once TCP is half-closed: the socket is then read below TLS
        self._tls_broken = False  # a ragged EOF: OpenSSL must not be asked for close_notify
        self._retry_head = False  # the queue's head was refused with "want write": resend as is
        self._notify_wait = False  # close_notify waits for writability
        self._read_wants_write = False
        self._handshake: _Handshake | None = None
        self._resume_ev: ScheduledEvent | None = None
        self._held = b""  # decrypted while paused, to learn whether the peer's records held data

    # -- TLS information ------------------------------------------------------------------------

    def peer_certificate(self, binary_form: bool = False) -> Any:
        """The peer's certificate: a dict as ``ssl.SSLSocket.getpeercert()`` gives it (empty when
        it was not verified), or DER bytes with ``binary_form``; None when the peer sent none
        or once the connection is closing."""
        if not self._tls_up or self._state == _CLOSED:
            return None
        try:
            return self.socket.getpeercert(binary_form)
        except (OSError, ValueError, AttributeError):
            return None

    @property
    def tls_version(self) -> str | None:
        """The protocol version in use (``"TLSv1.3"``...), or None once closing."""
        return self.socket.version() if self._tls_up and self._state != _CLOSED else None

    @property
    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret bits)`` of the cipher in use, or None once closing."""
        return self.socket.cipher() if self._tls_up and self._state != _CLOSED else None

    # -- public API (what differs from TcpConnection) -------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; what the socket does not take now is queued and sent in order.

        Raises:
            OSError: ``close()`` or ``abort()`` was called, or the connection failed.
            BufferError: the queue would exceed ``max_write_buffer_size`` bytes or
                ``max_write_buffer_chunks`` chunks (nothing is queued then; if bytes were
                queued already, ``'pause' (True)`` was emitted first unless the writer was
                paused: wait for ``'pause' (False)``).
        """
        if self._buffer or self._state != _OPEN or not data or self.error is not None:
            # queue behind what waits, refuse, or ignore: exactly as TcpConnection does
            TcpConnection.write(self, data)
            return
        if type(data) is memoryview and data.nbytes != len(data):
            data = data.cast("B")  # (as TcpConnection.write does)
        size = len(data)
        if size > self.max_write_buffer_size:
            # the hard limit holds on an empty queue too; no 'pause' (True) though: nothing is
            # queued, so nothing would drain and no 'pause' (False) would ever follow
            raise BufferError(
                f"write of {size} bytes refused: more than max_write_buffer_size "
                f"({self.max_write_buffer_size} bytes)"
            )
        if size <= self.write_coalesce:
            # nothing queued, one TLS write: OpenSSL takes it all, or none of it
            try:
                self.socket.send(data)
            except _WOULD_BLOCK:
                # queued as the head, to be passed again as it is (same bytes) when writable
                self._buffer.append(data if type(data) is bytes else bytes(data))
                self._buffered = size
                self._retry_head = True
                self._set_mask(self._mask | FD_WRITABLE)
                if size > self.write_bufsize and not self._output_paused:
                    self._output_paused = True
                    self.emit("pause", True)
                return
            except OSError as exc:
                self._fail_later(exc)
                return
            if self._sent_heard:
                self._emit_sent()
            return
        # Nothing queued, but more than one write's worth: through the queue, which splits it,
        # sending pieces while the socket takes them (only what it refuses stays queued)
        self._enqueue([data if type(data) is bytes else bytes(data)], size)

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        """Send the chunks in order, as one ``write`` of them joined would. TLS cannot gather:
        up to ``write_coalesce`` bytes in all are joined into one write (one record); more go
        through the queue as they are, sent at once for as long as the socket takes them (a
        large chunk in pieces, never copied), as a large ``write`` is. A bytearray or
        memoryview is copied.

        Raises:
            OSError, BufferError: as ``write``, for the chunks' total (nothing is queued then).
        """
        if self._state != _OPEN:
            raise OSError(errno.EPIPE, "connection closed")
        parts = [_as_bytes(chunk) for chunk in chunks if chunk]
        if len(parts) > 1 and sum(map(len, parts)) <= self.write_coalesce:
            parts = [b"".join(parts)]
        TcpConnection.writelines(self, parts)

    def write_last(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` and close gracefully: the same as ``write(data)`` then ``close()``
        (close_notify must follow the bytes, so there is no closing at once over TLS)."""
        self.write(data)
        self.close()

    def shutdown_write(self) -> None:
        """No half-close over TLS (see the module docstring): the same as ``close()`` (send
        what is queued, close_notify, our FIN; what the peer still sends is dropped; the socket
        closes at the peer's FIN or after ``close_timeout``)."""
        self.close()

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading. Connections start paused.

        After the peer's close, or once the connection is closing, reads stay off.
        """
        TcpConnection.pause(self, paused)
        if (
            not paused
            and self._state == _OPEN
            and not self._peer_closed
            and self._resume_ev is None
            and self._tls_up
            and (self._held or self.socket.pending())
        ):
            # decrypted bytes wait inside OpenSSL (or were held): the fd will not say so
            self._resume_ev = self.loop.schedule(0, self._read_buffered)

    # -- loop handlers --------------------------------------------------------------------------

    def handle_fd_readable(self) -> None:
        """The socket is readable: read (and decrypt), emitted as one ``'data'``."""
        if self._state != _OPEN:
            self._drain_discarding()
            return
        if self._held:
            self._deliver_held()
            return
        sock = self.socket
        end: object = None
        try:
            data = sock.recv(self.read_bufsize)
        except ssl.SSLWantReadError:
            return
        except ssl.SSLWantWriteError:
            self._want_write_for_read()
            return
        except ssl.SSLEOFError:
            data, end = b"", _EOF
            self._tls_broken = True
        except ssl.SSLZeroReturnError:
            data = b""
        except OSError as exc:  # ssl.SSLError included: a corrupt record, a fatal alert
            self._fail(exc)
            return
        if not data:
            if end is None:
                self.close_notify_received = True
            self._peer_eof()
            return
        if sock.pending() or (len(data) == _MAX_RECORD and self.read_bufsize > _MAX_RECORD):
            data, end = self._read_more(data)
        reader = self._reader
        try:
            if reader is None:
                self.emit("data", data)
            else:
                reader(data)
        except Exception:
            self.abort()
            raise
        if end is not None and self._state != _CLOSED:
            if isinstance(end, OSError):
                self._fail(end)
            else:
                self._peer_eof()

    def handle_fd_writable(self) -> None:
        """The socket is writable: send the queue's head (joined small chunks)."""
        if self._notify_wait:
            self._notify_wait = False
            self._shutdown_output()
            return
        if self._read_wants_write:
            self._read_wants_write = False
            if not self._buffer:
                self._set_mask(self._mask & ~FD_WRITABLE)
            if self._state == _OPEN and self._mask & FD_READABLE:
                self.handle_fd_readable()
            return
        if not self._buffer:
            self._set_mask(self._mask & ~FD_WRITABLE)
            return
        failure = self._send_head()
        if failure is not None:
            self._fail(failure)

    def handle_fd_close(self) -> None:
        """The peer hung up. While reading, the EOF is seen by the read; while paused, look."""
        if not self._tls_up or self._state == _CLOSED:
            TcpConnection.handle_fd_close(self)  # below TLS now: plain socket rules
            return
        if self._mask & FD_READABLE and self._state == _OPEN:
            return
        if self._state == _OPEN and self.socket.pending():
            self._park()
            return
        try:
            # below TLS: are there records (maybe only a close_notify) or just the FIN?
            peeked = socket.socket.recv(self.socket, 1, socket.MSG_PEEK)
        except _BLOCKING:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not peeked:
            self._tls_broken = not self.close_notify_received
            self._peer_eof()
        elif self._state == _OPEN:
            self._look_while_paused()
        else:
            self._drain_discarding()

    # -- internals ------------------------------------------------------------------------------

    def _read_more(self, data: bytes) -> tuple[bytes, object]:
        """After a read: drain OpenSSL's pending bytes, and go on reading full records up to
        ``read_bufsize``. Returns the bytes and what ended the input (None, _EOF, an OSError)."""
        sock = self.socket
        chunks = [data]
        total = len(data)
        limit = self.read_bufsize
        end: object = None
        last = len(data)
        while True:
            want = sock.pending()
            if not want:
                if last != _MAX_RECORD or total >= limit:
                    break
                want = limit - total
            try:
                chunk = sock.recv(want)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLWantWriteError:
                self._want_write_for_read()
                break
            except ssl.SSLEOFError:
                self._tls_broken = True
                end = _EOF
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except OSError as exc:
                end = exc
                break
            if not chunk:
                self.close_notify_received = True
                end = _EOF
                break
            chunks.append(chunk)
            last = len(chunk)
            total += last
        return b"".join(chunks), end

    def _want_write_for_read(self) -> None:
        self._read_wants_write = True
        self._set_mask(self._mask | FD_WRITABLE)

    def _look_while_paused(self) -> None:
        """Paused, and the peer hung up with TLS records unread. They may hold no data at all
        (a close_notify, TLS 1.3 session tickets): decrypt up to the first data, so that such a
        close is reported as TcpConnection reports a paused peer's FIN without data. Data found
        is held for ``pause(False)`` (one read, at most ``read_bufsize``), and the connection
        parked as TcpConnection parks with unread data."""
        try:
            data = self._read_or_end()
        except ssl.SSLWantReadError:
            # no whole record left: is it the FIN alone, or the rest of a record to come?
            try:
                peeked = socket.socket.recv(self.socket, 1, socket.MSG_PEEK)
            except _BLOCKING:
                return
            except OSError as exc:
                self._fail(exc)
                return
            if peeked:
                self._park()
                return
            self._tls_broken = True  # (SSL_read would have said so with the FIN read)
            self._peer_eof()
            return
        except ssl.SSLWantWriteError:
            self._park()
            return
        if data is not None:
            self._held = data
            self._park()

    def _read_or_end(self) -> bytes | None:
        """One TLS read: its bytes, or None when the input ended (the peer's close_notify or
        a ragged EOF: ``'close'``; a failure) and that was handled here.

        Raises:
            ssl.SSLWantReadError, ssl.SSLWantWriteError: nothing to read now.
        """
        try:
            data = self.socket.recv(self.read_bufsize)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLEOFError:
            self._tls_broken = True
            self._peer_eof()
            return None
        except ssl.SSLZeroReturnError:
            data = b""
        except OSError as exc:
            self._fail(exc)
            return None
        if not data:
            self.close_notify_received = True
            self._peer_eof()
            return None
        return data

    def _read_buffered(self) -> None:
        self._resume_ev = None
        if not self._input_paused and self._state == _OPEN and not self._peer_closed:
            self.handle_fd_readable()

    def _deliver_held(self) -> None:
        """Emit what ``_look_while_paused`` held, before anything read after it; the rest,
        and the peer's end, come through the fd (or OpenSSL's pending bytes) again."""
        held, self._held = self._held, b""
        reader = self._reader
        try:
            if reader is None:
                self.emit("data", held)
            else:
                reader(held)
        except Exception:
            self.abort()
            raise
        if (
            not self._input_paused
            and self._state == _OPEN
            and self._resume_ev is None
            and self.socket.pending()
        ):
            self._resume_ev = self.loop.schedule(0, self._read_buffered)

    def _send_queued(self) -> OSError | None:
        """Send the queue the TLS way (``_send_head``: an SSLSocket has no gathering send), for
        as long as the socket takes it (``writelines`` on an empty queue)."""
        return self._send_head(True)

    def _send_head(self, repeat: bool = False) -> OSError | None:
        """One TLS write of the queue's head or, with ``repeat``, as many as the socket takes
        until the queue is empty; returns the failure, if one failed."""
        buffer = self._buffer
        taken = False
        while True:
            head = buffer[0]
            if self._retry_head:
                self._retry_head = False
            else:
                limit = self.write_coalesce
                size = len(head)
                if size > limit:
                    view = memoryview(head)
                    head = view[:limit]
                    buffer[0] = view[limit:]
                    buffer.appendleft(head)
                elif len(buffer) > 1 and size + len(buffer[1]) <= limit:
                    chunks = [buffer.popleft()]
                    total = size
                    while buffer and total + len(buffer[0]) <= limit:
                        chunk = buffer.popleft()
                        chunks.append(chunk)
                        total += len(chunk)
                    head = b"".join(chunks)
                    buffer.appendleft(head)
            try:
                sent = self.socket.send(head)
            except _WOULD_BLOCK:
                self._retry_head = True
                break
            except OSError as exc:
                return exc
            taken = True
            self._buffered -= sent
            if sent >= len(head):
                buffer.popleft()
            else:  # a partial write (only if SSL_MODE_ENABLE_PARTIAL_WRITE were set)
                buffer[0] = memoryview(head)[sent:]
            if not (repeat and buffer):
                break
        if buffer:
            self._set_mask(self._mask | FD_WRITABLE)
        if taken:
            self._queue_sent()
        return None

    def _drain_discarding(self) -> None:
        """After our close(): read and drop what the peer still sends, until its EOF."""
        if not self._tls_up:
            TcpConnection._drain_discarding(self)
            return
        while True:
            try:
                if self._read_or_end() is None:
                    return
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return

    def _shutdown_output(self) -> None:
        """The queue is empty: close_notify (best effort), then TCP's half-close."""
        if self._tls_up:
            if not self._tls_broken:
                try:
                    # sends close_notify; raises "want read" since the peer's is not in yet
                    self.socket.unwrap()
                except ssl.SSLWantWriteError:
                    if self._registered:
                        self._state = _FLUSHING
                        self._notify_wait = True
                        self._set_mask((self._mask | FD_WRITABLE) & ~FD_READABLE)
                        return
                except (OSError, ValueError):
                    pass
            # TcpConnection shuts TCP down through SSLSocket.shutdown, which drops the TLS layer
            self._tls_up = False
        TcpConnection._shutdown_output(self)

    def _close_socket(self) -> None:
        if self._handshake is not None:
            self._handshake.cancel()
        if self._resume_ev is not None:
            self._resume_ev.delete()
            self._resume_ev = None
        self._retry_head = self._notify_wait = self._read_wants_write = False
        TcpConnection._close_socket(self)

    def _start_handshake(self, done: HandshakeCallback, timeout: float | None = None) -> None:
        """Run the TLS handshake on the loop; then ``done(self, None)``, or ``done(self, exc)``
        (the connection is left open for ``done`` to close). ``timeout`` in seconds fails it
        with ``TimeoutError``. ``abort()`` cancels it without calling ``done``."""
        self._handshake = _Handshake(self, done, timeout)
        self._handshake.step()

    def _handshake_succeeded(self) -> None:
        self.alpn_protocol = self.socket.selected_alpn_protocol()

    def __repr__(self) -> str:
        text = TcpConnection.__repr__(self).replace("<TcpConnection", "<TlsConnection", 1)
        return text if self._handshake is None else text[:-1] + " handshaking>"


class _Handshake:
    """Drives ``do_handshake`` of one connection from the loop, holding the fd meanwhile."""

    __slots__ = ("conn", "done", "mask", "timer")

    def __init__(self, conn: TlsConnection, done: HandshakeCallback, timeout: float | None) -> None:
        self.conn = conn
        self.done = done
        self.mask = 0
        self.timer = conn.loop.schedule(timeout, self.expire) if timeout else None

    def step(self) -> None:
        conn = self.conn
        try:
            conn.socket.do_handshake()
        except ssl.SSLWantReadError:
            mask = FD_READABLE
        except ssl.SSLWantWriteError:
            mask = FD_WRITABLE
        except OSError as exc:  # ssl.SSLError included
            self.finish(exc)
            return
        else:
            self.finish(None)
            return
        if mask != self.mask:
            if self.mask:
                conn.loop._fd_set_mask(conn._fd, mask)
            else:  # take the fd over from the connection until the handshake ends
                conn.loop._fd_register(conn._fd, mask, self)
            self.mask = mask

    # a hang-up or an error shows in the next do_handshake
    handle_fd_readable = handle_fd_writable = handle_fd_error = handle_fd_close = step

    def expire(self) -> None:
        self.timer = None
        self.finish(TimeoutError(errno.ETIMEDOUT, "TLS handshake timed out"))

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.delete()
            self.timer = None
        self.conn._handshake = None

    def finish(self, exc: BaseException | None) -> None:
        self.cancel()
        conn = self.conn
        if exc is None:
            if self.mask and conn._registered:
                conn.loop._fd_register(conn._fd, conn._mask, conn)
            conn._handshake_succeeded()
        self.done(conn, exc)

    def __repr__(self) -> str:
        return f"<TLS handshake of {self.conn!r}>"
