"""Host names and address literals: what callers pass, turned into what the resolver works with.

Two questions are answered here, without any network and without dnspython (importing it costs
about 120 ms, so it is loaded only when a query actually goes out):

* Is this host an IP address literal? ``parse_ip_literal`` is strict on purpose: IPv4 must be
  dotted-quad (``inet_pton``), so the legacy ``inet_aton`` spellings that ``getaddrinfo`` accepts
  (``127.1``, ``0x7f.0.0.1``, ``2130706433``) are *not* literals. Those spellings are a known way
  around address-based access checks; here they are looked up as names and fail.
  IPv6 may come in brackets (``[::1]``, as in URLs) and with a zone (``fe80::1%eth0``).
* Which ASCII DNS name is this host? ``to_dns_name`` decodes bytes, IDNA-encodes non-ASCII names
  (the standard library's IDNA 2003 codec, as thor 0.17 used), lower-cases, and checks the
  syntax (labels of 1-63 letters, digits, ``-`` or ``_``; at most 253 characters), raising
  ``socket.gaierror`` rather than any other exception for a bad name.
"""

from __future__ import annotations

import functools
import socket

__all__ = ["eai_error", "parse_ip_literal", "to_dns_name"]

# Characters a host name may hold once IDNA-encoded: letters, digits, hyphen, and the underscore
# (not a host-name character per RFC 952, but used in real names such as SRV-style labels).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_MAX_SCOPE_ID = 0xFFFFFFFF  # sin6_scope_id is 32 bits

_EAI_MESSAGES = {
    socket.EAI_NONAME: "Name or service not known",
    socket.EAI_AGAIN: "Temporary failure in name resolution",
    socket.EAI_FAIL: "Non-recoverable failure in name resolution",
    socket.EAI_SOCKTYPE: "ai_socktype not supported",
    socket.EAI_SERVICE: "Servname not supported for ai_socktype",
}
EAI_NODATA: int = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
_EAI_MESSAGES.setdefault(EAI_NODATA, "No address associated with hostname")


def eai_error(code: int, detail: str) -> socket.gaierror:
    """A ``socket.gaierror(code, message)`` whose message is the C library's text plus ``detail``.

    Callers should test ``exc.errno`` (``socket.EAI_NONAME``...), never the message.
    """
    text = _EAI_MESSAGES.get(code, "Name resolution failed")
    return socket.gaierror(code, f"{text}: {detail}" if detail else text)


@functools.lru_cache(maxsize=1024)
def parse_ip_literal(host: str | bytes) -> tuple[socket.AddressFamily, str, int] | None:
    """Recognise an IP address literal.

    Args:
        host: ``"192.0.2.1"``, ``"2001:db8::1"``, ``"[::1]"``, ``"fe80::1%eth0"``; bytes or str.

    Returns:
        ``(family, address, scope_id)`` with the address in its canonical text form (IPv6
        compressed, lower case, without brackets or zone), or None when ``host`` is not a
        literal (a name, or something invalid). A zone that names no interface makes the host
        not a literal.
    """
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not host:
        return None
    if host[0] == "[":
        if host[-1] != "]":
            return None
        host = host[1:-1]
    elif ":" not in host:
        try:
            packed = socket.inet_pton(socket.AF_INET, host)
        except (OSError, ValueError):
            return None
        return socket.AF_INET, socket.inet_ntop(socket.AF_INET, packed), 0
    address, _, zone = host.partition("%")
    try:
        packed = socket.inet_pton(socket.AF_INET6, address)
    except (OSError, ValueError):
        return None
    scope_id = 0
    if zone:
        if zone.isascii() and zone.isdigit():  # (str.isdigit() takes "²" and other scripts')
            if len(zone) > 10 or int(zone) > _MAX_SCOPE_ID:
                return None
            scope_id = int(zone)
        else:
            try:
                scope_id = socket.if_nametoindex(zone)
            except (OSError, ValueError):
                return None
    return socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, packed), scope_id


def to_dns_name(host: str | bytes) -> tuple[str, bool]:
    """The ASCII, lower-case DNS name of ``host``.

    Args:
        host: a host name; bytes are decoded as ASCII, else UTF-8, and non-ASCII names are
            IDNA-encoded (``"bücher.example"`` becomes ``"xn--bcher-kva.example"``).

    Returns:
        ``(name, absolute)``: the name without its trailing dot, and whether it had one (an
        absolute name is never extended with the search domains).

    Raises:
        socket.gaierror: EAI_NONAME for an empty, undecodable or syntactically invalid name.
    """
    if isinstance(host, bytes):
        try:
            text = host.decode("ascii")
        except UnicodeDecodeError:
            try:
                text = host.decode("utf-8")
            except UnicodeDecodeError:
                raise eai_error(socket.EAI_NONAME, f"{host!r} is not ASCII or UTF-8") from None
    else:
        text = host
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise eai_error(
                socket.EAI_NONAME, f"{text!r} is not a valid IDNA name ({exc})"
            ) from None
    name = text.lower()
    absolute = name.endswith(".")
    if absolute:
        name = name[:-1]
    if not name or len(name) > 253 or not _NAME_CHARS.issuperset(name):
        raise eai_error(socket.EAI_NONAME, f"{text!r} is not a valid host name")
    for label in name.split("."):
        if not 0 < len(label) <= 63:
            raise eai_error(socket.EAI_NONAME, f"{text!r} is not a valid host name")
    return name, absolute
