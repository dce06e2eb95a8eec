"""Every limit the HTTP layer enforces, with its default, unit and the error it produces.

The parser, server and client read these as class attributes, so an application changes one by
setting it on the class or a subclass (``HttpServer.max_body_size = 10 * 2**20``) or instance.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_CHUNK_LINE",
    "DEFAULT_MAX_FIELDS",
    "DEFAULT_MAX_FIELD_SECTION",
    "DEFAULT_MAX_REQUEST_LINE",
]

#: bytes of a request line (method, target, version): more is RequestTargetTooLongError (414)
DEFAULT_MAX_REQUEST_LINE = 8 * 1024

#: bytes of a field section (head or trailers, start line included): more is
#: FieldSectionTooLargeError (431)
DEFAULT_MAX_FIELD_SECTION = 64 * 1024

#: field lines in a section: more is TooManyFieldsError (431)
DEFAULT_MAX_FIELDS = 100

#: bytes of a chunk-size line (size, extensions, CRLF): more is ChunkSizeError (400)
DEFAULT_MAX_CHUNK_LINE = 4 * 1024

#: bytes of a request body a server accepts: more is BodyTooLargeError (413); None for no cap
DEFAULT_MAX_BODY_SIZE: int | None = 1024 * 1024 * 1024
