"""thor.http.uri: parse the absolute ``http``/``https`` URLs the client is asked to fetch.

``parse_uri(uri) -> (scheme, host, port, authority, req_target)`` or ``UrlError``.

Theory of operation
-------------------
The URL is split by hand on its delimiters (RFC 3986 §3: ``scheme "://" authority path-abempty
[ "?" query ] [ "#" fragment ]``), each part checked against a byte table in one C-level scan:
``urllib.parse`` is not used because it is lenient in ways that matter on the wire (it drops
tabs and newlines, accepts any junk after an IPv6 literal, and ``int()`` accepts ``+80``,
`` 80`` and ``8_0`` as ports). Results are cached by URL: a client fetches the same few URLs
over and over.

Decisions (thor 0.17's ``parse_uri`` left these to chance; each is tested):

- **Scheme**: ``http`` (port 80) or ``https`` (443), any case; anything else is refused. The
  ``//`` authority marker is required.
- **Bytes**: the URL is bytes (``bytes``, ``bytearray`` or ``memoryview``; a ``str`` is refused
  with UrlError rather than failing with AttributeError). No byte above 0x7F anywhere (no IDNA
  conversion: pass A-labels), no control byte, space or DEL in the scheme and authority, and
  no CR, LF or NUL anywhere (they would split or end the request line). Other odd bytes in the
  path or query (a space, a tab) are left to the exchange's ``strict_request_line`` check, which
  refuses them by default with ``OutputSyntaxError``, so a probing tool can still send them.
- **Userinfo** (``user:pass@``) is stripped from the authority (and so from the Host header),
  up to the last ``@``; thor never sends credentials taken from a URL.
- **Host**: a registered name of ASCII letters, digits, ``-``, ``.`` and ``_`` (RFC 3986
  unreserved; DNS has names with underscores), no empty label (so no trailing dot), labels of
  at most 63 bytes, at most 255 bytes in all. A name whose last label is all digits must be a
  dotted-quad IPv4 address (``999.1.1.1`` and ``127.1`` are refused, not sent to DNS; leading
  zeros are refused as ambiguous octal). An IPv6 literal is bracketed, valid for
  ``ipaddress`` (``[::ffff:1.2.3.4]`` is accepted: RFC 3986 allows it), without zone ID; the
  only thing allowed after ``]`` is ``:port``. The host returned (and used to key the
  connection pool) is lower-cased, and an IPv6 literal is returned without brackets in its
  compressed form, so ``[0:0::1]`` and ``[::1]`` share connections. The empty host is refused.
- **Port**: 1 to 5 ASCII digits with a value of 1 to 65535; an empty port (``host:``) means
  the default port, and the lone ``:`` is dropped from the authority.
- **Authority** (the Host header) is kept as written, apart from the userinfo and a lone ``:``:
  its case and an explicit default port are preserved.
- **Request target**: the path (``/`` when empty) and the query as written (``?`` included,
  even when the query is empty); the fragment is dropped.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from .error import UrlError

__all__ = ["parse_uri"]

#: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )  (RFC 3986 §3.1)
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*").fullmatch
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: bytes refused anywhere in a URL
_BAD_ANYWHERE = re.compile(rb"[\x00\r\n\x80-\xff]").search
#: bytes refused in the authority (controls, space, DEL)
_BAD_AUTHORITY = re.compile(rb"[\x00-\x20\x7f]").search
_NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._"
_MAX_HOST = 255
_MAX_LABEL = 63

Parsed = tuple[str, str, int, bytes, bytes]


def parse_uri(uri: bytes) -> Parsed:
    """Split an absolute http(s) URL into what the client needs (see the module docstring).

    Args:
        uri: the URL, as bytes.

    Returns:
        ``(scheme, host, port, authority, req_target)``: scheme ``"http"`` or ``"https"``;
        host lower-cased (an IPv6 address without brackets); the port; the authority as
        the Host header carries it; the origin-form request target.

    Raises:
        UrlError: the URL is not an absolute http(s) URL thor can fetch (``detail`` says why).
    """
    if type(uri) is not bytes:
        if not isinstance(uri, (bytes, bytearray, memoryview)):
            raise UrlError(f"URL must be bytes, not {type(uri).__name__}")
        uri = bytes(uri)
    return _parse(uri)


@lru_cache(maxsize=512)
def _parse(uri: bytes) -> Parsed:
    bad = _BAD_ANYWHERE(uri)
    if bad is not None:
        if bad.group()[0] >= 0x80:
            raise UrlError("URL has non-ASCII characters (IDNA names must be given as A-labels)")
        raise UrlError(f"URL has a forbidden character {bad.group()!r}")
    scheme_b, colon, rest = uri.partition(b":")
    if not colon or not _SCHEME(scheme_b):
        raise UrlError("URL has no scheme")
    scheme = scheme_b.decode("ascii").lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        raise UrlError(f"Unsupported URL scheme {scheme!r}")
    if not rest.startswith(b"//"):
        raise UrlError("URL has no authority ('//host')")
    rest = rest[2:]
    end = len(rest)
    for delimiter in (b"/", b"?", b"#"):
        found = rest.find(delimiter, 0, end)
        if found != -1:
            end = found
    authority = rest[:end]
    after = rest[end:]
    if _BAD_AUTHORITY(authority) is not None:
        raise UrlError("URL authority has a space or a control character")
    authority = authority.rpartition(b"@")[2]
    host, port, authority = _host_port(authority, default_port)
    path, _, _fragment = after.partition(b"#")
    if not path or path[:1] == b"?":
        path = b"/" + path
    return scheme, host, port, authority, path


def _host_port(authority: bytes, default_port: int) -> tuple[str, int, bytes]:
    """The host (normalised), port and authority (as written, minus a lone ':')."""
    if authority.startswith(b"["):
        close = authority.find(b"]")
        if close == -1:
            raise UrlError("URL IPv6 literal has no closing ']'")
        host = _ipv6(authority[1:close])
        after = authority[close + 1 :]
        if after and after[:1] != b":":
            raise UrlError(f"URL has {after!r} after the IPv6 literal")
        port_b = after[1:] if after else None
    else:
        host_b, colon, port_b_ = authority.partition(b":")
        port_b = port_b_ if colon else None
        host = _reg_name(host_b)
    if port_b is None:
        return host, default_port, authority
    if not port_b:
        return host, default_port, authority[:-1]
    if len(port_b) > 5 or not port_b.isdigit():
        raise UrlError(f"URL port {port_b.decode('ascii')!r} is not a number")
    port = int(port_b)
    if not 1 <= port <= 65535:
        raise UrlError(f"URL port {port} out of range")
    return host, port, authority


def _ipv6(literal: bytes) -> str:
    text = literal.decode("ascii")
    if not text:
        raise UrlError("URL IPv6 literal is empty")
    if "%" in text:
        raise UrlError("URL IPv6 literal has a zone ID")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise UrlError(f"URL IPv6 literal [{text}] is not valid") from None
    mapped = address.ipv4_mapped
    if mapped is not None:
        # RFC 5952 §5 mixed notation, the same on every Python (3.13 changed str() for these)
        return f"::ffff:{mapped}"
    return address.compressed


def _reg_name(host_b: bytes) -> str:
    if not host_b:
        raise UrlError("URL has an empty host")
    if len(host_b) > _MAX_HOST:
        raise UrlError(f"URL hostname longer than {_MAX_HOST} characters")
    if host_b.translate(None, _NAME_CHARS):
        raise UrlError("URL hostname has disallowed character")
    host = host_b.decode("ascii").lower()
    labels = host.split(".")
    for label in labels:
        if not label:
            raise UrlError("URL hostname has empty label")
        if len(label) > _MAX_LABEL:
            raise UrlError(f"URL hostname label longer than {_MAX_LABEL} characters")
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise UrlError(f"URL host {host!r} is neither a name nor an IPv4 address") from None
    return host
