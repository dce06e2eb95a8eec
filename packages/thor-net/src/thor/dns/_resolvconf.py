"""resolv.conf: which nameservers to ask, which search domains to try, and the query options.

The syntax and defaults are those of the C library's stub resolver (resolv.conf(5)):

* ``nameserver ADDRESS``: up to ``MAX_NAMESERVERS`` (3) are used, in order. ``ADDRESS`` is an IPv4
  or IPv6 literal (a zone such as ``fe80::1%eth0`` is allowed); the BSD form ``[ADDRESS]:PORT``
  selects another port. With none, the local machine (``127.0.0.1``) is asked.
* ``search DOMAIN...`` and ``domain DOMAIN``: the last of them wins. With neither, the domain
  part of the machine's host name, if it has one. A domain that is not a valid DNS name
  (``to_dns_name``: an empty label, a label over 63 characters, a backslash...) or is the root
  (``.``) is left out, so every name the search list makes can be asked.
* ``options``: ``ndots:N`` (default 1, at most 15), ``timeout:N`` (seconds per try, default 5,
  1 to 30), ``attempts:N`` (rounds over the nameservers, default 2, 1 to 5) and ``rotate``;
  other options, and numbers that are not ASCII digits, are ignored.
* The environment variables ``LOCALDOMAIN`` (replaces the search list) and ``RES_OPTIONS``
  (options applied after the file's) are honoured, as the C library does.

A ``Resolver`` re-reads the file when it changes (checked at most every ``CHECK_INTERVAL``
seconds, when a lookup needs the DNS), as the C library has done since glibc 2.26.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ._names import parse_ip_literal, to_dns_name

__all__ = [
    "CHECK_INTERVAL",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_NDOTS",
    "DEFAULT_TIMEOUT",
    "MAX_NAMESERVERS",
    "ResolvConf",
    "file_signature",
    "parse_resolv_conf",
    "read_resolv_conf",
]

DEFAULT_NDOTS = 1
DEFAULT_TIMEOUT = 5.0
DEFAULT_ATTEMPTS = 2
MAX_NAMESERVERS = 3
CHECK_INTERVAL = 5.0  # seconds between checks of the file for changes (by a Resolver)
_MAX_NDOTS = 15
_MAX_TIMEOUT = 30
_MAX_ATTEMPTS = 5
_MAX_SEARCH = 32


@dataclass(frozen=True)
class ResolvConf:
    """The resolver settings read from a resolv.conf file.

    Attributes:
        nameservers: ``(address, port)`` pairs, in the order to ask them.
        search: the search domains (lower case, no trailing dot).
        ndots: a name with at least this many dots is first tried as it is, before the search
            domains; one with fewer is tried after them.
        timeout: seconds to wait for one nameserver's answer before asking the next.
        attempts: how many times the whole list of nameservers is tried.
        rotate: spread queries over the nameservers (start each query at the next one).
    """

    nameservers: tuple[tuple[str, int], ...] = (("127.0.0.1", 53),)
    search: tuple[str, ...] = ()
    ndots: int = DEFAULT_NDOTS
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    rotate: bool = False


def _clean_domain(domain: str) -> str | None:
    """``domain`` as a search domain (lower case, no trailing dot), or None when it is the root
    or not a valid DNS name."""
    try:
        name, _ = to_dns_name(domain)
    except OSError:
        return None
    return name


def search_list(domains: Iterable[str]) -> tuple[str, ...]:
    """The valid search domains among ``domains`` (see ``_clean_domain``), at most 32."""
    cleaned = (_clean_domain(domain) for domain in domains)
    return tuple(domain for domain in cleaned if domain)[:_MAX_SEARCH]


def _ascii_number(text: str, max_digits: int) -> int | None:
    """``text`` as a number when it is 1 to ``max_digits`` ASCII digits (``str.isdigit()`` also
    takes ``"²"`` and other scripts' digits, which ``int()`` refuses)."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def _parse_nameserver(text: str) -> tuple[str, int] | None:
    port = 53
    if text.startswith("[") and "]:" in text:
        text, _, port_text = text[1:].partition("]:")
        number = _ascii_number(port_text, 5)
        if number is None or not 0 < number < 65536:
            return None
        port = number
    literal = parse_ip_literal(text)
    if literal is None:
        return None
    _, address, scope_id = literal
    if scope_id:
        address = f"{address}%{scope_id}"
    return address, port


def _apply_options(conf: ResolvConf, words: list[str]) -> ResolvConf:
    ndots, timeout, attempts, rotate = conf.ndots, conf.timeout, conf.attempts, conf.rotate
    for word in words:
        key, _, value = word.partition(":")
        if key == "rotate":
            rotate = True
        elif (number := _ascii_number(value, 6)) is not None:
            if key == "ndots":
                ndots = min(number, _MAX_NDOTS)
            elif key == "timeout":
                timeout = float(max(1, min(number, _MAX_TIMEOUT)))
            elif key == "attempts":
                attempts = max(1, min(number, _MAX_ATTEMPTS))
    return replace(conf, ndots=ndots, timeout=timeout, attempts=attempts, rotate=rotate)


def parse_resolv_conf(text: str, default_domain: str | None = None) -> ResolvConf:
    """Parse resolv.conf text (see the module docstring for what is understood).

    Args:
        text: the file's contents.
        default_domain: the search domain when the text sets none (``read_resolv_conf`` passes
            the domain of the machine's host name).
    """
    nameservers: list[tuple[str, int]] = []
    search: tuple[str, ...] | None = None
    conf = ResolvConf()
    for line in text.splitlines():
        words = line.split()
        for index, word in enumerate(words):
            if word[0] in "#;":  # a comment runs to the end of the line
                del words[index:]
                break
        if not words:
            continue
        keyword, args = words[0], words[1:]
        if keyword == "nameserver" and args:
            server = _parse_nameserver(args[0])
            if server is not None and len(nameservers) < MAX_NAMESERVERS:
                nameservers.append(server)
        elif keyword == "domain" and args:
            search = search_list(args[:1])
        elif keyword == "search" and args:
            search = search_list(args)
        elif keyword == "options":
            conf = _apply_options(conf, args)
    if search is None:
        search = search_list([default_domain]) if default_domain else ()
    if nameservers:
        conf = replace(conf, nameservers=tuple(nameservers))
    return replace(conf, search=search)


def file_signature(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten: (mtime in ns, size, inode); None if missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _host_domain() -> str | None:
    hostname = socket.gethostname()
    _, dot, domain = hostname.partition(".")
    return domain if dot and domain else None


def read_resolv_conf(
    path: str | os.PathLike[str] = "/etc/resolv.conf",
    environ: Mapping[str, str] | None = None,
) -> ResolvConf:
    """Read a resolv.conf file (a missing one gives the defaults) and the environment overrides.

    Args:
        path: the file.
        environ: where ``LOCALDOMAIN`` and ``RES_OPTIONS`` are looked up (``os.environ`` by
            default; pass ``{}`` to ignore them).
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read()
    except OSError:
        text = ""
    conf = parse_resolv_conf(text, default_domain=_host_domain())
    env = os.environ if environ is None else environ
    local_domain = env.get("LOCALDOMAIN")
    if local_domain is not None:
        conf = replace(conf, search=search_list(local_domain.split()))
    res_options = env.get("RES_OPTIONS")
    if res_options:
        conf = _apply_options(conf, res_options.split())
    return conf
