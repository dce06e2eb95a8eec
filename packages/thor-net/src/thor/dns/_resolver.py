"""Resolver: host names to addresses on the loop, without threads; the default resolver.

Theory of operation
-------------------
``Resolver.lookup(loop, host, port, socktype, callback)`` answers in this order:

1. an IP literal (``"192.0.2.1"``, ``"::1"``, ``"[::1]"``, ``"fe80::1%eth0"``) is its own answer,
   with the socket type asked for (thor 0.17 always said SOCK_STREAM);
2. the hosts file: a name listed there is answered from it alone;
3. ``localhost`` and names under ``.localhost`` are the loopback addresses (RFC 6761 §6.3), so
   they resolve even without a hosts file or any nameserver;
4. the DNS: the name is tried as is and with each search domain, in the order the ``ndots``
   rule gives (a name with at least ``ndots`` dots is tried as is first; an absolute name, with
   a trailing dot, only as is). For each candidate the A and AAAA questions are asked in
   parallel, each first of the cache, else of the nameservers (``_query.DnsQuery``). A
   candidate with any address ends the lookup; one that does not exist, or has no address,
   passes on to the next; when no nameserver answered at all (every try timed out or failed),
   the lookup stops there rather than trying the next candidates on the same dead servers.

Identical questions in flight on the same loop are asked once: a second lookup of a name being
resolved waits for the same answer (an HTTP client opening fifty connections to one host sends
two queries, not a hundred).

Results are getaddrinfo-shaped ``(family, socktype, proto, canonname, sockaddr)`` tuples, IPv6
and IPv4 interleaved with IPv6 first (v6, v4, v6, v4..., then the rest of the longer list), as
thor 0.17 ordered them; ``proto`` is the one getaddrinfo gives (6 for TCP, 17 for UDP) and
``canonname`` is empty. Failures are ``socket.gaierror`` with the C library's codes: EAI_NONAME
(no such name), EAI_NODATA (the name exists, without addresses; EAI_NONAME where the platform
has no EAI_NODATA), EAI_AGAIN (timeouts, SERVFAIL: try again later), EAI_FAIL (every server
refused, or no nameserver is configured), EAI_SERVICE (bad port), EAI_SOCKTYPE (bad socket
type).

The callback is called exactly once, always from the loop (``loop.schedule``; never before
``lookup`` returns, even for a literal or a cached name), on the loop's thread, in the
``contextvars`` context that was current when ``lookup`` was called. ``lookup`` itself must be
called on the loop's thread (use ``loop.run_in_loop`` from others). Stopping the loop cancels
the queries in flight on it, closes their sockets, and drops their callbacks, as the loop drops
every other scheduled callback.
"""

from __future__ import annotations

import operator
import os
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from contextvars import Context, copy_context
from functools import partial
from typing import TYPE_CHECKING

from ._cache import ANSWER, DEFAULT_CACHE_SIZE, NXDOMAIN, DnsCache
from ._hosts import HostsEntry, HostsFile
from ._names import EAI_NODATA, eai_error, parse_ip_literal, to_dns_name
from ._resolvconf import CHECK_INTERVAL, ResolvConf, file_signature, read_resolv_conf
from ._types import DnsCallback, DnsResult, DnsResultList

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from ._query import DnsQuery

__all__ = ["Resolver", "get_default_resolver", "lookup", "set_default_resolver"]

_A = 1  # dns.rdatatype.A, without importing dnspython
_AAAA = 28  # dns.rdatatype.AAAA
_FAILED = 3  # _query.FAILED
_PROTOCOLS = {socket.SOCK_STREAM: socket.IPPROTO_TCP, socket.SOCK_DGRAM: socket.IPPROTO_UDP}
_LOOPBACK: HostsEntry = ((("::1", 0),), (("127.0.0.1", 0),))

# What a lookup learns about one question: (status, addresses, some server answered,
# every server refused, what went wrong).
_Outcome = tuple[int, tuple[tuple[str, int], ...], bool, bool, str]


def _call_in(context: Context, callback: DnsCallback, result: DnsResultList | Exception) -> None:
    context.run(callback, result)


_KINDS = {int(kind): kind for kind in socket.SocketKind}


def _socket_kind(socktype: int) -> socket.SocketKind:
    kind = _KINDS.get(socktype)
    if kind is None:
        raise eai_error(socket.EAI_SOCKTYPE, f"socket type {socktype!r}")
    return kind


def _valid_port(port: int) -> bool:
    try:
        return 0 <= operator.index(port) <= 65535  # a str or float port is refused
    except TypeError:
        return False


def _results(entry: HostsEntry, port: int, kind: socket.SocketKind) -> DnsResultList:
    proto = _PROTOCOLS.get(kind, 0)
    v6: list[DnsResult] = [
        (socket.AF_INET6, kind, proto, "", (address, port, 0, scope_id))
        for address, scope_id in entry[0]
    ]
    v4: list[DnsResult] = [
        (socket.AF_INET, kind, proto, "", (address, port)) for address, _ in entry[1]
    ]
    results: DnsResultList = []
    for index in range(max(len(v6), len(v4))):
        if index < len(v6):
            results.append(v6[index])
        if index < len(v4):
            results.append(v4[index])
    return results


def _nameserver(server: str | tuple[str, int]) -> tuple[str, int]:
    address, port = (server, 53) if isinstance(server, str) else server
    literal = parse_ip_literal(address)
    if literal is None or type(port) is not int or not 0 < port < 65536:
        raise ValueError(f"a nameserver must be an IP address and port, not {server!r}")
    _, host, scope_id = literal
    return (f"{host}%{scope_id}" if scope_id else host), port


def _search_domain(domain: str) -> str:
    try:
        name, _ = to_dns_name(domain)
    except OSError:
        raise ValueError(f"a search domain must be a valid DNS name, not {domain!r}") from None
    return name


class _Flight:
    """A question in flight on one loop, and the lookups waiting for its answer."""

    __slots__ = ("query", "waiters")

    def __init__(self, query: DnsQuery) -> None:
        self.query = query
        self.waiters: list[_Lookup] = []


class Resolver:
    """Resolves host names on a thor loop: hosts file, then DNS over UDP (and TCP), cached.

    Settings not given are read from ``resolv_conf_path`` (see ``read_resolv_conf``); without
    that file, the C library's defaults apply (the nameserver on 127.0.0.1, no search domain,
    ndots 1, timeout 5 s, 2 attempts). resolv.conf is re-read when it changes (checked at most
    every 5 s); settings given here always win over it. The attributes of the same names
    (``nameservers``, ``search``, ``ndots``, ``timeout``, ``attempts``, ``rotate``) hold the
    settings in force; assigning them works until resolv.conf next changes: give settings to
    the constructor to keep them.

    Args:
        nameservers: ``(address, port)`` pairs, or addresses (port 53); an empty list means no
            DNS at all (only literals, the hosts file and localhost resolve).
        search: search domains (valid DNS names; trailing dots and case are ignored).
        ndots: the dots a name needs to be tried as is before the search domains.
        timeout: seconds to wait for one nameserver before asking the next (and again for a
            TCP retry of a truncated answer). A lookup fails with EAI_AGAIN after
            ``attempts * len(nameservers)`` unanswered tries.
        attempts: rounds over the nameserver list.
        rotate: start each query at the next nameserver, spreading the load.
        hosts_path: the hosts file (None: none); re-read when it changes.
        resolv_conf_path: the resolv.conf file (None: do not read one).
        cache_size: answers kept (one per name and record type; 0: no cache).
        clock: monotonic seconds for the cache and the hosts file checks (tests inject one).

    Raises:
        ValueError: a nameserver is not an IP address and port (an int), a search domain is
            not a valid DNS name, or a number is out of range.
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str | tuple[str, int]] | None = None,
        search: Sequence[str] | None = None,
        ndots: int | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        rotate: bool | None = None,
        hosts_path: str | os.PathLike[str] | None = "/etc/hosts",
        resolv_conf_path: str | os.PathLike[str] | None = "/etc/resolv.conf",
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
        if attempts is not None and attempts < 1:
            raise ValueError(f"attempts must be >= 1, not {attempts!r}")
        if ndots is not None and ndots < 0:
            raise ValueError(f"ndots must be >= 0, not {ndots!r}")
        self._given_nameservers = (
            None if nameservers is None else [_nameserver(server) for server in nameservers]
        )
        self._given_search = None if search is None else [_search_domain(d) for d in search]
        self._given = (ndots, timeout, attempts, rotate)
        self._resolv_conf_path = resolv_conf_path
        self._clock = clock or time.monotonic
        self.cache = DnsCache(cache_size, self._clock)
        self.hosts = HostsFile(hosts_path, self._clock) if hosts_path is not None else None
        self._flights: dict[tuple[int, str, int], _Flight] = {}
        self._watched_loops: weakref.WeakSet[LoopBase] = weakref.WeakSet()
        self._rotation = 0
        self._conf_signature: tuple[int, int, int] | None = None
        self._next_conf_check = 0.0
        self.nameservers: list[tuple[str, int]] = []
        self.search: list[str] = []
        self.ndots = 1
        self.timeout = 5.0
        self.attempts = 2
        self.rotate = False
        self._configure()

    def _configure(self) -> None:
        path = self._resolv_conf_path
        self._conf_signature = file_signature(path) if path is not None else None
        self._next_conf_check = self._clock() + CHECK_INTERVAL
        conf = read_resolv_conf(path) if path is not None else ResolvConf()
        ndots, timeout, attempts, rotate = self._given
        self.nameservers = (
            list(conf.nameservers)
            if self._given_nameservers is None
            else list(self._given_nameservers)
        )
        self.search = list(conf.search) if self._given_search is None else list(self._given_search)
        self.ndots = conf.ndots if ndots is None else ndots
        self.timeout = conf.timeout if timeout is None else timeout
        self.attempts = conf.attempts if attempts is None else attempts
        self.rotate = conf.rotate if rotate is None else rotate

    def reload(self) -> None:
        """Re-read resolv.conf and the hosts file (settings given to the constructor stay)."""
        self._configure()
        if self.hosts is not None:
            self.hosts.reload()

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self.cache.clear()

    # -- lookup -----------------------------------------------------------------------------------

    def lookup(
        self,
        loop: LoopBase,
        host: bytes | str,
        port: int,
        socktype: int,
        callback: DnsCallback,
    ) -> None:
        """Resolve ``host`` on ``loop``; ``callback`` gets the results or a ``socket.gaierror``.

        See the module docstring for the order of sources, the shape and order of results, the
        error codes, and the guarantees about when and where the callback runs.

        Args:
            loop: the loop to resolve on (call from its thread).
            host: a host name or IP literal (bytes as in thor 0.17, or str); non-ASCII names are
                IDNA-encoded.
            port: put in every result's socket address (0 to 65535).
            socktype: ``socket.SOCK_STREAM``, ``socket.SOCK_DGRAM``...; put in every result.
            callback: ``callback(results)`` with a non-empty ``DnsResultList``, or
                ``callback(exc)`` with a ``socket.gaierror``.
        """
        try:
            kind = _socket_kind(socktype)
            if not _valid_port(port):
                raise eai_error(socket.EAI_SERVICE, f"port {port!r}")
            literal = parse_ip_literal(host)
            if literal is not None:
                family, address, scope_id = literal
                entry: HostsEntry = (
                    (((address, scope_id),), ())
                    if family == socket.AF_INET6
                    else ((), ((address, 0),))
                )
                loop.schedule(0, callback, _results(entry, port, kind))
                return
            name, absolute = to_dns_name(host)
            static = self._static(name)
            if static is not None:
                loop.schedule(0, callback, _results(static, port, kind))
                return
        except socket.gaierror as exc:
            loop.schedule(0, callback, exc)
            return
        path = self._resolv_conf_path
        if path is not None and self._clock() >= self._next_conf_check:
            self._next_conf_check = self._clock() + CHECK_INTERVAL
            if file_signature(path) != self._conf_signature:
                self._configure()
        _Lookup(
            self, loop, name, absolute=absolute, port=port, kind=kind, callback=callback
        ).advance()

    def _static(self, name: str) -> HostsEntry | None:
        if self.hosts is not None:
            entry = self.hosts.lookup(name)
            if entry is not None and (entry[0] or entry[1]):
                return entry
        if name == "localhost" or name.endswith(".localhost"):
            return _LOOPBACK
        return None

    def _candidates(self, name: str, absolute: bool) -> list[str]:
        if absolute or not self.search:
            return [name]
        searched = [f"{name}.{domain}" for domain in self.search if len(name) + len(domain) < 253]
        names = [name, *searched] if name.count(".") >= self.ndots else [*searched, name]
        return list(dict.fromkeys(names))

    # -- questions in flight --------------------------------------------------------------------

    def _ask(self, loop: LoopBase, name: str, rdtype: int, waiter: _Lookup) -> None:
        key = (id(loop), name, rdtype)
        flight = self._flights.get(key)
        if flight is None:
            # dnspython is imported only now: resolving without the network never pays for it
            from ._query import DnsQuery  # noqa: PLC0415

            servers = self.nameservers
            first = 0
            if self.rotate:
                first = self._rotation % len(servers)
                self._rotation += 1
            query = DnsQuery(
                loop,
                name,
                rdtype,
                servers=servers,
                timeout=self.timeout,
                attempts=self.attempts,
                first=first,
                on_done=partial(self._landed, key),
            )
            flight = self._flights[key] = _Flight(query)
            if loop not in self._watched_loops:
                self._watched_loops.add(loop)
                loop.on("stop", partial(self._loop_stopped, id(loop)))
            query.start()
        flight.waiters.append(waiter)

    def _landed(self, key: tuple[int, str, int], query: DnsQuery) -> None:
        flight = self._flights.get(key)
        if flight is None or flight.query is not query:
            return
        del self._flights[key]
        if query.status != _FAILED:
            self.cache.put(query.name, query.rdtype, query.status, query.addresses, query.ttl)
        outcome: _Outcome = (
            query.status,
            query.addresses,
            query.answered,
            query.hard_failure,
            "; ".join(query.detail[-3:]),
        )
        failure: Exception | None = None
        for waiter in flight.waiters:
            try:
                waiter.answered(query.rdtype, outcome)
            except Exception as exc:  # a bug in thor: the caller must still hear back, once
                waiter.finish(eai_error(socket.EAI_FAIL, f"internal error: {exc!r}"))
                if failure is None:
                    failure = exc
        if failure is not None:
            raise failure

    def _loop_stopped(self, loop_id: int) -> None:
        for key in [key for key in self._flights if key[0] == loop_id]:
            self._flights.pop(key).query.cancel()


class _Lookup:
    """One ``lookup`` going through its candidate names; delivers its result once."""

    __slots__ = (
        "answers",
        "callback",
        "candidates",
        "context",
        "done",
        "failure",
        "host",
        "index",
        "kind",
        "loop",
        "nodata",
        "port",
        "resolver",
        "waiting",
    )

    def __init__(
        self,
        resolver: Resolver,
        loop: LoopBase,
        name: str,
        *,
        absolute: bool,
        port: int,
        kind: socket.SocketKind,
        callback: DnsCallback,
    ) -> None:
        self.resolver = resolver
        self.loop = loop
        self.host = name
        self.port = port
        self.kind = kind
        self.callback = callback
        self.context = copy_context()
        self.candidates = resolver._candidates(name, absolute)
        self.index = 0
        self.answers: dict[int, _Outcome] = {}
        self.waiting = 0
        self.done = False
        self.failure: socket.gaierror | None = None  # the first temporary or hard failure
        self.nodata = False

    def advance(self) -> None:
        """Go on through the candidates: from the cache while it knows, else ask and wait."""
        resolver = self.resolver
        cache = resolver.cache
        answers = self.answers
        while self.index < len(self.candidates):
            name = self.candidates[self.index]
            missing = []
            for rdtype in (_AAAA, _A):
                if rdtype not in answers:
                    cached = cache.get(name, rdtype)
                    if cached is None:
                        missing.append(rdtype)
                    else:
                        answers[rdtype] = (cached[0], cached[1], True, False, "")
            if missing:
                if not resolver.nameservers:
                    self.finish(eai_error(socket.EAI_FAIL, f"{self.host}: no nameserver is set"))
                    return
                self.waiting = len(missing)
                for rdtype in missing:
                    resolver._ask(self.loop, name, rdtype, self)
                return
            if self._judge(name):
                return
            self.index += 1
            answers.clear()
        if self.failure is not None:
            self.finish(self.failure)
        elif self.nodata:
            self.finish(eai_error(EAI_NODATA, self.host))
        else:
            self.finish(eai_error(socket.EAI_NONAME, self.host))

    def answered(self, rdtype: int, outcome: _Outcome) -> None:
        """A question this lookup waits for has its answer."""
        if self.done:
            return
        self.answers[rdtype] = outcome
        self.waiting -= 1
        if self.waiting == 0:
            self.advance()

    def _judge(self, name: str) -> bool:
        """Whether the answers for ``name`` end the lookup (having delivered its result)."""
        v6, v4 = self.answers[_AAAA], self.answers[_A]
        if v6[0] == ANSWER or v4[0] == ANSWER:
            entry = (v6[1] if v6[0] == ANSWER else (), v4[1] if v4[0] == ANSWER else ())
            self.finish(_results(entry, self.port, self.kind))
            return True
        if v6[0] == NXDOMAIN or v4[0] == NXDOMAIN:
            return False
        failed = [outcome for outcome in (v6, v4) if outcome[0] == _FAILED]
        for outcome in failed:
            if not outcome[2]:  # no server answered at all: stop asking them
                self.finish(eai_error(socket.EAI_AGAIN, f"{name}: {outcome[4]}"))
                return True
        for outcome in failed:  # answered, but SERVFAIL or refused: the next name may do better
            if self.failure is None or self.failure.errno == socket.EAI_FAIL:
                code = socket.EAI_FAIL if outcome[3] else socket.EAI_AGAIN
                self.failure = eai_error(code, f"{name}: {outcome[4]}")
        if not failed:
            self.nodata = True  # both NODATA: the name exists, without addresses
        return False

    def finish(self, result: DnsResultList | Exception) -> None:
        """Deliver the result, once, from the loop and in the caller's context."""
        if self.done:
            return
        self.done = True
        self.loop.schedule(0, _call_in, self.context, self.callback, result)


_default_resolver: Resolver | None = None


def get_default_resolver() -> Resolver:
    """The resolver ``thor.dns.lookup`` uses: made on first use from /etc/resolv.conf and
    /etc/hosts, unless ``set_default_resolver`` installed another."""
    global _default_resolver
    if _default_resolver is None:
        _default_resolver = Resolver()
    return _default_resolver


def set_default_resolver(resolver: Resolver | None) -> None:
    """Make ``resolver`` the one ``thor.dns.lookup`` uses (None: back to a lazily made one)."""
    global _default_resolver
    _default_resolver = resolver


def lookup(
    loop: LoopBase,
    host: bytes | str,
    port: int,
    socktype: int,
    callback: DnsCallback,
) -> None:
    """Resolve ``host`` with the default resolver; see ``Resolver.lookup``.

    ``callback`` is called once, from the loop, with a list of getaddrinfo-shaped
    ``(family, socktype, proto, canonname, sockaddr)`` tuples (IPv6 and IPv4 interleaved, IPv6
    first) or with a ``socket.gaierror``.
    """
    get_default_resolver().lookup(loop, host, port, socktype, callback)
