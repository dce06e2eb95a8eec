"""A tiny authoritative DNS server for the tests, on 127.0.0.1, running on the test's own loop.

UDP is served by ``thor.udp.UdpEndpoint``; TCP (for the truncation tests) by a non-blocking
listening socket registered with the same loop. Messages are built and parsed with dnspython.
Everything is single-threaded: tests can check that resolving creates no thread.

Zone data is a dict; each query is recorded in ``queries`` as ``(transport, name, type)``, so a
test can count what reached the server (cache hits, retries, TCP fallback). ``mode`` selects a
misbehaviour: ``"answer"`` (normal), ``"drop"`` (never answers: timeouts), ``"servfail"``,
``"refused"``, ``"garbage"`` (a response that does not parse, then nothing), ``"no_edns"``
(FORMERR to queries with EDNS, as servers from before RFC 6891 did).

The server re-registers its sockets each time the loop starts (``loop.stop()`` forgets every
registered fd), so a test may run the loop several times.

The test modules import this file by name: pytest runs with ``--import-mode=importlib``, and
conftest.py puts this directory on ``sys.path``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from thor.loop import FD_READABLE, FD_WRITABLE, LoopBase
from thor.udp import UdpEndpoint

ZONE_SOA = "ns.test. hostmaster.test. 1 3600 600 86400 {minimum}"


class _TcpConnection:
    """One accepted TCP connection: reads one length-prefixed query, answers, closes."""

    def __init__(self, server: DnsTestServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""
        sock.setblocking(False)
        server.loop._fd_register(sock.fileno(), FD_READABLE, self)

    def handle_fd_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        self.inbuf += data
        if len(self.inbuf) >= 2:
            size = int.from_bytes(self.inbuf[:2], "big")
            if len(self.inbuf) >= 2 + size:
                wire = self.server.respond(bytes(self.inbuf[2 : 2 + size]), "tcp", None)
                if wire is None:
                    self.close()
                    return
                self.outbuf = len(wire).to_bytes(2, "big") + wire
                self.server.loop._fd_set_mask(self.sock.fileno(), FD_WRITABLE)

    def handle_fd_writable(self) -> None:
        try:
            sent = self.sock.send(self.outbuf)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.outbuf = self.outbuf[sent:]
        if not self.outbuf:
            self.close()

    def handle_fd_error(self) -> None:
        self.close()

    def handle_fd_close(self) -> None:
        pass

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.server.loop._fd_unregister(self.sock.fileno())
            self.sock.close()
        self.server.connections.discard(self)


class _TcpListener:
    def __init__(self, server: DnsTestServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    def handle_fd_readable(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        self.server.connections.add(_TcpConnection(self.server, conn))

    def handle_fd_writable(self) -> None:
        pass

    handle_fd_error = handle_fd_close = handle_fd_writable


class DnsTestServer:
    """A DNS server for tests on 127.0.0.1 (UDP and TCP on the same port), on ``loop``.

    Args:
        loop: the test's loop.
        tcp: also listen on TCP (same port number).
    """

    def __init__(self, loop: LoopBase, *, tcp: bool = True) -> None:
        self.loop = loop
        self.records: dict[tuple[str, str], tuple[list[str], int]] = {}
        self.cnames: dict[str, tuple[str, int]] = {}
        self.queries: list[tuple[str, str, str]] = []
        self.mode = "answer"
        self.negative_ttl = 60  # the SOA MINIMUM of negative answers
        self.send_soa = True
        self.udp_max_size: int | None = None  # truncate UDP answers above this (else EDNS size)
        self.connections: set[_TcpConnection] = set()
        self._listener: _TcpListener | None = None
        self.udp, self.port, self.tcp_sock = self._bind(tcp)
        self.udp.on("datagram", self._datagram)
        if self.tcp_sock is not None:
            self._listener = _TcpListener(self, self.tcp_sock)
        self.attach()
        loop.on("start", self.attach)

    def _bind(self, tcp: bool) -> tuple[UdpEndpoint, int, socket.socket | None]:
        """A UDP endpoint (and with ``tcp`` a TCP listener) on one free port of 127.0.0.1."""
        for _ in range(20):  # another process may hold the TCP side of a free UDP port
            port = 0
            listener = None
            if tcp:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind(("127.0.0.1", 0))
                listener.listen(16)
                listener.setblocking(False)
                port = listener.getsockname()[1]
            udp = UdpEndpoint(self.loop)
            udp.bind(b"127.0.0.1", port)  # a literal binds at once, or fails and closes
            if udp.port is not None and udp.sock is not None:
                return udp, udp.port, listener
            if listener is not None:
                listener.close()
        raise OSError("no free port for both UDP and TCP on 127.0.0.1")

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def attach(self) -> None:
        """(Re-)register with the loop (``loop.stop()`` forgets every fd)."""
        self.udp.pause(False)
        if self.tcp_sock is not None and self._listener is not None:
            self.loop._fd_register(self.tcp_sock.fileno(), FD_READABLE, self._listener)

    # -- zone data --------------------------------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> None:
        """Records of one name and type (``add("www.test", "A", "192.0.2.1")``)."""
        self.records[(name.lower().rstrip("."), rdtype)] = (list(values), ttl)

    def add_cname(self, name: str, target: str, ttl: int = 300) -> None:
        self.cnames[name.lower().rstrip(".")] = (target.lower().rstrip("."), ttl)

    def count(self, name: str | None = None, rdtype: str | None = None) -> int:
        """How many queries (over any transport) matched."""
        return sum(
            1
            for _, qname, qtype in self.queries
            if (name is None or qname == name) and (rdtype is None or qtype == rdtype)
        )

    def _known(self, name: str) -> bool:
        return name in self.cnames or any(key[0] == name for key in self.records)

    # -- answering --------------------------------------------------------------------------------

    def respond(self, wire: bytes, transport: str, max_size: int | None) -> bytes | None:
        """The wire answer to a query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((transport, name, rdtype))
        if self.mode == "drop":
            return None
        if self.mode == "garbage":
            return wire[:2] + b"\x80\x00 this is not a DNS message"
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if self.mode == "refused" or (self.mode == "no_edns" and query.edns >= 0):
            response = dns.message.make_response(query)
            response.use_edns(False)
            response.set_rcode(dns.rcode.REFUSED if self.mode == "refused" else dns.rcode.FORMERR)
            return response.to_wire()
        current = name
        for _ in range(20):
            if current not in self.cnames:
                break
            target, ttl = self.cnames[current]
            response.answer.append(
                dns.rrset.from_text(current + ".", ttl, "IN", "CNAME", target + ".")
            )
            current = target
        values = self.records.get((current, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(current + ".", values[1], "IN", rdtype, values[0])
            )
        else:
            if not self._known(current):
                response.set_rcode(dns.rcode.NXDOMAIN)
            if self.send_soa:
                soa = ZONE_SOA.format(minimum=self.negative_ttl)
                response.authority.append(dns.rrset.from_text("test.", 3600, "IN", "SOA", soa))
        if transport == "udp":
            size = self.udp_max_size or (query.payload if query.edns >= 0 else 512)
            return response.to_wire(max_size=size, prefer_truncation=True)
        return response.to_wire(max_size=65535)

    def _datagram(self, data: bytes, host: str, port: int) -> None:
        wire = self.respond(data, "udp", None)
        if wire is not None:
            self.udp.send(wire, host, port)

    def close(self) -> None:
        self.loop.remove_listener("start", self.attach)
        self.udp.shutdown()
        for conn in list(self.connections):
            conn.close()
        if self.tcp_sock is not None:
            self.loop._fd_unregister(self.tcp_sock.fileno())
            self.tcp_sock.close()
            self.tcp_sock = None


def closed_udp_port() -> int:
    """A UDP port on 127.0.0.1 with nothing listening (ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def iter_addresses(results: object) -> Iterator[str]:
    assert isinstance(results, list), results
    for entry in results:
        yield entry[4][0]
