"""The hosts file (``/etc/hosts``): static names, consulted before the DNS.

Theory of operation
-------------------
The file is parsed into a dict from lower-case name to two tuples of addresses, IPv6 and IPv4,
each in file order without duplicates. An IPv6 address is kept with its zone index
(``fe80::1%eth0`` gives scope id of eth0), so link-local entries work.

As with the C library's ``files`` source, a name found in the file is answered from the file
alone (both families, whatever the file holds), the search domains are not applied to it, and
malformed lines are skipped. The file is re-read when it changes: at most once per
``check_interval`` seconds a lookup ``stat``s it and re-parses it if its modification time, size
or inode changed, so edits take effect without a restart and a busy client pays one ``stat`` a
second, not one per lookup.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

from ._names import parse_ip_literal

__all__ = ["HostsEntry", "HostsFile", "parse_hosts"]

logger = logging.getLogger("thor.dns")

# (IPv6 addresses as (address, scope_id), IPv4 addresses as (address, 0))
HostsEntry = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]


def parse_hosts(text: str) -> dict[str, HostsEntry]:
    """Parse hosts-file text: ``address name [aliases...]`` per line, ``#`` comments.

    Returns:
        Lower-case name (no trailing dot) to ``(ipv6_addresses, ipv4_addresses)``, each a tuple
        of ``(address, scope_id)`` in file order.
    """
    found: dict[str, tuple[list[tuple[str, int]], list[tuple[str, int]]]] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        literal = parse_ip_literal(fields[0])
        if literal is None or fields[0].startswith("["):
            continue
        family, address, scope_id = literal
        entry = (address, scope_id)
        for raw_name in fields[1:]:
            name = raw_name.lower().rstrip(".")
            if not name:
                continue
            lists = found.setdefault(name, ([], []))
            target = lists[0] if family == socket.AF_INET6 else lists[1]
            if entry not in target:
                target.append(entry)
    return {name: (tuple(v6), tuple(v4)) for name, (v6, v4) in found.items()}


class HostsFile:
    """A hosts file, parsed on first use and re-read when it changes.

    Args:
        path: the file (``/etc/hosts``); a missing or unreadable file holds no names.
        clock: monotonic seconds (``time.monotonic`` by default).
        check_interval: at most this many seconds between checks of the file for changes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Callable[[], float] | None = None,
        check_interval: float = 1.0,
    ) -> None:
        self.path = os.fspath(path)
        self.check_interval = check_interval
        self._clock = clock or time.monotonic
        self._names: dict[str, HostsEntry] = {}
        self._signature: tuple[int, int, int] | None = None
        self._next_check = float("-inf")

    def lookup(self, name: str) -> HostsEntry | None:
        """The addresses of ``name`` (lower case, no trailing dot), or None if it is not listed."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            self._refresh()
        return self._names.get(name)

    def reload(self) -> None:
        """Re-read the file now."""
        self._signature = None
        self._next_check = self._clock() + self.check_interval
        self._refresh()

    def _refresh(self) -> None:
        try:
            info = os.stat(self.path)
        except OSError:
            self._names = {}
            self._signature = None
            return
        signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        if signature == self._signature:
            return
        try:
            with open(self.path, encoding="utf-8", errors="replace") as stream:
                text = stream.read()
        except OSError as exc:
            logger.warning("cannot read hosts file %s: %s", self.path, exc)
            self._names = {}
            self._signature = None
            return
        self._names = parse_hosts(text)
        self._signature = signature
