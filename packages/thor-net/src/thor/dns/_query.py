"""One DNS question asked of the nameservers, on the loop: UDP, TCP when truncated, retries.

Theory of operation
-------------------
A ``DnsQuery`` asks one question (a name and a record type, A or AAAA) and reports once, through
its ``on_done`` function, with one of: addresses (``ANSWER``), ``NODATA``, ``NXDOMAIN``, or
``FAILED`` (no usable answer from any nameserver). It is its own file-descriptor handler: it has
at most one socket open at a time and the loop calls its ``handle_fd_*`` methods directly.

The plan of tries is the nameserver list (rotated when asked to) repeated ``attempts`` times.
Each try opens a fresh UDP socket, ``connect``s it to the server and sends the query:

* a fresh socket per try gives a fresh random source port (with dnspython's random query id,
  the defence against off-path spoofing), and the connected socket makes the kernel drop
  datagrams from any other address;
* connecting also makes the kernel report an ICMP "port unreachable" as ECONNREFUSED on the
  socket, so a nameserver that is down is skipped at once instead of after a timeout.

A try ends with the first acceptable response, after ``timeout`` seconds, or on a socket error.
A response whose header does not carry our id and the QR bit, or that does not parse, or whose
question is not ours, is ignored (we keep listening until the timeout): garbage must not
end a try that a genuine answer could still complete. NOERROR and NXDOMAIN answers end the
query; SERVFAIL, REFUSED, NOTIMP and FORMERR move on to the next try, as a timeout does.

A response with the TC (truncated) bit moves the same server to TCP (RFC 7766): a non-blocking
connect, the query prefixed by its two-byte length, and the answer read the same way, with its
own ``timeout``. Queries carry EDNS0 with a 1232-byte payload (the 2020 DNS flag day value), so
truncation is rare; a server that answers FORMERR to EDNS is asked again without it.

The answer is read by following the CNAME chain from the question's name within the answer
section (at most ``MAX_CNAME_CHAIN`` links; a chain that leaves the answer or loops ends as
NODATA), collecting the address records at its end. The TTL reported is the smallest of every
record used; for negative answers, RFC 2308's SOA-based TTL, or None without an SOA record.

This module imports dnspython (for message encoding and decoding only: none of its resolver or
network code is used), which takes about 120 ms; ``thor.dns`` imports this module only when a
query is actually sent, so resolving literals, hosts-file names and cached names never pays it.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from thor.loop import FD_READABLE, FD_WRITABLE

from ._cache import ANSWER, NODATA, NXDOMAIN
from ._names import parse_ip_literal

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

__all__ = ["EDNS_PAYLOAD", "FAILED", "MAX_CNAME_CHAIN", "DnsQuery"]

FAILED = 3  # no usable answer (the other statuses are in _cache)
EDNS_PAYLOAD = 1232  # bytes of UDP payload we advertise (DNS flag day 2020)
MAX_CNAME_CHAIN = 16  # CNAME links followed within one answer
_UDP_READS_PER_EVENT = 8
_HARD_RCODES = frozenset({dns.rcode.REFUSED, dns.rcode.NOTIMP, dns.rcode.FORMERR})


class DnsQuery:
    """One question to the nameservers, retried and failed over until answered or exhausted.

    Args:
        loop: the loop to run on.
        name: the question's name: ASCII, lower case, without the trailing dot.
        rdtype: ``dns.rdatatype.A`` or ``dns.rdatatype.AAAA``.
        servers: ``(address, port)`` of the nameservers (an IPv6 address may carry ``%zone``).
        timeout: seconds to wait for one server (UDP), and again for a TCP retry.
        attempts: rounds over the server list.
        first: index of the server to start with (``rotate``).
        on_done: called with this query once it has finished (not after ``cancel()``).

    Attributes (valid once finished):
        status: ANSWER, NODATA, NXDOMAIN or FAILED.
        addresses: for ANSWER, ``(address, 0)`` pairs in answer order.
        ttl: seconds the answer may be cached (None: a negative answer without SOA).
        answered: True if some server sent a valid response (even a SERVFAIL).
        hard_failure: True if every response was REFUSED, NOTIMP or FORMERR.
        detail: what went wrong, for FAILED (one entry per try, for error messages).
    """

    __slots__ = (
        "_fd",
        "_hard",
        "_in",
        "_loop",
        "_on_done",
        "_out",
        "_plan",
        "_query",
        "_server",
        "_sock",
        "_sockaddr",
        "_soft",
        "_started",
        "_tcp",
        "_timeout",
        "_timer",
        "_tries",
        "_wire",
        "addresses",
        "answered",
        "detail",
        "done",
        "hard_failure",
        "name",
        "rdtype",
        "status",
        "ttl",
    )

    def __init__(
        self,
        loop: LoopBase,
        name: str,
        rdtype: int,
        *,
        servers: Sequence[tuple[str, int]],
        timeout: float,
        attempts: int,
        first: int,
        on_done: Callable[[DnsQuery], object],
    ) -> None:
        self._loop = loop
        self.name = name
        self.rdtype = rdtype
        self._timeout = timeout
        self._on_done = on_done
        count = len(servers)
        rotated = [servers[(first + index) % count] for index in range(count)]
        self._plan = rotated * attempts
        self._tries = 0
        self._query = self._make_query(edns=True)
        self._wire = self._query.to_wire()
        self._sock: socket.socket | None = None
        self._fd = -1
        self._sockaddr: tuple[str, int] | tuple[str, int, int, int] = ("", 0)
        self._server = ""
        self._tcp = False
        self._out = b""
        self._in = bytearray()
        self._timer: ScheduledEvent | None = None
        self._started = False
        self._hard = 0  # tries ended by REFUSED, NOTIMP or FORMERR
        self._soft = 0  # tries ended otherwise (timeout, SERVFAIL, socket error)
        self.done = False
        self.status = FAILED
        self.addresses: tuple[tuple[str, int], ...] = ()
        self.ttl: float | None = None
        self.answered = False
        self.hard_failure = False
        self.detail: list[str] = []

    def _make_query(self, *, edns: bool) -> dns.message.QueryMessage:
        return dns.message.make_query(
            dns.name.from_text(self.name + "."),
            dns.rdatatype.RdataType.make(self.rdtype),
            use_edns=0 if edns else False,
            payload=EDNS_PAYLOAD,
        )

    def start(self) -> None:
        """Begin (the first try runs on the next loop pass, so ``on_done`` is never called from
        inside ``start``)."""
        if not self._started:
            self._started = True
            self._timer = self._loop.schedule(0, self._next_try)

    def cancel(self) -> None:
        """Stop at once: close the socket, never call ``on_done``. Idempotent."""
        self.done = True
        self._detach()

    # -- tries ------------------------------------------------------------------------------------

    def _next_try(self) -> None:
        self._timer = None
        while not self.done and self._tries < len(self._plan):
            address, port = self._plan[self._tries]
            self._tries += 1
            if self._open_udp(address, port):
                return
        if not self.done:
            self._finish()

    def _open_udp(self, address: str, port: int) -> bool:
        self._server = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
        self._tcp = False
        literal = parse_ip_literal(address)
        if literal is None:
            self.detail.append(f"{self._server}: not an IP address")
            self._soft += 1
            return False
        family, host, scope_id = literal
        if family == socket.AF_INET6:
            self._sockaddr = (host, port, 0, scope_id)
        else:
            self._sockaddr = (host, port)
        sock = None
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self._sockaddr)
            sock.send(self._wire)
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.detail.append(f"{self._server}: {exc.strerror or exc}")
            self._soft += 1
            return False
        self._attach(sock, FD_READABLE)
        return True

    def _open_tcp(self) -> None:
        self._detach()
        self._tcp = True
        sock = None
        try:
            sock = socket.socket(
                socket.AF_INET6 if len(self._sockaddr) == 4 else socket.AF_INET,
                socket.SOCK_STREAM,
            )
            sock.setblocking(False)
            code = sock.connect_ex(self._sockaddr)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.detail.append(f"{self._server} (TCP): {exc.strerror or exc}")
            self._soft += 1
            self._next_try()
            return
        self._out = len(self._wire).to_bytes(2, "big") + self._wire
        self._in = bytearray()
        self._attach(sock, FD_WRITABLE)

    def _attach(self, sock: socket.socket, mask: int) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop._fd_register(self._fd, mask, self)
        self._timer = self._loop.schedule(self._timeout, self._timed_out)

    def _detach(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        sock = self._sock
        if sock is not None:
            self._sock = None
            self._loop._fd_unregister(self._fd)
            self._fd = -1
            sock.close()

    def _try_failed(self, why: str, hard: bool = False) -> None:
        if hard:
            self._hard += 1
        else:
            self._soft += 1
        self.detail.append(f"{self._server}{' (TCP)' if self._tcp else ''}: {why}")
        self._detach()
        self._next_try()

    def _timed_out(self) -> None:
        self._timer = None
        self._try_failed(f"no answer within {self._timeout:g} s")

    # -- the loop's calls -----------------------------------------------------------------------

    def handle_fd_readable(self) -> None:
        """Read the answer (UDP datagrams, or the TCP stream)."""
        sock = self._sock
        if sock is None:
            return
        if self._tcp:
            self._read_tcp(sock)
            return
        for _ in range(_UDP_READS_PER_EVENT):
            try:
                wire = sock.recv(65535)
            except BlockingIOError:
                return
            except OSError as exc:  # ECONNREFUSED: an ICMP port unreachable from the server
                self._try_failed(exc.strerror or str(exc))
                return
            self._received(wire)
            if self._sock is not sock:
                return

    def handle_fd_writable(self) -> None:
        """Send the length-prefixed query on the TCP connection."""
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._try_failed(exc.strerror or str(exc))
            return
        self._out = self._out[sent:]
        if not self._out:
            self._loop._fd_set_mask(self._fd, FD_READABLE)

    def handle_fd_error(self) -> None:
        """An error condition: fail the try with the socket's pending error."""
        sock = self._sock
        if sock is None:
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._try_failed(os.strerror(code))

    def handle_fd_close(self) -> None:
        """A hang-up: for TCP, read what is left (the EOF ends the try if the answer is short)."""
        sock = self._sock
        if sock is not None and self._tcp:
            self._read_tcp(sock)

    # -- answers ----------------------------------------------------------------------------------

    def _read_tcp(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65537)
        except BlockingIOError:
            return
        except OSError as exc:
            self._try_failed(exc.strerror or str(exc))
            return
        if not data:
            self._try_failed("connection closed before the whole answer came")
            return
        buffer = self._in
        buffer += data
        if len(buffer) >= 2:
            size = int.from_bytes(buffer[:2], "big")
            if len(buffer) >= size + 2:
                self._received(bytes(buffer[2 : size + 2]))
                if self._sock is sock:  # not a response to our query
                    self._try_failed("the answer does not match the query")

    def _received(self, wire: bytes) -> None:
        # Check the header by hand first: a truncated answer may not parse, and anything without
        # our id and the QR bit is not worth parsing.
        if len(wire) < 12 or wire[:2] != self._wire[:2] or not wire[2] & 0x80:
            return
        if wire[2] & 0x02 and not self._tcp:  # TC: truncated, ask again over TCP
            self._open_tcp()
            return
        try:
            message = dns.message.from_wire(wire)
        except Exception:  # untrusted input: any parse failure means "ignore it"
            return
        if not self._query.is_response(message):
            return
        rcode = message.rcode()
        self.answered = True
        if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self._read_answer(message, rcode)
            self._detach()
            self._finish()
            return
        if rcode == dns.rcode.FORMERR and self._query.edns >= 0:
            # a server from before EDNS (RFC 6891 §7): ask it again, without EDNS
            self.detail.append(f"{self._server}: FORMERR with EDNS, retrying without")
            self._query = self._make_query(edns=False)
            self._wire = self._query.to_wire()
            self._tries -= 1
            self._detach()
            self._next_try()
            return
        self._try_failed(dns.rcode.to_text(rcode), hard=rcode in _HARD_RCODES)

    def _read_answer(self, message: dns.message.Message, rcode: int) -> None:
        name = self._query.question[0].name
        rdtype = dns.rdatatype.RdataType.make(self.rdtype)
        answer = message.answer
        ttl = float("inf")
        for _ in range(MAX_CNAME_CHAIN + 1):
            rrset = message.get_rrset(answer, name, dns.rdataclass.IN, rdtype)
            if rrset is not None and len(rrset):
                self.status = ANSWER
                self.addresses = tuple(dict.fromkeys((rdata.to_text(), 0) for rdata in rrset))
                self.ttl = min(ttl, rrset.ttl)
                return
            alias = message.get_rrset(answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
            if alias is None or not len(alias):
                break
            ttl = min(ttl, alias.ttl)
            target: dns.name.Name = alias[0].target
            name = target
        self.status = NXDOMAIN if rcode == dns.rcode.NXDOMAIN else NODATA
        self.ttl = None
        for rrset in message.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                minimum: int = rrset[0].minimum
                self.ttl = float(min(rrset.ttl, minimum))
                break

    def _finish(self) -> None:
        self.done = True
        self.hard_failure = self.status == FAILED and self._hard > 0 and self._soft == 0
        self._on_done(self)
