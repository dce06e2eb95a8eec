"""thor.http.error: the HttpError tree: every kind of bad HTTP input or misuse, by class.

Each class says what went wrong (``desc``, user-visible), who can recover, and which status a
server answers with (``server_status``), so the server needs no lookup table of its own. ``code``
is a stable machine-readable name for tests and logs. The module path and class names are part of
the contract: applications store these errors in pickles (construction with no arguments, and
``detail`` in the instance dict, are what unpickling relies on), so they are defined here and
never moved.

Attributes of every error:
    desc: a short description of the kind of error (class attribute).
    detail: what exactly was wrong, usually with the offending value (instance, may be None).
    server_status: ``(status, phrase)`` as bytes, the response a server sends for it.
    server_recoverable: the server may carry on with the connection after reporting it.
    client_recoverable: the client may carry on with the response after reporting it.
    code: a stable identifier (``"HTTP_CHUNK"``...).
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "BareCRError",
    "BodyTooLargeError",
    "ChunkError",
    "ChunkSizeError",
    "ChunkTerminatorError",
    "ConnectError",
    "DnsError",
    "DuplicateCLError",
    "ExtraDataError",
    "FieldSectionTooLargeError",
    "HeaderLineEndingError",
    "HeaderNameError",
    "HeaderNoColonError",
    "HeaderSpaceError",
    "HeaderValueError",
    "HostRequiredError",
    "HttpError",
    "HttpVersionError",
    "InvalidHostError",
    "LengthRequiredError",
    "MalformedCLError",
    "ObsoleteFoldError",
    "OutputError",
    "OutputStateError",
    "OutputSyntaxError",
    "PipelineTooDeepError",
    "ReadTimeoutError",
    "RequestLineError",
    "RequestTargetTooLongError",
    "RequestTransferEncodingError",
    "StartLineError",
    "TooManyFieldsError",
    "TooManyMsgsError",
    "TopLineSpaceError",
    "TransferCodeError",
    "TransferEncodingCLError",
    "UpgradeError",
    "UrlError",
    "WriteTimeoutError",
]


class HttpError(Exception):
    """Base of every HTTP error thor reports.

    Args:
        detail: what exactly was wrong (e.g. the offending value); optional.
    """

    desc = "Unknown Error"
    code = "HTTP_ERROR"
    server_status: tuple[bytes, bytes] = (b"500", b"Internal Server Error")
    server_recoverable = False
    client_recoverable = False

    def __init__(self, detail: str | None = None) -> None:
        super().__init__()
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.desc} ({self.detail})" if self.detail else self.desc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.desc!r} detail={self.detail!r}>"


_400 = (b"400", b"Bad Request")

# -- message syntax (raised by the parser: P) -----------------------------------------------------


class ChunkError(HttpError):
    """A chunked body is malformed."""

    desc = "Chunked encoding error"
    code = "HTTP_CHUNK"
    server_status = _400


class ChunkTerminatorError(ChunkError):
    """A chunk's data was not followed by CRLF."""

    desc = "Chunked body chunk was not terminated with CRLF"
    code = "HTTP_CHUNK_TERMINATOR"


class ChunkSizeError(ChunkError):
    """A chunk-size line is not hex digits (optionally followed by extensions), or too long."""

    desc = "Invalid chunk size line"
    code = "HTTP_CHUNK_SIZE"


class DuplicateCLError(HttpError):
    """Several Content-Length fields with different values."""

    desc = "Duplicate Content-Length header"
    code = "HTTP_DUPLICATE_CL"
    server_status = _400
    client_recoverable = True


class MalformedCLError(HttpError):
    """A Content-Length value that is not a plain decimal number."""

    desc = "Malformed Content-Length header"
    code = "HTTP_MALFORMED_CL"
    server_status = _400


class TransferEncodingCLError(HttpError):
    """Both Transfer-Encoding and Content-Length: the framing is ambiguous (smuggling)."""

    desc = "Both Transfer-Encoding and Content-Length present"
    code = "HTTP_TE_AND_CL"
    server_status = _400


class ExtraDataError(HttpError):
    """Bytes arrived after a message that was supposed to end the connection."""

    desc = "Extra data was sent after this message was supposed to end"
    code = "HTTP_EXTRA_DATA"
    server_status = _400


class StartLineError(HttpError):
    """The start line (request line or status line) could not be parsed."""

    desc = "The start line of the message couldn't be parsed"
    code = "HTTP_START_LINE"
    server_status = _400


class RequestLineError(HttpError):
    """The request line holds unexpected characters (method, target or spacing)."""

    desc = "Request-line contains unexpected characters"
    code = "HTTP_REQUEST_LINE"
    server_status = _400


class HttpVersionError(HttpError):
    """An HTTP version thor does not speak: another major version than 1 (HTTP/2.0, HTTP/0.9);
    a later HTTP/1 minor version (HTTP/1.2) is processed as HTTP/1.1 (RFC 9110 §2.5)."""

    desc = "Unrecognised HTTP version"
    code = "HTTP_VERSION"
    server_status = (b"505", b"HTTP Version Not Supported")


class TransferCodeError(HttpError):
    """A transfer coding thor does not implement (only chunked is)."""

    desc = "Unknown request transfer coding"
    code = "HTTP_TRANSFER_CODING"
    server_status = (b"501", b"Not Implemented")


class RequestTransferEncodingError(HttpError):
    """A request Transfer-Encoding whose last coding is not chunked (its length is unknowable)."""

    desc = "Request Transfer-Encoding does not end in chunked"
    code = "HTTP_REQUEST_TE"
    server_status = _400


class HeaderSpaceError(HttpError):
    """Whitespace between a field name and its colon."""

    desc = "Whitespace at the end of a header field-name"
    code = "HTTP_HEADER_SPACE"
    server_status = _400
    client_recoverable = True


class HeaderNoColonError(HttpError):
    """A field line without a colon."""

    desc = "Header field line did not contain a colon"
    code = "HTTP_HEADER_NO_COLON"
    server_status = _400
    client_recoverable = True


class HeaderNameError(HttpError):
    """A field name that is empty or not a token."""

    desc = "Invalid header field-name"
    code = "HTTP_HEADER_NAME"
    server_status = _400
    client_recoverable = True


class HeaderValueError(HttpError):
    """A field value with a forbidden byte (NUL, a control character)."""

    desc = "Invalid header field-value"
    code = "HTTP_HEADER_VALUE"
    server_status = _400
    client_recoverable = True


class BareCRError(HttpError):
    """A CR not followed by LF in the head."""

    desc = "Bare CR in field section"
    code = "HTTP_BARE_CR"
    server_status = _400
    client_recoverable = True


class HeaderLineEndingError(HttpError):
    """A line of the head ended with LF alone instead of CRLF."""

    desc = "Header line was terminated with LF instead of CRLF"
    code = "HTTP_BARE_LF"
    server_status = _400
    client_recoverable = True


class ObsoleteFoldError(HttpError):
    """A field value continued on the next line (obs-fold, RFC 9112 §5.2)."""

    desc = "Obsolete folded header field"
    code = "HTTP_OBS_FOLD"
    server_status = _400
    client_recoverable = True


class TopLineSpaceError(HttpError):
    """Whitespace at the start of the first field line (after the start line)."""

    desc = "Whitespace after top line, before first header"
    code = "HTTP_TOP_LINE_SPACE"
    server_status = _400
    client_recoverable = True


class FieldSectionTooLargeError(HttpError):
    """The field section (or trailer section) is larger than the configured limit."""

    desc = "HTTP field section too large"
    code = "HTTP_FIELDS_TOO_LARGE"
    server_status = (b"431", b"Request Header Fields Too Large")
    client_recoverable = True


class TooManyFieldsError(HttpError):
    """More field lines than the configured limit."""

    desc = "Too many HTTP fields"
    code = "HTTP_TOO_MANY_FIELDS"
    server_status = (b"431", b"Request Header Fields Too Large")
    client_recoverable = True


class RequestTargetTooLongError(HttpError):
    """The request line is longer than the configured limit."""

    desc = "Request target too long"
    code = "HTTP_URI_TOO_LONG"
    server_status = (b"414", b"URI Too Long")


class BodyTooLargeError(HttpError):
    """A request body larger than the server's configured cap."""

    desc = "Request body too large"
    code = "HTTP_BODY_TOO_LARGE"
    server_status = (b"413", b"Content Too Large")


class TooManyMsgsError(HttpError):
    """Too many messages to parse (more pipelined requests than allowed)."""

    desc = "Too many messages to parse"
    code = "HTTP_TOO_MANY_MESSAGES"
    server_status = _400


class PipelineTooDeepError(TooManyMsgsError):
    """More pipelined requests waiting than the server's pipeline depth limit."""

    desc = "Too many pipelined requests"
    code = "HTTP_PIPELINE_TOO_DEEP"


class HostRequiredError(HttpError):
    """An HTTP/1.1 request without a Host field."""

    desc = "Host header required"
    code = "HTTP_HOST_REQUIRED"
    server_status = _400


class InvalidHostError(HttpError):
    """A Host field that is malformed, repeated, or disagrees with an absolute-form target."""

    desc = "Invalid Host header"
    code = "HTTP_INVALID_HOST"
    server_status = _400


class LengthRequiredError(HttpError):
    """A request body without a length the server accepts."""

    desc = "Content-Length required"
    code = "HTTP_LENGTH_REQUIRED"
    server_status = (b"411", b"Length Required")
    client_recoverable = True


# -- output: the application's own mistakes (O) ----------------------------------------------------


class OutputError(HttpError):
    """The application's message would be wrong on the wire (e.g. body longer than its
    Content-Length)."""

    desc = "Body length does not match Content-Length"
    code = "HTTP_OUTPUT"


class OutputSyntaxError(OutputError):
    """An invalid start line, field name or value (CR/LF injection...) given to send."""

    desc = "Invalid HTTP output syntax"
    code = "HTTP_OUTPUT_SYNTAX"


class OutputStateError(OutputError):
    """A response_*/request_* call out of order (e.g. a body before the start)."""

    desc = "Invalid HTTP output state"
    code = "HTTP_OUTPUT_STATE"


# -- the client's view of the network (C) ------------------------------------------------------


class UrlError(HttpError):
    """An unsupported or invalid URL."""

    desc = "Unsupported or invalid URI"
    code = "HTTP_URL"
    server_status = _400


class ReadTimeoutError(HttpError):
    """Nothing arrived for the configured time."""

    desc = "Read Timeout"
    code = "HTTP_READ_TIMEOUT"
    server_status = (b"504", b"Gateway Timeout")


class WriteTimeoutError(HttpError):
    """The peer did not read what we sent for the configured time."""

    desc = "Write Timeout"
    code = "HTTP_WRITE_TIMEOUT"
    server_status = (b"504", b"Gateway Timeout")


class UpgradeError(HttpError):
    """A server switched protocols (101) in answer to a request that asked for no upgrade."""

    desc = "The server switched protocols without being asked"
    code = "HTTP_UPGRADE"
    server_status = (b"502", b"Bad Gateway")


class DnsError(HttpError):
    """The server's name could not be resolved."""

    desc = "DNS Error"
    code = "HTTP_DNS"
    server_status = (b"502", b"Bad Gateway")


class ConnectError(HttpError):
    """The connection could not be made, or was lost."""

    desc = "Connection error"
    code = "HTTP_CONNECT"
    server_status = (b"504", b"Gateway Timeout")


class AccessError(HttpError):
    """``check_ip`` refused the server's address."""

    desc = "Access Error"
    code = "HTTP_ACCESS"
    server_status = (b"403", b"Forbidden")
