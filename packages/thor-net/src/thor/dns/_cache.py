"""A small cache of DNS answers that respects their time to live.

Theory of operation
-------------------
One entry per question ``(name, record type)``: the addresses of a positive answer, or the fact
that the name does not exist (NXDOMAIN) or has no record of that type (NODATA). An entry expires
at ``now + ttl`` on the cache's clock (monotonic seconds, injectable for tests):

* a positive answer lives for the smallest TTL of the records used to build it (the address
  records and every CNAME on the way to them), at most ``max_ttl``;
* a negative answer lives for the TTL RFC 2308 §5 gives it: the smaller of the SOA record's own
  TTL and its MINIMUM field, from the answer's authority section; ``negative_ttl`` when the
  server sent no SOA; at most ``max_negative_ttl``.

A TTL of 0 means "do not cache". Failures (timeouts, SERVFAIL) are never cached: the next
lookup asks again. The cache is bounded: past ``max_entries`` the least recently used entry is
dropped (an ``OrderedDict`` kept in use order), so a client resolving many names cannot grow it
without limit. Expired entries are dropped when they are looked up or pushed out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = [
    "ANSWER",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_NEGATIVE_TTL",
    "DEFAULT_MAX_TTL",
    "DEFAULT_NEGATIVE_TTL",
    "NODATA",
    "NXDOMAIN",
    "CachedAnswer",
    "DnsCache",
]

# What an answer says about a name and record type.
ANSWER = 0  # addresses
NODATA = 1  # the name exists, without records of this type
NXDOMAIN = 2  # the name does not exist

DEFAULT_CACHE_SIZE = 512  # entries (one per name and record type)
DEFAULT_MAX_TTL = 86400.0  # seconds: a day, whatever the record says
DEFAULT_NEGATIVE_TTL = 5.0  # seconds, for a negative answer that came without an SOA record
DEFAULT_MAX_NEGATIVE_TTL = 3600.0  # seconds (RFC 2308 §5 suggests one to three hours at most)

# (status, addresses as (address, scope_id)), as the cache stores and returns it
CachedAnswer = tuple[int, tuple[tuple[str, int], ...]]


class DnsCache:
    """Answers by ``(name, record type)`` until their TTL runs out; least recently used first out.

    Args:
        max_entries: how many answers are kept (0 turns caching off).
        clock: monotonic seconds; ``time.monotonic`` by default.
        max_ttl: cap in seconds on how long a positive answer is kept.
        negative_ttl: seconds a negative answer without an SOA record is kept.
        max_negative_ttl: cap in seconds on how long a negative answer is kept.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] | None = None,
        *,
        max_ttl: float = DEFAULT_MAX_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        max_negative_ttl: float = DEFAULT_MAX_NEGATIVE_TTL,
    ) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, not {max_entries!r}")
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.max_negative_ttl = max_negative_ttl
        self._clock = clock or time.monotonic
        self._entries: OrderedDict[tuple[str, int], tuple[float, CachedAnswer]] = OrderedDict()

    def get(self, name: str, rdtype: int) -> CachedAnswer | None:
        """The unexpired answer for ``(name, rdtype)``, or None."""
        key = (name, rdtype)
        item = self._entries.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item[1]

    def put(
        self,
        name: str,
        rdtype: int,
        status: int,
        addresses: tuple[tuple[str, int], ...],
        ttl: float | None,
    ) -> None:
        """Store an answer.

        Args:
            name: the question's name (lower case, no trailing dot).
            rdtype: the question's record type (1 for A, 28 for AAAA).
            status: ANSWER, NODATA or NXDOMAIN.
            addresses: for ANSWER, the addresses; empty otherwise.
            ttl: seconds; for a negative answer, None when the server sent no SOA record.
        """
        if status == ANSWER:
            keep = min(ttl or 0.0, self.max_ttl)
        else:
            keep = min(self.negative_ttl if ttl is None else ttl, self.max_negative_ttl)
        if keep <= 0 or self.max_entries == 0:
            return
        key = (name, rdtype)
        entries = self._entries
        entries[key] = (self._clock() + keep, (status, addresses))
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
