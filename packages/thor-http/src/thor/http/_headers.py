"""Header-list helpers of the classic API, and the hop-by-hop rules (RFC 9110 §7.6.1).

Headers are lists of ``(name, value)`` bytes tuples in wire order; names are compared
case-insensitively, values are kept as received.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterable

from ._abnf import OWS

__all__ = [
    "RawHeaderListType",
    "get_header",
    "header_dict",
    "header_names",
    "hop_by_hop_hdrs",
    "idempotent_methods",
    "safe_methods",
    "strip_hop_by_hop",
]

RawHeaderListType = list[tuple[bytes, bytes]]

#: fields that describe one connection, not the message (lower case)
hop_by_hop_hdrs = [
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
    b"proxy-connection",
]
_HOP_BY_HOP = frozenset(hop_by_hop_hdrs)

idempotent_methods = [b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"]
safe_methods = [b"GET", b"HEAD", b"OPTIONS", b"TRACE"]


def header_names(headers: RawHeaderListType) -> set[bytes]:
    """The lower-cased names present in ``headers``."""
    return {name.lower() for name, _ in headers}


def header_dict(
    headers: RawHeaderListType, omit: Container[bytes] | None = None
) -> defaultdict[bytes, list[bytes]]:
    """Lower-cased names mapped to their comma-separated values (OWS stripped), in order.

    Args:
        headers: the header list.
        omit: names (lower case) to leave out; anything supporting ``in``.

    Returns:
        A ``defaultdict(list)``: a missing name gives ``[]``.
    """
    result: defaultdict[bytes, list[bytes]] = defaultdict(list)
    for name, value in headers:
        lower = name.lower()
        if omit is not None and lower in omit:
            continue
        result[lower].extend(part.strip(OWS) for part in value.split(b","))
    return result


def get_header(headers: RawHeaderListType, name: bytes) -> list[bytes]:
    """The comma-separated values of the field ``name`` (given in lower case), OWS stripped.

    Splitting on commas is wrong for fields like Set-Cookie or quoted strings; read those from
    the header list directly.
    """
    values: list[bytes] = []
    for field, value in headers:
        if field.lower() == name:
            values.extend(part.strip(OWS) for part in value.split(b","))
    return values


def connection_tokens(headers: RawHeaderListType) -> set[bytes]:
    """The lower-case tokens of every Connection field."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(part.strip(OWS).lower() for part in value.split(b","))
    tokens.discard(b"")
    return tokens


def strip_hop_by_hop(headers: RawHeaderListType, also: Iterable[bytes] = ()) -> RawHeaderListType:
    """``headers`` without hop-by-hop fields: the standard ones, those the Connection field
    names (except Content-Length, which is never hop-by-hop), and the names in ``also``."""
    drop = set(_HOP_BY_HOP)
    drop.update(name.lower() for name in also)
    drop.update(connection_tokens(headers) - {b"content-length"})
    return [(name, value) for name, value in headers if name.lower() not in drop]
