"""thor.http.common: the classic constants and header helpers shared by server and client."""

from __future__ import annotations

from ._headers import (
    RawHeaderListType,
    connection_tokens,
    get_header,
    header_dict,
    header_names,
    hop_by_hop_hdrs,
    idempotent_methods,
    safe_methods,
    strip_hop_by_hop,
)

__all__ = [
    "LINESEP",
    "NEWLINE",
    "RETURN",
    "RawHeaderListType",
    "connection_tokens",
    "get_header",
    "header_dict",
    "header_names",
    "hop_by_hop_hdrs",
    "idempotent_methods",
    "no_body_status",
    "safe_methods",
    "strip_hop_by_hop",
]

LINESEP = b"\r\n"
NEWLINE = b"\n"
RETURN = b"\r"

#: final statuses whose responses never have a body (1xx are interim)
no_body_status = [b"204", b"304"]
