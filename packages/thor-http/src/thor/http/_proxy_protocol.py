"""The PROXY protocol (versions 1 and 2): the header a load balancer sends before the client's
bytes, naming the client's address. Read when ``HttpServer.proxy_protocol`` is True.

Theory of operation
-------------------
``ProxyHeaderParser`` is sans-IO: ``feed()`` takes bytes as they arrive (split anywhere) and
returns the ``ProxyHeader`` once it is complete, with the bytes that followed it in ``rest``
(often the start of the HTTP request, sent in the same packet). The first byte decides the
version: ``P`` for version 1 (text), CR for version 2 (binary, starting with a 12-byte
signature); anything else, and any byte that cannot continue a header, is rejected at once,
without waiting for more. Every rejection is a ``ProxyProtocolError`` with a stable ``code``.

Version 1 (one text line, at most 107 bytes with its CRLF)::

    PROXY TCP4 <src ip> <dst ip> <src port> <dst port>\\r\\n
    PROXY TCP6 <src ip> <dst ip> <src port> <dst port>\\r\\n
    PROXY UNKNOWN[<anything>]\\r\\n

Fields are separated by exactly one space; addresses must be of the family named (IPv6 without
a zone); ports are decimal, 0 to 65535, without leading zeros. ``UNKNOWN`` means the sender does
not know the client: the connection keeps its own address.

Version 2: the signature ``\\r\\n\\r\\n\\0\\r\\nQUIT\\n``; a byte of version (2, high nibble)
and command (LOCAL 0 or PROXY 1); a byte of address family (UNSPEC 0, INET 1, INET6 2, UNIX 3,
high nibble) and transport (UNSPEC 0, STREAM 1, DGRAM 2); the length of what follows (16 bits,
network order): the addresses (INET: 4+4+2+2 bytes, INET6: 16+16+2+2, UNIX: 108+108), then
TLVs, which are skipped. Other values of those nibbles are rejected. A LOCAL header (a health
check from the balancer itself), an UNSPEC family and a UNIX one leave the connection's own
address. A header longer than ``max_v2_length`` is rejected as soon as its length is read.

``ProxyHeaderReader`` is the IO side: it takes an accepted TcpConnection's events (as its sink)
until the header is complete, then sets ``tcp_conn.address`` to ``(source host, source port)``
and hands the connection, paused, to its ``done`` callback with the bytes that followed the
header. A bad header, the peer closing first, or the timeout closes the connection without a
word (logged at DEBUG on ``thor.http``): a sender of the PROXY protocol is a balancer, and an
HTTP error response would go to it, not to a client.

Reference: "The PROXY protocol, versions 1 & 2" (haproxy.org, proxy-protocol.txt).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection

__all__ = [
    "V1_MAX_LENGTH",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyHeaderReader",
    "ProxyProtocolError",
]

logger = logging.getLogger("thor.http")

#: the longest version 1 header, its CRLF included
V1_MAX_LENGTH = 107
#: what every version 2 header starts with
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_PREFIX = b"PROXY "
_V2_FIXED = 16  # signature, version/command, family/transport, length

# version 2 families: (name, address block length)
_V2_FAMILIES = {0: ("UNSPEC", 0), 1: ("INET", 12), 2: ("INET6", 36), 3: ("UNIX", 216)}
_V1_LINE_BYTES = bytes(range(0x20, 0x7F))  # what a version 1 line is made of


class ProxyProtocolError(Exception):
    """A PROXY protocol header was malformed, missing or late.

    Args:
        code: what was wrong, one of:
            ``PROXY_NO_HEADER`` (the bytes are not a PROXY header at all),
            ``PROXY_TOO_LONG`` (over ``V1_MAX_LENGTH``, or ``max_v2_length``),
            ``PROXY_SYNTAX`` (a version 1 line that does not follow the grammar),
            ``PROXY_ADDRESS`` (an address or port that is not valid for its family),
            ``PROXY_VERSION`` / ``PROXY_COMMAND`` / ``PROXY_FAMILY`` (a version 2 field with a
            value the protocol does not define),
            ``PROXY_TRUNCATED`` (the connection ended inside the header),
            ``PROXY_TIMEOUT`` (the header was not complete in time).
        detail: the specifics (the offending value), for logs.

    Attributes:
        code, detail: as given.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple[type[ProxyProtocolError], tuple[str, str]]:
        return (type(self), (self.code, self.detail))

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A PROXY protocol header, as parsed.

    Attributes:
        version: 1 or 2.
        command: ``"PROXY"`` (relayed for a client) or ``"LOCAL"`` (version 2: the balancer's
            own connection, a health check).
        family: ``"INET"``, ``"INET6"``, ``"UNIX"`` or ``"UNSPEC"`` (version 1 ``TCP4``,
            ``TCP6``, ``UNKNOWN`` map to ``INET``, ``INET6``, ``UNSPEC``).
        source: the client's ``(host, port)``, or None when the header does not name one
            (LOCAL, UNSPEC, UNIX): the connection's own address stands.
        destination: the address the client connected to ``(host, port)``, or None likewise.
        length: the header's size in bytes.
    """

    version: int
    command: str
    family: str
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int


class ProxyHeaderParser:
    """Parses one PROXY protocol header (version 1 or 2) from bytes fed in pieces.

    Args:
        max_v2_length: the most bytes a version 2 header may have, TLVs included (its fixed
            16 bytes too); longer ones are rejected (``PROXY_TOO_LONG``) (default 4096).

    Attributes:
        header: the ProxyHeader once complete, else None.
        rest: the bytes fed after the header (empty until it is complete).
    """

    __slots__ = ("_buffer", "header", "max_v2_length", "rest")

    def __init__(self, max_v2_length: int = 4096) -> None:
        self.max_v2_length = max_v2_length
        self._buffer = b""
        self.header: ProxyHeader | None = None
        self.rest = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Take the next bytes; return the header once it is complete (then ``rest`` holds
        what followed it), else None. Bytes fed after completion go to ``rest``.

        Raises:
            ProxyProtocolError: the bytes so far cannot be (the start of) a valid header.
        """
        if self.header is not None:
            self.rest += data
            return None
        buffer = self._buffer = self._buffer + data
        if not buffer:
            return None
        if buffer[0] == 0x50:  # "P"
            header = self._v1(buffer)
        elif buffer[0] == 0x0D:  # CR
            header = self._v2(buffer)
        else:
            raise ProxyProtocolError("PROXY_NO_HEADER", f"starts with {buffer[:16]!r}")
        if header is not None:
            self.header = header
            self.rest = buffer[header.length :]
            self._buffer = b""
        return header

    def eof(self) -> None:
        """The input ended.

        Raises:
            ProxyProtocolError: ``PROXY_TRUNCATED`` when no complete header was fed.
        """
        if self.header is None:
            raise ProxyProtocolError("PROXY_TRUNCATED", f"after {len(self._buffer)} bytes")

    # -- version 1 ------------------------------------------------------------------------------

    def _v1(self, buffer: bytes) -> ProxyHeader | None:
        if not buffer.startswith(_V1_PREFIX[: len(buffer)]):
            raise ProxyProtocolError("PROXY_NO_HEADER", f"starts with {buffer[:16]!r}")
        end = buffer.find(b"\r\n", 0, V1_MAX_LENGTH)
        # complete or not, reject at once what can never be part of a line (control bytes,
        # binary, a CR not followed by LF) rather than wait for more
        line = buffer[:end] if end >= 0 else buffer[:V1_MAX_LENGTH].removesuffix(b"\r")
        if line.translate(None, _V1_LINE_BYTES):
            raise ProxyProtocolError("PROXY_SYNTAX", f"bad byte in {line!r}")
        if end >= 0:
            return _parse_v1(line)
        if len(buffer) >= V1_MAX_LENGTH:
            raise ProxyProtocolError("PROXY_TOO_LONG", f"no CRLF in {V1_MAX_LENGTH} bytes")
        return None

    # -- version 2 ------------------------------------------------------------------------------

    def _v2(self, buffer: bytes) -> ProxyHeader | None:
        if not buffer.startswith(V2_SIGNATURE[: len(buffer)]):
            raise ProxyProtocolError("PROXY_NO_HEADER", f"starts with {buffer[:16]!r}")
        if len(buffer) > 12:  # reject a bad version, command, family or transport at once
            _v2_check_fixed(buffer)
        if len(buffer) < _V2_FIXED:
            return None
        # (checked above; the transport does not matter: any of them names host and port)
        command, family = buffer[12] & 0x0F, buffer[13] >> 4
        size = _V2_FIXED + int.from_bytes(buffer[14:16], "big")
        if size > self.max_v2_length:
            raise ProxyProtocolError("PROXY_TOO_LONG", f"{size} bytes (limit {self.max_v2_length})")
        if len(buffer) < size:
            return None
        name, needed = _V2_FAMILIES[family]
        block = buffer[_V2_FIXED:size]
        if command == 0:  # LOCAL: the addresses, if any, are to be ignored
            return ProxyHeader(2, "LOCAL", name, None, None, size)
        if len(block) < needed:
            raise ProxyProtocolError(
                "PROXY_ADDRESS", f"{name} needs {needed} address bytes, got {len(block)}"
            )
        if family == 1:
            source = (socket.inet_ntop(socket.AF_INET, block[0:4]), _port(block, 8))
            target = (socket.inet_ntop(socket.AF_INET, block[4:8]), _port(block, 10))
        elif family == 2:
            source = (socket.inet_ntop(socket.AF_INET6, block[0:16]), _port(block, 32))
            target = (socket.inet_ntop(socket.AF_INET6, block[16:32]), _port(block, 34))
        else:  # UNSPEC, UNIX: nothing an (host, port) address can say
            return ProxyHeader(2, "PROXY", name, None, None, size)
        return ProxyHeader(2, "PROXY", name, source, target, size)


def _v2_check_fixed(buffer: bytes) -> None:
    """Check the version/command byte (offset 12) and, once it arrived, the family/transport
    byte (offset 13) of a version 2 header whose first 13 bytes or more are in ``buffer``.

    Raises:
        ProxyProtocolError: a version, command, family or transport the protocol does not
            define.
    """
    version_command = buffer[12]
    if version_command >> 4 != 2:
        raise ProxyProtocolError("PROXY_VERSION", f"version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyProtocolError("PROXY_COMMAND", f"command {command}")
    if len(buffer) < 14:
        return
    family, transport = buffer[13] >> 4, buffer[13] & 0x0F
    if family not in _V2_FAMILIES or transport > 2:
        raise ProxyProtocolError("PROXY_FAMILY", f"family {family}, transport {transport}")


def _port(block: bytes, offset: int) -> int:
    return int.from_bytes(block[offset : offset + 2], "big")


def _parse_v1(line: bytes) -> ProxyHeader:
    """A complete version 1 line (without its CRLF)."""
    length = len(line) + 2
    parts = line.split(b" ")
    protocol = parts[1] if len(parts) > 1 else b""
    if protocol == b"UNKNOWN":  # the rest of the line is to be ignored
        return ProxyHeader(1, "PROXY", "UNSPEC", None, None, length)
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError("PROXY_SYNTAX", f"protocol {protocol!r}")
    if len(parts) != 6:
        raise ProxyProtocolError("PROXY_SYNTAX", f"{len(parts)} fields in {line!r}")
    six = protocol == b"TCP6"
    source = (_v1_address(parts[2], six), _v1_port(parts[4]))
    target = (_v1_address(parts[3], six), _v1_port(parts[5]))
    return ProxyHeader(1, "PROXY", "INET6" if six else "INET", source, target, length)


def _v1_address(text: bytes, six: bool) -> str:
    try:
        if six:
            if b"%" in text:  # a zone index names an interface of the sender's host
                raise ValueError(text)
            # written as the socket module writes peer addresses (inet_ntop: IPv4-mapped ones
            # dotted), the same on every Python version
            return socket.inet_ntop(
                socket.AF_INET6, ipaddress.IPv6Address(text.decode("ascii")).packed
            )
        return str(ipaddress.IPv4Address(text.decode("ascii")))
    except ValueError:
        family = "IPv6" if six else "IPv4"
        raise ProxyProtocolError("PROXY_ADDRESS", f"not an {family} address: {text!r}") from None


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (text[:1] == b"0" and text != b"0"):
        raise ProxyProtocolError("PROXY_ADDRESS", f"port {text!r}")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError("PROXY_ADDRESS", f"port {text!r}")
    return port


class ProxyHeaderReader:
    """Reads the PROXY header at the start of an accepted connection, then hands the
    connection over (made by ``HttpServer.handle_conn`` when ``proxy_protocol`` is set).

    It takes the TcpConnection's events as its sink and resumes reading. When the header is
    complete, it stops reading, gives the connection back (no sink, paused), sets
    ``tcp_conn.address`` to the header's ``source`` when it names one, and calls
    ``done(tcp_conn, rest)`` with the bytes that followed the header. When the header is bad,
    the peer closes first, or ``timeout`` seconds pass, the connection is aborted and ``done``
    is never called.

    Args:
        tcp_conn: the accepted connection, paused, with no listeners of its own.
        loop: the loop (for the timeout).
        timeout: seconds for the whole header to arrive; None for no limit.
        done: called with ``(tcp_conn, rest)`` once the header is read.
        max_v2_length: passed to the ProxyHeaderParser.

    Attributes:
        tcp_conn: the connection.
        header: the ProxyHeader once read, else None.
    """

    __slots__ = ("_done", "_parser", "_timer", "header", "tcp_conn")

    def __init__(
        self,
        tcp_conn: TcpConnection,
        loop: LoopBase,
        timeout: float | None,
        done: Callable[[TcpConnection, bytes], object],
        max_v2_length: int = 4096,
    ) -> None:
        self.tcp_conn: TcpConnection | None = tcp_conn
        self.header: ProxyHeader | None = None
        self._parser = ProxyHeaderParser(max_v2_length)
        self._done = done
        self._timer: ScheduledEvent | None = (
            loop.schedule(timeout, self._expire) if timeout is not None else None
        )
        tcp_conn.sink(self)
        tcp_conn.pause(False)

    # -- the TcpConnection's events (as its sink) ------------------------------------------------

    def data(self, chunk: bytes) -> None:
        """Bytes arrived: parse; hand over once the header is complete."""
        try:
            header = self._parser.feed(chunk)
        except ProxyProtocolError as err:
            self._fail(err)
            return
        if header is not None:
            self._complete(header)

    def close(self) -> None:
        """The peer closed (or the connection failed) before the header was complete."""
        try:
            self._parser.eof()
        except ProxyProtocolError as err:
            self._fail(err)

    def disconnect(self) -> None:
        """The socket is closed."""
        self._stop()

    # -- internals ------------------------------------------------------------------------------

    def _expire(self) -> None:
        self._timer = None
        self._fail(ProxyProtocolError("PROXY_TIMEOUT", "the header was not complete in time"))

    def _stop(self) -> TcpConnection | None:
        """Forget the connection and the timer; return the connection (None if done already)."""
        tcp = self.tcp_conn
        self.tcp_conn = None
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        if tcp is not None:
            tcp.sink(None)
        return tcp

    def _fail(self, err: ProxyProtocolError) -> None:
        tcp = self._stop()
        if tcp is not None:
            logger.debug("PROXY protocol header from %r rejected: %s", tcp.address, err)
            tcp.abort()

    def _complete(self, header: ProxyHeader) -> None:
        tcp = self._stop()
        if tcp is None:  # pragma: no cover - the sink is removed first
            return
        self.header = header
        tcp.pause(True)
        if header.source is not None:
            tcp.address = header.source
        self._done(tcp, self._parser.rest)
