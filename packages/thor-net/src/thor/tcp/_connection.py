"""TcpConnection: one connected stream socket, with buffered writes and flow control.

Theory of operation
-------------------
States: OPEN -> (close() with bytes still buffered) FLUSHING -> (buffer empty: our FIN sent with
``shutdown(SHUT_WR)``) OUTPUT_CLOSED -> (peer's FIN, or ``close_timeout``) CLOSED. ``abort()``
and failures go straight to CLOSED. Half-close (``shutdown_write()``) keeps reading: OPEN ->
(bytes still buffered) SHUTTING -> (buffer empty: our FIN sent) READ_ONLY -> (peer's FIN) CLOSED;
no timer, since the peer may go on sending for as long as it likes; ``close()`` in SHUTTING or
READ_ONLY moves to FLUSHING or OUTPUT_CLOSED (reading stops).

Events follow thor 0.17's half-close model: ``'close'`` once, when the peer's FIN arrives or the
connection fails; ``'disconnect'`` once, when the socket is really closed, whoever closed it.
After the peer's FIN the socket stays open for writing until the application calls ``close()``
(or ``abort()``).

Reading: a connection starts paused; ``pause(False)`` turns read interest on. Interest in the
peer's hang-up (EPOLLRDHUP) is kept while paused so a FIN is noticed; if unread data is still
queued then, the fd is taken off the loop until the application resumes reading (a level-triggered
hang-up would otherwise wake the loop forever), except for write interest while bytes are queued
(writing goes on; the select backend cannot tell a hang-up from data, so this is what happens
there to any paused connection that receives data).

Writing: ``write()`` tries to send at once when nothing is queued (no poll round trip); what the
kernel does not take is queued as chunks and sent when the socket is writable, several chunks in
one ``sendmsg`` (gathering, no joins); ``writelines()`` offers several chunks to an empty queue
in one such send, the way ``write()`` offers one. Flow control is in bytes: ``'pause' (True)``
once more than ``write_bufsize`` bytes are queued, ``'pause' (False)`` once the queue drains to
half of that; the hard limits (``max_write_buffer_size`` bytes, ``max_write_buffer_chunks``
chunks) refuse a write with ``BufferError`` well after the writer was asked to pause. With
``defer_writes`` the send
attempt waits for the end of the loop pass's IO dispatch (the bytes sit in the queue meanwhile,
no more than ``write_bufsize`` of them: a write past that makes the attempt at once), so the
rules below hold with "after the send attempt" meaning that one.

The 'pause' events strictly alternate, starting with True. "Queued" means what is left after the
immediate send attempt: a write larger than ``write_bufsize`` that the kernel takes (entirely, or
all but a few bytes) pauses nobody. The one other (True) is a write refused by a hard limit
while bytes are queued and the writer was not paused yet (it would have queued more than the
threshold): the writer should wait for the queue to drain. A write refused on an EMPTY queue
(larger than ``max_write_buffer_size`` by itself) emits nothing, since no drain, hence no
(False), would follow. Every (True) is followed by a (False) once the queue drains to half,
unless the connection closes first (``abort()``, a failure) and the queue is dropped.
Invariant behind this: while the connection is open, the writer is paused only with bytes
queued (or unread data parked the fd, see ``_park``: its write interest stays).
"""

from __future__ import annotations

import errno
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from thor.loop import FD_CLOSE, FD_READABLE, FD_WRITABLE, EventSource

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

    from ._server import TcpServer

__all__ = ["TcpConnection"]


_OPEN, _FLUSHING, _OUTPUT_CLOSED, _CLOSED = "open", "flushing", "output-closed", "closed"
_SHUTTING, _READ_ONLY = "shutting-output", "read-only"  # shutdown_write(): flushing, FIN sent
_READING = (_OPEN, _SHUTTING, _READ_ONLY)  # the states in which 'data' is delivered
_IOV_MAX = 512
_BLOCKING = (BlockingIOError, InterruptedError)
#: send flag: hold a partial segment back for more (our FIN); 0 where the platform lacks it
_MSG_MORE = int(getattr(socket, "MSG_MORE", 0))


def _as_bytes(chunk: bytes | bytearray | memoryview) -> bytes:
    """A chunk to queue as it is: bytes unchanged, anything else copied (the caller may reuse
    a mutable buffer at once)."""
    if type(chunk) is bytes:
        return chunk
    if not isinstance(chunk, (bytearray, memoryview)):
        raise TypeError(f"expected bytes, a bytearray or a memoryview, not {type(chunk).__name__}")
    return bytes(chunk)


class TcpConnection(EventSource):
    """A connected stream socket (TCP or Unix), as handed out by TcpServer and TcpClient.

    Args:
        sock: the connected socket (made non-blocking here).
        address: the peer's address (for TCP a ``(host, port, ...)`` tuple).
        loop: the loop to run on; the default loop when None.
        watch: put the socket on the loop now (watching for the peer's hang-up while paused).
            False leaves that to ``_watch()``, for a creator that may read, answer and close
            before returning to the loop (TcpServer calls it after ``'connect'``).

    Attributes:
        socket: the socket.
        address: the peer's address, for client and server connections alike (thor 0.17 gave
            the listening address on server connections).
        error: the OSError that broke the connection, or None.

    Settings (class attributes, bytes unless said otherwise; a connection reads them when it
    is made: set them on the class before, or on the connection):
        read_bufsize: what one read takes at most, ordinarily (64 KiB; 0.17: 16 KiB).
        max_read_bufsize: while reads come back full (a bulk transfer), each next read may take
            four times more, up to this (256 KiB); a read that fits in ``read_bufsize`` goes back
            to it. Fewer, larger reads for bulk data; small messages never pay for a large
            buffer. Set it to ``read_bufsize`` to read a fixed size. (A grown size lasts until
            a read fits in ``read_bufsize``; a TlsConnection reads its own way.)
        write_bufsize: ``'pause' (True)`` above this many queued bytes (256 KiB). In 0.17 this
            counted chunks (16).
        max_write_buffer_size: a write that would queue more raises BufferError (16 MiB).
        max_write_buffer_chunks: a write that would queue more chunks raises BufferError (4096).
        write_coalesce: the most bytes gathered into one send from queued chunks (256 KiB).
        close_timeout: seconds to wait for the peer's FIN after ours, then close (5).
        defer_writes: while the loop runs, ``write()`` queues (up to ``write_bufsize`` bytes)
            and the queue is sent, gathered, right after the IO events of the loop's pass are
            dispatched (``loop.after_io``): several writes of a pass go out in one send, and
            the output of every connection read in a pass goes out together, after the reads,
            which lets the peers (woken by our sends) answer in batches. A write that would
            queue more sends at once, as without deferral. False by default (True: less CPU per
            message under load, for a few microseconds of latency). A TlsConnection writes at
            once whatever this says.

    Events:
        data (bytes): bytes arrived; only while not paused; many times.
        close (): the peer closed its side (FIN), or the connection failed; at most once.
        disconnect (): the socket is closed now; exactly once.
        pause (bool): True when the bytes queued after a write (what the socket did not take
            at once) passed ``write_bufsize``, or a write was refused by a hard limit while bytes
            were queued (stop writing); False when the queue drained to half of
            ``write_bufsize`` (go on). Strictly alternating, True first; every True is followed
            by a False unless the connection closes first.
        sent (): bytes were written to the socket (may be emitted from within ``write``).
    """

    read_bufsize: int = 64 * 1024
    max_read_bufsize: int = 256 * 1024
    write_bufsize: int = 256 * 1024
    max_write_buffer_size: int = 16 * 1024 * 1024
    max_write_buffer_chunks: int = 4096
    write_coalesce: int = 256 * 1024
    close_timeout: float = 5.0
    defer_writes: bool = False
    _hooked_events = frozenset({"sent"})  # (see _listener_added)

    # The connection's state in slots, every one set in __init__: on CPython 3.11 the instance
    # dicts of a class share a key table that stops taking new names once some 30 instances
    # were made, and an instance that then sets a new attribute (a connection whose writes
    # start to queue, or that closes, on a busy server) falls back to a plain dict, slower on
    # every access. The settings (class attributes, copied to the instance) and the emitter's
    # attributes stay in the dict, all set when the connection is made.
    __slots__ = (
        "_buffer",
        "_buffered",
        "_close_emitted",
        "_close_timer",
        "_fd",
        "_input_paused",
        "_mask",
        "_output_paused",
        "_peer_closed",
        "_read_size",
        "_reader",
        "_registered",
        "_sent_heard",
        "_server",
        "_state",
        "_unwatched",
        "_write_due",
        "address",
        "error",
        "loop",
        "socket",
    )

    def __init__(
        self, sock: socket.socket, address: Any, loop: LoopBase | None = None, *, watch: bool = True
    ) -> None:
        EventSource.__init__(self, loop)
        sock.setblocking(False)
        try:  # (TCP only: a Unix socket refuses it; sock.family would cost an enum conversion)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.socket = sock
        self.address = address
        self.error: OSError | None = None
        self._state = _OPEN
        self._input_paused = True
        self._buffer: deque[Any] = deque()
        self._fd = sock.fileno()
        self._mask = FD_CLOSE
        self._read_size = 0  # the next read's size while above read_bufsize (max_read_bufsize)
        # The settings read on every read or write, copied from the class into the instance
        # dict (a class attribute read through the instance is a slow lookup on CPython 3.11)
        self.read_bufsize = self.read_bufsize
        self.write_bufsize = self.write_bufsize
        self.max_write_buffer_size = self.max_write_buffer_size
        self.max_write_buffer_chunks = self.max_write_buffer_chunks
        self.defer_writes = self.defer_writes
        self._write_due = False  # bytes queued by defer_writes, to be sent by _send_deferred
        self._sent_heard = False  # a 'sent' listener was added once: 'sent' may be wanted
        # the sink's 'data' handler, called directly while no listener wants 'data' (sink())
        self._reader: Callable[[bytes], object] | None = None
        self._output_paused = False
        self._peer_closed = False
        self._close_emitted = False
        self._buffered = 0
        self._close_timer: ScheduledEvent | None = None
        self._server: TcpServer | None = None
        self._unwatched = False  # made with watch=False and _watch() not called yet
        if watch:
            self._registered = True
            self.loop._fd_register(self._fd, FD_CLOSE, self)
        else:  # the creator calls _watch() when done (see TcpServer._accepted)
            self._registered = False
            self._unwatched = True

    # -- public API -----------------------------------------------------------------------------

    @property
    def tcp_connected(self) -> bool:
        """True until the connection is closing or closed (read-only)."""
        return self._state == _OPEN and not self._peer_closed

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading. Connections start paused.

        After the peer's FIN, or once the connection is closing, reads stay off (after
        ``shutdown_write()`` they go on until the peer's FIN).
        """
        self._input_paused = paused
        if self._state not in _READING or self._peer_closed:
            return
        if not self._registered:
            if paused:
                return
            self._registered = True
            self._mask = FD_READABLE | FD_CLOSE | (FD_WRITABLE if self._buffer else 0)
            self.loop._fd_register(self._fd, self._mask, self)
            return
        self._set_mask(
            (self._mask & ~FD_READABLE) | FD_CLOSE
            if paused
            else self._mask | FD_READABLE | FD_CLOSE
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; what the socket does not take now is queued and sent in order.

        Raises:
            OSError: ``close()``, ``shutdown_write()`` or ``abort()`` was called, or the
                connection failed.
            BufferError: the queue would exceed ``max_write_buffer_size`` bytes or
                ``max_write_buffer_chunks`` chunks (nothing is queued then; if bytes were
                queued already, ``'pause' (True)`` was emitted first unless the writer was
                paused: wait for ``'pause' (False)``).
        """
        if self._state != _OPEN:
            raise OSError(errno.EPIPE, "connection closed")
        if not data or self.error is not None:
            return
        if type(data) is memoryview and data.nbytes != len(data):
            data = data.cast("B")  # (items wider than a byte: counted and sliced by bytes)
        buffer = self._buffer
        size = len(data)
        defer = self.defer_writes
        if self._write_due and (
            self._buffered + size > self.write_bufsize
            or len(buffer) >= _IOV_MAX
            or self._buffered + size > self.max_write_buffer_size
            or len(buffer) >= self.max_write_buffer_chunks
        ):
            # Deferred bytes were never tried, and this write would take the queue past a
            # limit: send them now, then this write at once, as without deferral.
            defer = False
            failure = self._send_held()
            if failure is not None:
                self._fail_later(failure)
                return
        if buffer:
            if (
                self._buffered + size > self.max_write_buffer_size
                or len(buffer) >= self.max_write_buffer_chunks
            ):
                if not self._output_paused:
                    # ask the writer to wait: the queue drains, and 'pause' (False) follows
                    self._output_paused = True
                    self.emit("pause", True)
                raise self._refused(size)
            # queued data must not change if the caller reuses a mutable buffer
            buffer.append(data if type(data) is bytes else bytes(data))
            self._buffered += size
            if not self._output_paused and self._buffered > self.write_bufsize:
                self._output_paused = True
                self.emit("pause", True)
            return
        if size > self.max_write_buffer_size or self.max_write_buffer_chunks < 1:
            raise self._refused(size)  # (no 'pause': nothing is queued that would drain)
        if defer and size <= self.write_bufsize and self.loop.running:
            buffer.append(data if type(data) is bytes else bytes(data))
            self._buffered = size
            if not self._write_due:
                self._write_due = True
                self.loop.after_io(self._send_deferred)
            return
        try:
            sent = self.socket.send(data)
        except _BLOCKING:
            sent = 0
        except OSError as exc:
            self._fail_later(exc)
            return
        if sent < size:
            self._queue_unsent(data, sent)
        if sent and self._sent_heard:
            self._emit_sent()

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        """Send the chunks in order, as one ``write`` of them joined would, without joining
        them: on an empty queue they are offered to the kernel in one gathering send
        (``sendmsg``, up to ``write_coalesce`` bytes), and what it does not take is queued as
        it is (a large body after a small head is never copied). Bytes that ``defer_writes``
        holds back are sent first. A bytearray or memoryview is copied.

        Raises:
            OSError, BufferError: as ``write``, for the chunks' total (nothing is queued then).
        """
        if self._state != _OPEN:
            raise OSError(errno.EPIPE, "connection closed")
        parts = [_as_bytes(chunk) for chunk in chunks if chunk]
        if not parts or self.error is not None:
            return
        if len(parts) == 1:
            self.write(parts[0])
            return
        if self._write_due:
            failure = self._send_held()
            if failure is not None:
                self._fail_later(failure)
                return
        buffer = self._buffer
        size = sum(map(len, parts))
        if (
            self._buffered + size > self.max_write_buffer_size
            or len(buffer) + len(parts) > self.max_write_buffer_chunks
        ):
            if buffer and not self._output_paused:  # (as write: wait for the queue to drain)
                self._output_paused = True
                self.emit("pause", True)
            raise self._refused(size)
        self._enqueue(parts, size)

    def _enqueue(self, parts: list[bytes], size: int) -> None:
        """Queue ``parts`` (``size`` bytes, within the limits); on an empty queue, send at once
        (``_send_queued``), else the socket's writability sends them; ``'pause' (True)`` if
        more than ``write_bufsize`` bytes then wait."""
        buffer = self._buffer
        queued = bool(buffer)
        buffer.extend(parts)
        self._buffered += size
        if not queued:
            failure = self._send_queued()
            if failure is not None:
                self._fail_later(failure)
                return
        if not self._output_paused and self._buffered > self.write_bufsize:
            self._output_paused = True
            self.emit("pause", True)

    def _queue_unsent(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        """Queue what the first send of ``data`` left (the queue was empty) and wait for the
        socket to be writable."""
        if type(data) is not bytes:
            rest: Any = bytes(memoryview(data)[sent:])
        else:
            rest = memoryview(data)[sent:] if sent else data
        self._buffer.append(rest)
        self._buffered = len(data) - sent
        self._set_mask(self._mask | FD_WRITABLE)
        if self._buffered > self.write_bufsize and not self._output_paused:
            self._output_paused = True
            self.emit("pause", True)

    def _refused(self, size: int) -> BufferError:
        return BufferError(
            f"write of {size} bytes refused: {self._buffered} bytes in "
            f"{len(self._buffer)} chunks already queued (limits: {self.max_write_buffer_size} "
            f"bytes, {self.max_write_buffer_chunks} chunks)"
        )

    def close(self) -> None:
        """Close gracefully: send what is queued, then our FIN; close the socket when the peer's
        FIN arrives or after ``close_timeout``; what the peer still sends is dropped.
        Idempotent; ``write`` raises afterwards. After ``shutdown_write()``, this stops the
        reading and starts the wait for the peer's FIN."""
        state = self._state
        if state != _OPEN:
            if state == _SHUTTING:  # still flushing: go on, but as close() does
                self._state = _OPEN
            elif state == _READ_ONLY:  # our FIN is out: just stop delivering data
                self._output_closed()
                return
            else:
                return
        if self._buffer:
            self._state = _FLUSHING
            if self._registered:
                self._set_mask((self._mask | FD_WRITABLE) & ~FD_READABLE)
            else:  # taken off the loop after a hang-up while paused: flush anyway
                self._registered = True
                self._mask = FD_WRITABLE | FD_CLOSE
                self.loop._fd_register(self._fd, self._mask, self)
            return
        self._shutdown_output()

    def shutdown_write(self) -> None:
        """Half-close: send what is queued, then our FIN (``shutdown(SHUT_WR)``), and go on
        reading until the peer's FIN.

        ``write`` raises OSError afterwards. ``'data'`` goes on (while not paused; ``pause``
        works as before), as do ``'pause'`` (False) and ``'sent'`` while the queue drains; the
        peer's FIN then emits ``'close'`` and closes the socket (``'disconnect'``): both
        directions are over. There is no timer: the peer may send for as long as it likes
        (``close()`` stops the reading and starts ``close_timeout``; ``abort()`` closes at
        once). When the peer's FIN came already, this is ``close()``. A no-op once closing or
        closed.
        """
        if self._state != _OPEN:
            return
        if self._peer_closed:
            self.close()
            return
        self._state = _SHUTTING
        if self._buffer:
            self._set_mask(self._mask | FD_WRITABLE)  # (set already, unless parked)
        else:
            self._shutdown_output()

    def flush(self) -> None:
        """Send now what ``defer_writes`` holds back (a no-op when nothing is held): for a
        writer that must know whether the kernel took its bytes, as without deferral (a
        failure sets ``error`` at once and is reported from the loop, as a write's is)."""
        failure = self._send_held()
        if failure is not None:
            self._fail_later(failure)

    def abort(self) -> None:
        """Close the socket at once, dropping anything queued (bytes that ``defer_writes``
        held back are first offered to the kernel once, as they would have been by the
        write). Idempotent."""
        if self._state != _CLOSED:
            if self._write_due:
                self._write_due = False
                if self.error is None:
                    try:
                        self.socket.sendmsg(self._buffer)
                    except OSError:
                        pass
            self._buffer.clear()
            self._buffered = 0
            self._close_socket()

    def write_last(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as the connection's last bytes and close: at once when the kernel
        takes them all now (as ``abort()``), otherwise gracefully (as ``close()``, the rest
        queued first).

        For a writer that knows the peer sends nothing more (an HTTP server answering a
        request that said ``Connection: close``). Our FIN goes out (``shutdown(SHUT_WR)``)
        before the socket is closed, but a close with unread input still resets the
        connection, and the reset drops whatever TCP had not transmitted yet (a large write
        held back by the congestion or receive window). A small write (up to
        ``write_bufsize``) on an empty queue is sent with MSG_MORE where the platform has it
        (Linux), so the kernel holds its last segment back until the shutdown, which sends it
        with our FIN: one packet fewer for both ends to process.

        Raises:
            OSError: the connection is closed or closing (as ``write``).
            BufferError: as ``write`` (nothing is sent or closed then).
        """
        if self._state != _OPEN:
            raise OSError(errno.EPIPE, "connection closed")
        if type(data) is memoryview and data.nbytes != len(data):
            data = data.cast("B")  # (as write does)
        size = len(data)
        held = 0  # bytes sent with MSG_MORE: 'sent' is emitted once they are pushed
        if self._buffer or self.error is not None or not _MSG_MORE or size > self.write_bufsize:
            self.write(data)
            self.flush()  # (what defer_writes holds is offered to the kernel now)
        elif size:
            try:
                held = self.socket.send(data, _MSG_MORE)
            except _BLOCKING:
                pass
            except OSError as exc:
                self._fail_later(exc)  # closed from the loop, with 'close' (see _fail)
                return
            if held < size:
                self._queue_unsent(data, held)
        if self.error is not None or self._state != _OPEN:
            return  # failing (closed from the loop), or a listener closed it
        if self._buffer:
            if held and self._sent_heard:
                self._emit_sent()
            self.close()
            return
        if size:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if held and self._sent_heard:
            self._emit_sent()
        self.abort()

    def sink(self, sink: object) -> None:
        """Send events that have no listener to ``sink.<event>(*args)`` (see EventEmitter).

        The sink's ``data`` handler is then called straight from the read, without going
        through ``emit``, for as long as nobody listens to ``'data'``. It is looked up here,
        once (``emit`` looks a sink's handlers up on every event): a sink that replaces its
        ``data`` handler later calls ``sink()`` again for the new one to be used.
        """
        super().sink(sink)
        reader = getattr(sink, "data", None) if sink is not None else None
        self._reader = reader if reader is not None and not self.listener_count("data") else None

    def _emit_sent(self) -> None:
        """Bytes reached the socket: ``'sent'``, if anyone listens (the writes call this only
        once a ``'sent'`` listener was added, see ``_listener_added``)."""
        if self.listener_count("sent"):
            self.emit("sent")

    def _listener_added(self, event: str) -> None:
        if event == "data":
            self._reader = None  # listeners come first: 'data' goes through emit again
        elif event == "sent":
            self._sent_heard = True  # (until then, no write looks for 'sent' listeners)

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued and not yet taken by the socket."""
        return self._buffered

    # -- loop handlers --------------------------------------------------------------------------

    def handle_fd_readable(self) -> None:
        """The socket is readable: one read, emitted as ``'data'``."""
        size = self._read_size or self.read_bufsize
        try:
            data = self.socket.recv(size)
        except _BLOCKING:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if data:
            if len(data) == size:  # more is probably waiting: read more at once next time
                if size < self.max_read_bufsize:
                    self._read_size = min(size * 4, self.max_read_bufsize)
            elif self._read_size and len(data) <= self.read_bufsize:
                self._read_size = 0
            if self._state in _READING:  # after close(), what the peer still sends is dropped
                reader = self._reader
                try:
                    if reader is None:
                        self.emit("data", data)
                    else:
                        reader(data)
                except Exception:
                    self.abort()
                    raise
        else:
            self._peer_eof()

    def handle_fd_writable(self) -> None:
        """The socket is writable: send queued chunks, gathered."""
        if not self._buffer:
            self._set_mask(self._mask & ~FD_WRITABLE)
            return
        failure = self._send_queued()
        if failure is not None:
            self._fail(failure)

    def _send_deferred(self) -> None:
        """The loop pass's IO is dispatched: send what ``defer_writes`` held back (as
        ``_send_held``, spelt out: this runs once per loop pass with deferred writes, per
        connection)."""
        if not self._write_due or not self._buffer or self.error is not None:
            self._write_due = False
            return
        self._write_due = False
        failure = self._send_queued()
        if failure is not None:
            self._fail(failure)

    def _send_held(self) -> OSError | None:
        """Send what ``defer_writes`` holds back, if anything (see ``_send_queued``)."""
        if not self._write_due:
            return None  # sent already (a write past a limit, flush()), or nothing held
        self._write_due = False
        if not self._buffer or self.error is not None:
            return None  # dropped meanwhile (abort(), a failure)
        return self._send_queued()

    def _send_queued(self) -> OSError | None:
        """One send of the queued chunks, gathered; what is left waits for the socket to be
        writable. Returns the failure instead of raising it (the caller reports it)."""
        buffer = self._buffer
        try:
            if len(buffer) == 1:
                sent = self.socket.send(buffer[0])
            else:
                chunks = []
                total = 0
                limit = self.write_coalesce
                for chunk in buffer:
                    chunks.append(chunk)
                    total += len(chunk)
                    if total >= limit or len(chunks) >= _IOV_MAX:
                        break
                sent = self.socket.sendmsg(chunks)
        except _BLOCKING:
            self._set_mask(self._mask | FD_WRITABLE)
            return None
        except OSError as exc:
            return exc
        if len(buffer) == 1 and sent == len(buffer[0]):
            # the common case, all of it went: nothing to trim, and nothing for _queue_sent to
            # do unless write interest, a close, a paused writer or 'sent' listeners wait on it
            # (closing and a paused writer come with write interest; both are checked anyway)
            buffer.clear()
            self._buffered = 0
            if self._mask & FD_WRITABLE or self._state != _OPEN or self._output_paused:
                self._queue_sent()
            elif self._sent_heard:
                self._emit_sent()
            return None
        self._buffered -= sent
        while sent:
            head = buffer[0]
            size = len(head)
            if sent >= size:
                buffer.popleft()
                sent -= size
            else:
                buffer[0] = memoryview(head)[sent:]
                sent = 0
        if buffer:
            self._set_mask(self._mask | FD_WRITABLE)
        self._queue_sent()
        return None

    def handle_fd_error(self) -> None:
        """The socket reported an error: fail with its SO_ERROR."""
        try:
            code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            code = exc.errno or errno.EIO
        if code:
            self._fail(OSError(code, _strerror(code)))

    def handle_fd_close(self) -> None:
        """The peer hung up. While reading, the EOF is seen by the read; while paused, look."""
        if self._state == _CLOSED or (self._mask & FD_READABLE and self._state in _READING):
            return
        try:
            peeked = self.socket.recv(1, socket.MSG_PEEK)
        except _BLOCKING:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not peeked:
            self._peer_eof()
        elif self._state in _READING:
            self._park()  # unread data is waiting for pause(False)
        else:
            self._drain_discarding()

    # -- internals ------------------------------------------------------------------------------

    def _set_mask(self, mask: int) -> None:
        if mask != self._mask:
            self._mask = mask
            if self._registered:
                self.loop._fd_set_mask(self._fd, mask)
            elif mask & FD_WRITABLE and self._fd >= 0:
                if not self._unwatched:
                    # parked (see _park), and bytes were queued: they must go out all the same
                    self._mask = mask = FD_WRITABLE
                self._registered = True
                self.loop._fd_register(self._fd, mask, self)

    def _watch(self) -> None:
        """Put a connection made with ``watch=False`` on the loop, with the interest it has
        gathered meanwhile (the peer's hang-up, unless its FIN was read already), unless
        ``pause(False)``, a write or a close registered it already or it is closed."""
        if self._unwatched:
            self._unwatched = False
            if not self._registered and self._state != _CLOSED and self._mask:
                self._registered = True
                self.loop._fd_register(self._fd, self._mask, self)

    def _park(self) -> None:
        """Paused with unread data, and the fd says the peer hung up (with select, that the fd
        is readable: data and a FIN look alike): a level-triggered condition that would wake
        the loop forever. Stop watching it until ``pause(False)``; keep only write interest
        while bytes are queued, so that the output drains and ``'pause' (False)`` comes."""
        if self._buffer:
            self._set_mask(FD_WRITABLE)
        else:
            self.loop._fd_unregister(self._fd)
            self._registered = False

    def _queue_sent(self) -> None:
        """After queued bytes went out: un-pause the writer once half drained; emit
        ``'sent'``; then, when the queue is empty, stop write interest (and send our FIN if
        closing, which closes the socket if the peer's FIN came already: so after those
        events, never before them)."""
        if self._output_paused and self._buffered <= self.write_bufsize // 2:
            self._output_paused = False
            self.emit("pause", False)
        if self._sent_heard:
            self._emit_sent()
        if not self._buffer and self._state != _CLOSED:  # (a listener may have written, closed)
            self._set_mask(self._mask & ~FD_WRITABLE)
            if self._state in (_FLUSHING, _SHUTTING):
                self._shutdown_output()

    def _drain_discarding(self) -> None:
        """After our close(): read and drop what the peer still sends, until its FIN."""
        while True:
            try:
                data = self.socket.recv(self.read_bufsize)
            except _BLOCKING:
                return
            except OSError as exc:
                self._fail(exc)
                return
            if not data:
                self._peer_eof()
                return

    def _peer_eof(self) -> None:
        self._peer_closed = True
        if self._state in (_OUTPUT_CLOSED, _CLOSED, _READ_ONLY):
            self._emit_close()
            self._close_socket()
            return
        self._set_mask(self._mask & ~(FD_READABLE | FD_CLOSE))
        self._emit_close()

    def _emit_close(self) -> None:
        if not self._close_emitted:
            self._close_emitted = True
            try:
                self.emit("close")
            except Exception:  # (contained as in a 'data' listener: the connection is closed)
                self.abort()
                raise

    def _shutdown_output(self) -> None:
        """The queue is empty: send our FIN (the socket is closed at once if the peer's came
        already); then wait for the peer's, reading (shutdown_write) or dropping (close)."""
        if self._peer_closed:
            self._close_socket()
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_socket()
            return
        if self._state == _SHUTTING:
            self._state = _READ_ONLY  # reading goes on as it was
            return
        self._output_closed()

    def _output_closed(self) -> None:
        """Our FIN is out: drop what the peer still sends, until its FIN or the timer."""
        self._state = _OUTPUT_CLOSED
        if not self._registered:
            self._registered = True
            self._mask = FD_READABLE | FD_CLOSE
            self.loop._fd_register(self._fd, self._mask, self)
        else:
            self._set_mask(FD_READABLE | FD_CLOSE)
        self._close_timer = self.loop.schedule(self.close_timeout, self._close_socket)

    def _fail_later(self, exc: OSError) -> None:
        """A write failed: report it from the loop, not from inside the caller's ``write()``."""
        self.error = exc
        self.loop.schedule(0, self._fail, exc)

    def _fail(self, exc: OSError) -> None:
        if self._state == _CLOSED:
            return
        self.error = exc
        self._buffer.clear()
        self._buffered = 0
        self._close_socket()
        self._emit_close()

    def _close_socket(self) -> None:
        if self._state == _CLOSED and self._fd < 0:
            return
        self._state = _CLOSED
        if self._close_timer is not None:
            self._close_timer.delete()
            self._close_timer = None
        if self._registered and self._fd >= 0:
            self.loop._fd_unregister(self._fd)
        self._registered = False
        self._fd = -1
        try:
            self.socket.close()
        except OSError:
            pass
        server = self._server
        if server is not None:
            self._server = None
            server._connection_closed(self)
        self.emit("disconnect")

    def __repr__(self) -> str:
        state = self._state
        if self._peer_closed:
            state += ",peer-closed"
        if self._input_paused:
            state += ",paused"
        return f"<TcpConnection {self.address!r} {state} queued={self._buffered}>"


def emit_connect(emitter: EventSource, conn: TcpConnection) -> None:
    """Emit ``'connect'`` with a new connection. Should a listener raise, nobody may hold the
    connection to close it: it is aborted, and the exception goes on to the loop (which logs
    it), as one from a ``'data'`` listener does."""
    try:
        emitter.emit("connect", conn)
    except Exception:
        conn.abort()
        raise


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return f"error {code}"
