"""What an HTTP intermediary does to the messages it forwards (RFC 9110 §7.6), as pure functions.

Theory of operation
-------------------
``upstream_fields`` makes the field list of a request to forward in **one pass** over the fields
received, with a table from lower-case name to action (``_REQUEST_ACTIONS``):

- hop-by-hop fields (RFC 9110 §7.6.1: Connection, Keep-Alive, Proxy-Connection, TE, Trailer(s),
  Transfer-Encoding, Upgrade, Proxy-Authorization, Proxy-Authenticate) and the fields a Connection
  field names are dropped; the client adds its own framing (Content-Length kept as validated by
  the server's parser, else chunked) and its own Host (from the URL, RFC 9112 §3.2.2);
- ``Expect`` is dropped: the proxy's server side answers ``100-continue`` itself;
- ``Forwarded`` and ``X-Forwarded-For`` are believed only from a trusted hop (``TrustedHops``):
  from anyone else they are dropped, so a client cannot forge the chain; then the proxy appends
  its own entry for the peer it received the request from;
- ``Via`` is appended to (RFC 9110 §7.6.3), and the entries that already name the proxy's own
  pseudonym are counted: a request that keeps coming back is a forwarding loop (the caller
  stops it); ``Max-Forwards`` decremented on TRACE and OPTIONS (RFC 9110 §7.6.2; the caller
  answers locally when it is 0).

Responses need less: the server's serialiser already drops hop-by-hop fields (and those the
Connection field names) and frames the body itself; ``strip_response`` exists for hooks that
want to see the fields as they will be sent, and ``clean_trailers`` keeps framing and routing
fields out of forwarded trailers (RFC 9110 §6.5.1).

Nothing here validates bytes: the serialisers refuse CR, LF, NUL and other control bytes in
anything written, and the proxy turns that refusal into a 502.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._abnf import FIELD_NAME_CACHE, OWS, is_token, parse_decimal
from .._headers import hop_by_hop_hdrs, strip_hop_by_hop

if TYPE_CHECKING:
    from .._headers import RawHeaderListType

__all__ = [
    "TrustedHops",
    "clean_trailers",
    "forwarded_node",
    "max_forwards",
    "options_response",
    "strip_response",
    "trace_body",
    "upstream_fields",
    "via_hops",
]

# actions of upstream_fields, by lower-case field name
_KEEP = 0
_DROP = 1
_CONNECTION = 2
_HOST = 3
_FORWARDED = 4
_XFF = 5
_LENGTH = 6
_MAX_FORWARDS = 7
_UPGRADE = 8
_VIA = 9

_REQUEST_ACTIONS: dict[bytes, int] = dict.fromkeys(hop_by_hop_hdrs, _DROP)
_REQUEST_ACTIONS.update(
    {
        b"connection": _CONNECTION,
        b"host": _HOST,
        b"forwarded": _FORWARDED,
        b"x-forwarded-for": _XFF,
        b"content-length": _LENGTH,
        b"max-forwards": _MAX_FORWARDS,
        b"upgrade": _UPGRADE,
        b"expect": _DROP,
        b"via": _VIA,
    }
)
_HOP_BY_HOP = frozenset(hop_by_hop_hdrs)
#: Connection tokens that are options, not names of fields to drop
_CONNECTION_OPTIONS = frozenset((b"close", b"keep-alive", b"upgrade", b"content-length"))
#: fields never forwarded as trailers (framing, routing, controls: RFC 9110 §6.5.1)
_TRAILER_DROP = _HOP_BY_HOP | {b"content-length", b"host", b"content-type", b"max-forwards"}


class TrustedHops:
    """A set of addresses and networks whose forwarding fields are believed.

    Args:
        entries: IP addresses or networks, as strings (``"10.0.0.0/8"``, ``"::1"``,
            ``"127.0.0.1"``).

    Raises:
        ValueError: an entry that is not an address or a network.
    """

    __slots__ = ("_cache", "_networks")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, host: object) -> bool:
        """Whether ``host`` (an address string) is one of the trusted hops."""
        if not isinstance(host, str):
            return False
        known = self._cache.get(host)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            trusted = False
        else:
            mapped = getattr(address, "ipv4_mapped", None)
            trusted = any(
                address in network or (mapped is not None and mapped in network)
                for network in self._networks
            )
        if len(self._cache) < 4096:
            self._cache[host] = trusted
        return trusted


def forwarded_node(host: str) -> bytes:
    """The ``for=`` / ``by=`` node of a Forwarded element (RFC 7239 §6): an IPv6 address is
    bracketed and quoted, anything that is not a token is quoted."""
    if ":" in host:
        return b'"[' + host.encode("ascii", "replace") + b']"'
    node = host.encode("ascii", "replace")
    return node if is_token(node) else _quote(node)


def _quote(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def upstream_fields(
    headers: RawHeaderListType,
    *,
    client_host: str,
    trusted: bool,
    proto: bytes,
    via: bytes | None,
    forwarded: bool,
    x_forwarded_for: bool,
    keep_length: bool,
    max_forwards_methods: bool,
    authority: bytes | None = None,
) -> tuple[RawHeaderListType, bytes | None, bytes | None, int | None, int]:
    """The fields of a request to forward (see the module docstring).

    Args:
        headers: the fields as received.
        client_host: the address of the peer the request came from.
        trusted: whether that peer's Forwarded / X-Forwarded-For fields are believed.
        proto: b"http" or b"https": how the request reached the proxy.
        via: the Via entry to append (``b"1.1 thor"``), or None for none.
        forwarded, x_forwarded_for: add those fields.
        keep_length: keep Content-Length (False when the body is transformed: re-chunked).
        max_forwards_methods: the method is TRACE or OPTIONS (Max-Forwards applies).
        authority: the authority of an absolute-form target, which replaces the Host field
            (RFC 9112 §3.2.2): the ``host=`` of Forwarded is then that authority, the one the
            request is for; None: the Host field's.

    Returns:
        ``(fields, host, upgrade, max_forwards, own_hops)``: the fields to send (without Host),
        the Host received, the Upgrade field's value (None when absent), the Max-Forwards value
        received (None when absent, invalid, or not TRACE/OPTIONS; the fields then hold it
        decremented), and how many Via entries received name ``via``'s pseudonym (the times
        the request already went through a proxy of that name).
    """
    out: RawHeaderListType = []
    append = out.append
    host = None
    upgrade = None
    hops: list[bytes] | None = None
    xff: list[bytes] | None = None
    tokens: list[bytes] | None = None
    remaining = None
    own_hops = 0
    has_length = False
    actions = _REQUEST_ACTIONS
    names = FIELD_NAME_CACHE
    for field in headers:
        name = field[0]
        lower = names.get(name)
        if lower is None:
            lower = name.lower()
        action = actions.get(lower, _KEEP)
        if action == _KEEP:
            append(field)
        elif action == _HOST:
            host = field[1].strip(OWS)
        elif action == _LENGTH:
            if keep_length and not has_length:  # (equal duplicates: the parser checked)
                append(field)
                has_length = True
        elif action == _CONNECTION:
            if tokens is None:
                tokens = []
            tokens += [token.strip(OWS).lower() for token in field[1].split(b",")]
        elif action == _FORWARDED:
            if trusted:
                if hops is None:
                    hops = []
                hops.append(field[1].strip(OWS))
        elif action == _XFF:
            if trusted:
                if xff is None:
                    xff = []
                xff.append(field[1].strip(OWS))
        elif action == _UPGRADE:
            upgrade = field[1].strip(OWS)
        elif action == _VIA:
            append(field)
            if via is not None:
                own_hops += via_hops(field[1], via.partition(b" ")[2])
        elif action == _MAX_FORWARDS:
            if max_forwards_methods and remaining is None:
                remaining = max_forwards(field[1])
                if remaining is not None:
                    if remaining:
                        append((name, b"%d" % (remaining - 1)))
                    continue
            append(field)
        # _DROP: nothing
    if upgrade is not None and (tokens is None or b"upgrade" not in tokens):
        upgrade = None  # an Upgrade not named by Connection is not an upgrade (RFC 9110 §7.8)
    if tokens:
        nominated = set(tokens) - _CONNECTION_OPTIONS
        nominated.discard(b"")
        if nominated:
            out[:] = [field for field in out if field[0].lower() not in nominated]  # (append)
            if upgrade is not None and b"upgrade" in nominated:
                upgrade = None
    if via is not None:
        append((b"Via", via))
    if forwarded or x_forwarded_for:
        asked = host if authority is None else authority
        key = (client_host, asked, proto)
        ours = _OURS.get(key)
        if ours is None:
            ours = _our_entries(client_host, asked, proto)
            if len(_OURS) >= _OURS_LIMIT:
                _OURS.clear()
            _OURS[key] = ours
        if forwarded:
            element = ours[0]
            if hops:
                element = b", ".join(hops) + b", " + element
            append((b"Forwarded", element))
        if x_forwarded_for:
            address = ours[1]
            if xff:
                address = b", ".join(xff) + b", " + address
            append((b"X-Forwarded-For", address))
    return out, host, upgrade, remaining, own_hops


def via_hops(value: bytes, pseudonym: bytes) -> int:
    """How many entries of a Via field value (``1.1 a, 1.0 b (comment)``) were added by a
    proxy named ``pseudonym`` (RFC 9110 §7.6.3: received-protocol RWS received-by [comment])."""
    if b"(" in value:
        value = _without_comments(value)
    count = 0
    for entry in value.split(b","):
        # RWS is SP and HTAB only (bytes.split() would also split on VT, FF, CR, LF)
        parts = [part for part in entry.replace(b"\t", b" ").split(b" ") if part]
        if len(parts) >= 2 and parts[1] == pseudonym:
            count += 1
    return count


def _without_comments(value: bytes) -> bytes:
    """``value`` with its comments (RFC 9110 §5.6.5: parenthesised, nested, with quoted-pairs)
    taken out, so that their commas and words are not read as entries. An unclosed comment
    runs to the end. (A byte loop: only for the rare Via field that has a comment.)"""
    out = bytearray()
    depth = 0
    escaped = False
    for byte in value:
        if depth:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash: a quoted-pair
                escaped = True
            elif byte == 0x28:
                depth += 1
            elif byte == 0x29:
                depth -= 1
        elif byte == 0x28:
            depth = 1
        else:
            out.append(byte)
    return bytes(out)


#: (client, host, proto) -> (our Forwarded element, our X-Forwarded-For entry): a proxy sees
#: the same few clients and hosts over and over
_OURS: dict[tuple[str, bytes | None, bytes], tuple[bytes, bytes]] = {}
_OURS_LIMIT = 4096


def _our_entries(client_host: str, host: bytes | None, proto: bytes) -> tuple[bytes, bytes]:
    element = b"for=" + forwarded_node(client_host) + b";proto=" + proto
    if host:
        element += b";host=" + (host if is_token(host) else _quote(host))
    return element, client_host.encode("ascii", "replace")


def has_content(headers: RawHeaderListType) -> bool:
    """Whether a request's fields frame content (a Transfer-Encoding, or a Content-Length other
    than 0): a CONNECT with content is refused (RFC 9110 §9.3.6: it has none; framing data as
    its body would swallow tunnel bytes)."""
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            return True
        if lower == b"content-length" and value.strip(OWS).lstrip(b"0") != b"":
            return True
    return False


def max_forwards(value: bytes) -> int | None:
    """A Max-Forwards value (decimal digits), or None when it is not one."""
    return parse_decimal(value.strip(OWS))


def strip_response(headers: RawHeaderListType) -> RawHeaderListType:
    """``headers`` without hop-by-hop fields and those a Connection field names (never
    Content-Length)."""
    return strip_hop_by_hop(headers)


def clean_trailers(trailers: RawHeaderListType) -> RawHeaderListType:
    """Trailer fields that may be forwarded (no framing, routing or hop-by-hop field)."""
    return [field for field in trailers if field[0].lower() not in _TRAILER_DROP]


def trace_body(method: bytes, target: bytes, version: bytes, headers: RawHeaderListType) -> bytes:
    """The ``message/http`` body of a TRACE answered by the proxy (RFC 9110 §9.3.8): the
    request as received, without fields that may carry credentials."""
    lines = [method + b" " + target + b" HTTP/" + version]
    secret = (b"authorization", b"proxy-authorization", b"cookie")
    lines += [
        name + b": " + value.strip(OWS) for name, value in headers if name.lower() not in secret
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def options_response() -> RawHeaderListType:
    """The fields of the proxy's own answer to ``OPTIONS`` with ``Max-Forwards: 0``."""
    return [
        (b"Allow", b"GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"),
        (b"Content-Length", b"0"),
    ]
