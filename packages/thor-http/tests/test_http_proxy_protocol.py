"""PROXY protocol v1/v2 on HttpServer (``proxy_protocol = True``) and its sans-IO parser.

Parser: vectors of valid headers (every version, command and family) with what they say, fed
whole and split at every byte; invalid ones with the code of their rejection, and rejected as
early as possible. Server: raw sockets on 127.0.0.1 send headers (alone, with the request in
the same send, one byte per send), and the address the header names is the one the exchange
sees (``exchange.http_conn.tcp_conn.address``); bad, oversize, missing and late headers close
the connection without a response."""

from __future__ import annotations

import itertools
import pickle
import socket
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.http._proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderParser,
    ProxyProtocolError,
)

if TYPE_CHECKING:
    from http_server_support import Harness

    from thor.http.server import HttpServer, HttpServerExchange

harness = support.harness

REQUEST = b"GET /where HTTP/1.1\r\nHost: example.com\r\n\r\n"


def v2(
    command: int = 1, family: int = 1, transport: int = 1, block: bytes = b"", version: int = 2
) -> bytes:
    """A version 2 header with ``block`` (addresses, TLVs) after the fixed part."""
    return (
        V2_SIGNATURE
        + bytes([version << 4 | command, family << 4 | transport])
        + len(block).to_bytes(2, "big")
        + block
    )


INET = socket.inet_pton(socket.AF_INET, "192.0.2.1") + socket.inet_pton(
    socket.AF_INET, "198.51.100.2"
)
INET_PORTS = (56324).to_bytes(2, "big") + (443).to_bytes(2, "big")
INET6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + socket.inet_pton(
    socket.AF_INET6, "2001:db8:0:0:0:0:0:2"
)
TLVS = b"\x02\x00\x0bexample.com" + b"\x04\x00\x00"  # AUTHORITY, NOOP

# (header bytes, what it says, why)
VALID: list[tuple[bytes, ProxyHeader, str]] = [
    (
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        ProxyHeader(1, "PROXY", "INET", ("192.0.2.1", 56324), ("198.51.100.2", 443), 45),
        "v1 TCP4",
    ),
    (
        b"PROXY TCP6 2001:DB8:0::1 ::ffff:192.0.2.1 0 65535\r\n",
        ProxyHeader(1, "PROXY", "INET6", ("2001:db8::1", 0), ("::ffff:192.0.2.1", 65535), 51),
        "v1 TCP6: addresses normalised; ports at both ends of their range",
    ),
    (
        b"PROXY UNKNOWN\r\n",
        ProxyHeader(1, "PROXY", "UNSPEC", None, None, 15),
        "v1 UNKNOWN, shortest",
    ),
    (
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        ProxyHeader(1, "PROXY", "UNSPEC", None, None, 59),
        "v1 UNKNOWN: the rest of the line is ignored",
    ),
    (
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        ProxyHeader(
            1,
            "PROXY",
            "INET6",
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            104,
        ),
        "v1 at its longest but for UNKNOWN's",
    ),
    (
        v2(block=INET + INET_PORTS),
        ProxyHeader(2, "PROXY", "INET", ("192.0.2.1", 56324), ("198.51.100.2", 443), 28),
        "v2 PROXY INET STREAM",
    ),
    (
        v2(family=2, block=INET6 + INET_PORTS + TLVS),
        ProxyHeader(2, "PROXY", "INET6", ("2001:db8::1", 56324), ("2001:db8::2", 443), 69),
        "v2 PROXY INET6 with TLVs (skipped)",
    ),
    (
        v2(command=0, family=0, transport=0),
        ProxyHeader(2, "LOCAL", "UNSPEC", None, None, 16),
        "v2 LOCAL (a balancer's health check)",
    ),
    (
        v2(command=0, block=INET + INET_PORTS),
        ProxyHeader(2, "LOCAL", "INET", None, None, 28),
        "v2 LOCAL: addresses ignored",
    ),
    (
        v2(family=3, block=b"/run/a.sock".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0")),
        ProxyHeader(2, "PROXY", "UNIX", None, None, 232),
        "v2 PROXY UNIX: no host and port to give",
    ),
    (
        v2(family=0, transport=0, block=b"\x04\x00\x00"),
        ProxyHeader(2, "PROXY", "UNSPEC", None, None, 19),
        "v2 PROXY UNSPEC",
    ),
    (
        v2(transport=2, block=INET + INET_PORTS),
        ProxyHeader(2, "PROXY", "INET", ("192.0.2.1", 56324), ("198.51.100.2", 443), 28),
        "v2 PROXY INET DGRAM",
    ),
]

# (bytes, code, why); each is rejected once all of it is fed, never sooner than it can be
INVALID: list[tuple[bytes, str, str]] = [
    (b"GET / HTTP/1.1\r\n", "PROXY_NO_HEADER", "no header: HTTP straight away"),
    (b"\x16\x03\x01\x02\x00", "PROXY_NO_HEADER", "no header: a TLS ClientHello"),
    (b"PROXX", "PROXY_NO_HEADER", "v1 misspelt"),
    (b"proxy TCP4", "PROXY_NO_HEADER", "v1 is case-sensitive"),
    (b"\r\n\r\n\x00\r\nQUIX", "PROXY_NO_HEADER", "v2 signature wrong"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2" + b" " * 70, "PROXY_TOO_LONG", "v1: no CRLF"),
    (b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "PROXY_TOO_LONG", "v1 of 108 bytes"),
    (b"PROXY TCP4 192.0.2.1\n", "PROXY_SYNTAX", "v1: bare LF"),
    (b"PROXY TCP4\r192.0.2.1", "PROXY_SYNTAX", "v1: bare CR"),
    (b"PROXY TCP4 \x00", "PROXY_SYNTAX", "v1: control byte"),
    (b"PROXY TCP4 \xc3\xa9", "PROXY_SYNTAX", "v1: not ASCII"),
    (b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", "PROXY_SYNTAX", "v1: unknown protocol"),
    (b"PROXY \r\n", "PROXY_SYNTAX", "v1: no protocol"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", "PROXY_SYNTAX", "v1: a field missing"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n", "PROXY_SYNTAX", "v1: trailing space"),
    (b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n", "PROXY_SYNTAX", "v1: double space"),
    (b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n", "PROXY_ADDRESS", "v1: IPv6 in TCP4"),
    (b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", "PROXY_ADDRESS", "v1: IPv4 in TCP6"),
    (b"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n", "PROXY_ADDRESS", "v1: octet too big"),
    (b"PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n", "PROXY_ADDRESS", "v1: leading zero octet"),
    (b"PROXY TCP4 localhost 192.0.2.2 1 2\r\n", "PROXY_ADDRESS", "v1: a name"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "PROXY_ADDRESS", "v1: IPv6 zone"),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", "PROXY_ADDRESS", "v1: port too big"),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 080 2\r\n", "PROXY_ADDRESS", "v1: port leading zero"),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 +80 2\r\n", "PROXY_ADDRESS", "v1: port sign"),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 80 \r\n", "PROXY_ADDRESS", "v1: port empty (trailing)"),
    (v2(version=1)[:13], "PROXY_VERSION", "v2: version 1 in binary"),
    (v2(version=3)[:13], "PROXY_VERSION", "v2: version 3"),
    (v2(command=2)[:13], "PROXY_COMMAND", "v2: command 2"),
    (v2(family=4)[:14], "PROXY_FAMILY", "v2: family 4"),
    (v2(transport=3)[:14], "PROXY_FAMILY", "v2: transport 3"),
    (v2(version=1, block=INET + INET_PORTS), "PROXY_VERSION", "v2: version 1, whole header"),
    (v2(command=15, block=INET + INET_PORTS), "PROXY_COMMAND", "v2: command 15, whole header"),
    (v2(family=5, block=INET + INET_PORTS), "PROXY_FAMILY", "v2: family 5, whole header"),
    (v2(transport=15, block=INET + INET_PORTS), "PROXY_FAMILY", "v2: transport 15, whole"),
    (v2(block=INET), "PROXY_ADDRESS", "v2: INET address block short"),
    (v2(family=2, block=INET + INET_PORTS), "PROXY_ADDRESS", "v2: INET6 address block short"),
    (v2(family=3, block=b"\0" * 215), "PROXY_ADDRESS", "v2: UNIX address block short"),
    (v2(block=b"\0" * 5000)[:16], "PROXY_TOO_LONG", "v2: length over the limit, at once"),
]


@pytest.mark.parametrize(("data", "expected", "why"), VALID, ids=[v[2] for v in VALID])
def test_valid_headers_whole_and_split_everywhere(
    data: bytes, expected: ProxyHeader, why: str
) -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(data + REQUEST) == expected, why
    assert parser.rest == REQUEST
    assert parser.header == expected
    parser.eof()  # complete: no complaint
    for split in range(len(data)):
        parser = ProxyHeaderParser()
        assert parser.feed(data[:split]) is None
        assert parser.feed(data[split:]) == expected, split
        assert parser.rest == b""
        assert parser.feed(b"more") is None
        assert parser.rest == b"more"
    parser = ProxyHeaderParser()
    results = [parser.feed(data[i : i + 1]) for i in range(len(data))]
    assert results == [None] * (len(data) - 1) + [expected]


@pytest.mark.parametrize(("data", "code", "why"), INVALID, ids=[v[2] for v in INVALID])
def test_invalid_headers_rejected_with_their_code(data: bytes, code: str, why: str) -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyProtocolError) as caught:
        parser.feed(data)
    assert caught.value.code == code, why
    # byte by byte: rejected no later than the last byte, with the same code
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyProtocolError) as caught:
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
    assert caught.value.code == code, why


def test_garbage_is_rejected_at_its_first_byte() -> None:
    for first in (b"G", b"\x16", b"\x00", b" ", b"\n"):
        with pytest.raises(ProxyProtocolError) as caught:
            ProxyHeaderParser().feed(first)
        assert caught.value.code == "PROXY_NO_HEADER"


def test_truncated_and_limits_and_pickling() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY TCP4 192.0.2.1") is None
    with pytest.raises(ProxyProtocolError) as caught:
        parser.eof()
    assert caught.value.code == "PROXY_TRUNCATED"
    with pytest.raises(ProxyProtocolError) as caught:
        ProxyHeaderParser().eof()
    assert caught.value.code == "PROXY_TRUNCATED"
    # the v2 limit counts the whole header
    header = v2(block=INET + INET_PORTS + b"\x04\x00\x08" + b"\0" * 8)
    assert ProxyHeaderParser(max_v2_length=len(header)).feed(header) is not None
    with pytest.raises(ProxyProtocolError) as caught:
        ProxyHeaderParser(max_v2_length=len(header) - 1).feed(header[:16])
    assert caught.value.code == "PROXY_TOO_LONG"
    err = pickle.loads(pickle.dumps(ProxyProtocolError("PROXY_SYNTAX", "why")))
    assert (type(err), err.code, err.detail, str(err)) == (
        ProxyProtocolError,
        "PROXY_SYNTAX",
        "why",
        "PROXY_SYNTAX: why",
    )
    assert not isinstance(err, ValueError)


def feed_in_pieces(data: bytes, cuts: list[int]) -> tuple[ProxyHeaderParser, list[Any]]:
    """Feed ``data`` cut at ``cuts``; return the parser and what each feed returned."""
    parser = ProxyHeaderParser()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    results = [parser.feed(data[a:b]) for a, b in itertools.pairwise(points)]
    return parser, results


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([v[0] for v in VALID] + [v[0] for v in INVALID]).flatmap(
        lambda header: st.tuples(
            st.just(header),
            st.binary(max_size=40).map(lambda tail: header + tail),
        )
    ),
    st.lists(st.integers(0, 400), max_size=10),
)
def test_any_split_of_any_vector_gives_the_same_outcome(
    pair: tuple[bytes, bytes], cuts: list[int]
) -> None:
    """Whatever follows a vector and however it is cut, the outcome is the one of the whole:
    the same header and rest, or a ProxyProtocolError with the same code."""
    _, data = pair
    whole = ProxyHeaderParser()
    try:
        expected: Any = (whole.feed(data), whole.rest)
    except ProxyProtocolError as err:
        expected = err.code
    try:
        parser, results = feed_in_pieces(data, cuts)
        got: Any = (next((r for r in results if r is not None), None), parser.rest)
    except ProxyProtocolError as err:
        got = err.code
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"PROXY " + b),
        st.binary(max_size=300).map(lambda b: V2_SIGNATURE + b),
        st.binary(max_size=300).map(lambda b: V2_SIGNATURE + b"\x21" + b),
    ),
    st.lists(st.integers(0, 400), max_size=10),
)
def test_arbitrary_bytes_raise_nothing_but_proxy_protocol_errors(
    data: bytes, cuts: list[int]
) -> None:
    try:
        parser, _ = feed_in_pieces(data, cuts)
    except ProxyProtocolError as err:
        assert err.code.startswith("PROXY_")
        return
    header = parser.header
    if header is None:  # waiting for more: only while it could still become a header
        assert len(data) < 4096
        with pytest.raises(ProxyProtocolError):
            parser.eof()
    else:
        assert data[: header.length] + parser.rest == data


# -- on a real server ------------------------------------------------------------------------------


def recording_server(harness: Harness, **settings: Any) -> tuple[HttpServer, list[Any]]:
    """A proxy_protocol server that answers every request and records the address each
    exchange saw."""
    addresses: list[Any] = []
    hello = support.hello_handler()

    def handler(exchange: HttpServerExchange) -> None:
        tcp_conn = exchange.http_conn.tcp_conn
        addresses.append(tcp_conn.address if tcp_conn is not None else None)
        hello(exchange)

    settings.setdefault("proxy_protocol", True)
    return harness.server(handler, **settings), addresses


def exchange_over(harness: Harness, server: HttpServer, *sends: bytes, count: int = 1) -> Any:
    """Send ``sends`` on one connection (one send each), read ``count`` responses; return them
    with the client's own (host, port)."""

    def client() -> tuple[list[support.Response], tuple[str, int]]:
        sock = harness.connect(server)
        for data in sends:
            sock.sendall(data)
        reader = support.ResponseReader(sock)
        return [reader.read() for _ in range(count)], sock.getsockname()

    return harness.client(client)


@pytest.mark.parametrize(
    ("header", "address"),
    [
        (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", ("192.0.2.1", 56324)),
        (b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n", ("2001:db8::1", 56324)),
        (v2(block=INET + INET_PORTS), ("192.0.2.1", 56324)),
        (v2(family=2, block=INET6 + INET_PORTS + TLVS), ("2001:db8::1", 56324)),
    ],
    ids=["v1-tcp4", "v1-tcp6", "v2-inet", "v2-inet6-tlvs"],
)
def test_address_reaches_the_exchange(harness: Harness, header: bytes, address: Any) -> None:
    server, addresses = recording_server(harness)
    # the header alone, then the request in its own send
    responses, _ = exchange_over(harness, server, header, REQUEST)
    assert [r.status for r in responses] == [b"200"]
    assert responses[0].body == support.HELLO
    assert addresses == [address]


@pytest.mark.parametrize(
    "header", [b"PROXY UNKNOWN\r\n", v2(command=0, block=INET + INET_PORTS)], ids=["v1", "v2"]
)
def test_unknown_and_local_keep_the_real_address(harness: Harness, header: bytes) -> None:
    server, addresses = recording_server(harness)
    responses, own = exchange_over(harness, server, header + REQUEST)
    assert [r.status for r in responses] == [b"200"]
    assert addresses == [own]
    assert own[0] == "127.0.0.1"


def test_request_in_the_same_send_and_keep_alive(harness: Harness) -> None:
    server, addresses = recording_server(harness)
    header = b"PROXY TCP4 203.0.113.9 198.51.100.2 1000 80\r\n"
    # header and two pipelined requests in one send, then a third request later
    responses, _ = exchange_over(harness, server, header + REQUEST + REQUEST, REQUEST, count=3)
    assert [r.status for r in responses] == [b"200"] * 3
    assert addresses == [("203.0.113.9", 1000)] * 3


def test_request_with_close_in_the_same_send(harness: Harness) -> None:
    """Answered and closed while the bytes after the header are being served."""
    server, addresses = recording_server(harness)
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(v2(block=INET + INET_PORTS) + request)
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"\r\n\r\nd\r\nHello, world!\r\n0\r\n\r\n" in data
    assert addresses == [("192.0.2.1", 56324)]


@pytest.mark.parametrize(
    ("header", "address"),
    [
        (b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n", ("2001:db8::1", 56324)),
        (v2(block=INET + INET_PORTS + TLVS), ("192.0.2.1", 56324)),
    ],
    ids=["v1", "v2"],
)
def test_one_byte_per_send(harness: Harness, header: bytes, address: Any) -> None:
    server, addresses = recording_server(harness)

    def client() -> list[support.Response]:
        sock = harness.connect(server)
        for i in range(len(header)):
            sock.sendall(header[i : i + 1])
            time.sleep(0.001)  # so that the server mostly reads them one by one
        sock.sendall(REQUEST)
        return [support.ResponseReader(sock).read()]

    responses = harness.client(client)
    assert [r.status for r in responses] == [b"200"]
    assert addresses == [address]


@pytest.mark.parametrize(
    "data",
    [
        REQUEST,  # no header at all
        b"\x16\x03\x01\x00\x05hello",  # TLS
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n" + REQUEST,  # bare LF
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 99999\r\n" + REQUEST,  # bad port
        b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n" + REQUEST,  # oversize v1
        v2(block=b"\0" * 5000) + REQUEST,  # oversize v2
        v2(command=5, block=INET + INET_PORTS) + REQUEST,  # unknown command
        V2_SIGNATURE[:8] + b"garbage" + REQUEST,
    ],
    ids=["http", "tls", "bare-lf", "bad-port", "oversize-v1", "oversize-v2", "command", "sig"],
)
def test_bad_headers_close_without_a_response(harness: Harness, data: bytes) -> None:
    server, addresses = recording_server(harness)

    def client() -> bytes:
        sock = harness.connect(server)
        try:
            sock.sendall(data)
        except ConnectionResetError:
            return b""
        return support.recv_until_close(sock)

    assert harness.client(client) == b""
    assert addresses == []
    assert harness.exchanges == []
    assert not server.connections


def test_missing_header_times_out(harness: Harness) -> None:
    server, addresses = recording_server(harness, request_head_timeout=0.2)

    def client() -> tuple[bool, bool]:
        silent = harness.connect(server)
        partial = harness.connect(server)
        partial.sendall(b"PROXY TCP4 192.0.2.1 ")
        return support.closed_by_peer(silent), support.closed_by_peer(partial)

    assert harness.client(client) == (True, True)
    assert addresses == []


def test_peer_closing_inside_the_header(harness: Harness) -> None:
    server, addresses = recording_server(harness)
    closed: list[bool] = []

    def client() -> None:
        sock = harness.connect(server)
        sock.sendall(b"PROXY TCP4 192.0.2.1 ")
        sock.shutdown(socket.SHUT_WR)
        closed.append(support.closed_by_peer(sock))

    harness.client(client)
    assert closed == [True]
    assert addresses == []
    assert not server.tcp_server.active_connections


def test_without_the_setting_a_header_is_a_bad_request(harness: Harness) -> None:
    server, addresses = recording_server(harness, proxy_protocol=False)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" + REQUEST)
        return support.recv_until_close(sock)

    assert harness.client(client).startswith(b"HTTP/1.1 400 ")
    assert addresses == []


def test_upgrade_in_the_same_send_as_the_header(harness: Harness) -> None:
    """Header, Upgrade request and the first tunnel bytes in one send: the application gets
    the connection (with the client's address from the header) and the tunnel bytes."""
    seen: dict[str, Any] = {}

    def handler(exchange: HttpServerExchange) -> None:
        def upgraded(tcp_conn: Any, rest: bytes) -> None:
            seen["address"] = tcp_conn.address
            seen["rest"] = rest
            tcp_conn.write(rest.upper())
            tcp_conn.close()

        def done(trailers: Any) -> None:
            exchange.response_start(b"101", b"Switching Protocols", [(b"Upgrade", b"echo")])
            exchange.response_done([])

        exchange.on("upgrade", upgraded)
        exchange.on("request_done", done)

    server = harness.server(handler, proxy_protocol=True)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello"
        )
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 101 ")
    assert data.endswith(b"\r\n\r\nHELLO")
    assert seen == {"address": ("192.0.2.1", 56324), "rest": b"hello"}
