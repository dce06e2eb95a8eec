"""thor.dns: resolve host names on the thor loop, without threads.

    import socket
    import thor.dns
    import thor.loop

    def resolved(result: thor.dns.DnsResultList | Exception) -> None:
        print(result)
        thor.loop.stop()

    thor.dns.lookup(thor.loop._loop, b"localhost", 80, socket.SOCK_STREAM, resolved)
    thor.loop.run()

``lookup`` answers IP literals directly, then names from the hosts file, then (for any other
name) asks the nameservers of /etc/resolv.conf over UDP on the loop itself (TCP when an answer
is truncated), with the search domains, timeouts and retries configured there, A and AAAA in
parallel, and a small cache that respects the records' TTLs. The callback gets a list of
getaddrinfo-shaped tuples (IPv6 and IPv4 interleaved, IPv6 first) or a ``socket.gaierror``;
it is always called later, from the loop, in the context of the caller of ``lookup``.

A ``Resolver`` holds one configuration (nameservers, search domains, timeouts, hosts file,
cache); ``set_default_resolver`` replaces the one ``lookup`` uses. dnspython encodes and
decodes the DNS messages; nothing else of it (no resolver, no network code) is used, and it is
imported only when a query is actually sent.

Modules: ``_resolver`` (lookup order, candidates, the default resolver), ``_query`` (one
question to the nameservers over UDP/TCP), ``_cache``, ``_hosts``, ``_resolvconf``, ``_names``
(IP literals, IDNA and name syntax), ``_types`` (the result aliases).
"""

from ._cache import DEFAULT_CACHE_SIZE, DnsCache
from ._hosts import HostsFile, parse_hosts
from ._names import parse_ip_literal, to_dns_name
from ._resolvconf import ResolvConf, parse_resolv_conf, read_resolv_conf
from ._resolver import Resolver, get_default_resolver, lookup, set_default_resolver
from ._types import Address, DnsCallback, DnsResult, DnsResultList

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "Address",
    "DnsCache",
    "DnsCallback",
    "DnsResult",
    "DnsResultList",
    "HostsFile",
    "ResolvConf",
    "Resolver",
    "get_default_resolver",
    "lookup",
    "parse_hosts",
    "parse_ip_literal",
    "parse_resolv_conf",
    "read_resolv_conf",
    "set_default_resolver",
    "to_dns_name",
]
