"""RFC 9110 / RFC 9112 productions as byte tables and checks, built for speed.

No per-byte Python loops: each check is one C-level scan (``bytes.translate``, ``re.search``,
``bytes.isdigit``) and field names, once validated, are cached with their lower-case form.
Python's conveniences are avoided where they are wrong on the wire: ``int()`` accepts ``+``,
``-``, ``_``, whitespace and non-ASCII digits, ``bytes.strip()`` strips VT and FF, and
``splitlines()`` splits on a bare CR; here OWS is SP and HTAB only and numbers are ASCII digits.
"""

from __future__ import annotations

import re

__all__ = [
    "FIELD_NAME_CACHE",
    "MAX_DECIMAL_DIGITS",
    "OWS",
    "field_name_lower",
    "has_bad_value_bytes",
    "is_host_value",
    "is_token",
    "parse_decimal",
    "parse_hex",
]

#: OWS = *( SP / HTAB )  (RFC 9110 §5.6.3)
OWS = b" \t"

#: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
#:         "~" / DIGIT / ALPHA  (RFC 9110 §5.6.2)
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: field-value bytes: VCHAR / obs-text / SP / HTAB (RFC 9110 §5.5); CR and LF are line structure
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search

#: 64-bit lengths need at most 19 digits; more is refused rather than converted
MAX_DECIMAL_DIGITS = 18
_MAX_HEX_DIGITS = 15

_HEX = frozenset(b"0123456789abcdefABCDEF")

_name_cache: dict[bytes, bytes] = {}
_NAME_CACHE_LIMIT = 4096
#: longest field name cached (real ones are far shorter; a peer may send 64 KiB ones)
MAX_CACHED_NAME = 64

#: validated field names mapped to their lower-case form, filled by ``field_name_lower``: hot
#: paths look a name up here first (a hit means the name is a token) and call it on a miss
FIELD_NAME_CACHE = _name_cache


#: uri-host [ ":" port ] as a Host value: reg-name / IPv4 / IP-literal (RFC 9110 §7.2, 3986 §3.2.2)
_HOST_VALUE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?"
).fullmatch


def is_host_value(value: bytes) -> bool:
    """True when ``value`` is a valid Host field value: ``uri-host [ ":" port ]``."""
    return _HOST_VALUE(value) is not None


def is_token(value: bytes) -> bool:
    """True when ``value`` is a non-empty token (RFC 9110 §5.6.2)."""
    return bool(value) and not value.translate(None, _TCHAR)


def field_name_lower(name: bytes) -> bytes | None:
    """The lower-case form of a valid field name, or None when ``name`` is not a token.

    Validated names are cached: a server sees the same few dozen names all day.
    """
    lower = _name_cache.get(name)
    if lower is not None:
        return lower
    if not name or name.translate(None, _TCHAR):
        return None
    lower = name.lower()
    if len(name) <= MAX_CACHED_NAME:  # (a peer's made-up long names are not kept)
        if len(_name_cache) >= _NAME_CACHE_LIMIT:
            _name_cache.clear()  # (in place: the parser holds this dict)
        _name_cache[name] = lower
    return lower


def has_bad_value_bytes(value: bytes) -> bool:
    """True when ``value`` holds a byte a field value may not contain (controls, DEL)."""
    return _BAD_VALUE_BYTE(value) is not None


def parse_decimal(value: bytes) -> int | None:
    """A non-negative decimal number of at most MAX_DECIMAL_DIGITS ASCII digits, or None."""
    if value.isdigit() and len(value) <= MAX_DECIMAL_DIGITS:
        return int(value)
    return None


def parse_hex(value: bytes) -> int | None:
    """A hexadecimal number (ASCII hex digits only, at most 15 of them), or None."""
    if not value or len(value) > _MAX_HEX_DIGITS or not _HEX.issuperset(value):
        return None
    return int(value, 16)
