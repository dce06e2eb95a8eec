"""thor.http._serializer: heads, chunks and trailers as bytes, refusing anything that would let
a value inject fields or messages (``OutputSyntaxError``), and writing relayed fields back
byte-identical."""

from __future__ import annotations

from typing import Any

import pytest

from thor.http._serializer import (
    LAST_CHUNK,
    encode_chunk,
    request_head,
    response_head,
    trailer_section,
)
from thor.http._server_framing import response_head as server_response_head
from thor.http.error import OutputError, OutputSyntaxError

CONTROLS = [bytes([b]) for b in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F]]


# -- exact output ----------------------------------------------------------------------------------


def test_request_head_bytes() -> None:
    head = request_head(b"POST", b"/a?b=c", [(b"Host", b"example.com"), (b"Content-Length", b"5")])
    assert head == b"POST /a?b=c HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n"


def test_request_head_http10_and_no_fields() -> None:
    assert request_head(b"GET", b"/", [], b"1.0") == b"GET / HTTP/1.0\r\n\r\n"


def test_response_head_bytes() -> None:
    head = response_head(b"404", b"Not Found", [(b"Content-Length", b"0")])
    assert head == b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def test_response_head_empty_phrase_keeps_the_space() -> None:
    """status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)."""
    assert response_head(b"200", b"", []) == b"HTTP/1.1 200 \r\n\r\n"


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (b" nginx/1.22.1", b"Server: nginx/1.22.1\r\n"),  # received with one SP: one SP
        (b"  nginx", b"Server:  nginx\r\n"),  # classic thor's doubled space, relayed as is
        (b"\tnginx", b"Server:\tnginx\r\n"),  # HTAB is OWS too
        (b"nginx", b"Server: nginx\r\n"),  # an application's value gets ": "
        (b"", b"Server:\r\n"),  # empty stays empty (received "Server:" goes back the same)
        (b" ", b"Server: \r\n"),  # whitespace only, as received
        (b"a  b\t", b"Server: a  b\t\r\n"),  # inner and trailing whitespace kept
        (b"caf\xe9 \x80\xff", b"Server: caf\xe9 \x80\xff\r\n"),  # obs-text is allowed
    ],
)
def test_field_values_are_written_as_received(value: bytes, line: bytes) -> None:
    assert response_head(b"200", b"OK", [(b"Server", value)]) == b"HTTP/1.1 200 OK\r\n" + line + (
        b"\r\n"
    )


def test_field_names_keep_their_case() -> None:
    head = request_head(b"GET", b"/", [(b"X-MiXeD", b"1"), (b"x-mixed", b"2")])
    assert b"X-MiXeD: 1\r\nx-mixed: 2\r\n" in head


def test_phrase_with_htab_and_obs_text() -> None:
    assert response_head(b"200", b"O\tK \xe9", []) == b"HTTP/1.1 200 O\tK \xe9\r\n\r\n"


def test_target_forms() -> None:
    for target in (b"/", b"*", b"example.com:443", b"http://example.com/x?y#z", b"/caf%C3%A9"):
        assert request_head(b"GET", target, []).startswith(b"GET " + target + b" HTTP/1.1\r\n")


# -- refused output --------------------------------------------------------------------------------


@pytest.mark.parametrize("byte", CONTROLS, ids=lambda b: b.hex())
def test_control_bytes_in_values_are_refused(byte: bytes) -> None:
    with pytest.raises(OutputSyntaxError) as info:
        response_head(b"200", b"OK", [(b"X", b"a" + byte + b"b")])
    assert info.value.code == "HTTP_OUTPUT_SYNTAX"


@pytest.mark.parametrize("byte", CONTROLS, ids=lambda b: b.hex())
def test_control_bytes_in_request_values_and_trailers_are_refused(byte: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        request_head(b"GET", b"/", [(b"X", byte)])
    with pytest.raises(OutputSyntaxError):
        trailer_section([(b"X", byte + b"a")])


@pytest.mark.parametrize(
    "value",
    [
        b"a\r\nX-Injected: 1",
        b"a\r\n\r\nHTTP/1.1 200 OK",
        b"a\nb",
        b"a\rb",
        b"\r\n",
        b"\n",
    ],
)
def test_line_breaks_in_values_cannot_inject(value: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        request_head(b"GET", b"/", [(b"X", value)])
    with pytest.raises(OutputSyntaxError):
        response_head(b"200", b"OK", [(b"X", value)])


@pytest.mark.parametrize("byte", CONTROLS, ids=lambda b: b.hex())
def test_control_bytes_in_phrases_are_refused(byte: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        response_head(b"200", b"O" + byte + b"K", [])


@pytest.mark.parametrize(
    "name",
    [b"", b"X Y", b"X:Y", b"X\r", b"X\n", b"X\x00", b"X\t", b"\xe9t\xe9", b"(x)", b"X@Y", b" X"],
)
def test_non_token_names_are_refused(name: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        response_head(b"200", b"OK", [(name, b"v")])
    with pytest.raises(OutputSyntaxError):
        request_head(b"GET", b"/", [(name, b"v")])
    with pytest.raises(OutputSyntaxError):
        trailer_section([(name, b"v")])


@pytest.mark.parametrize(
    "status",
    [
        b"",
        b"20",
        b"2000",
        b"099",
        b"000",
        b"abc",
        b"+20",
        b"20 ",
        b" 200",
        b"\xd9\xa2\xd9\xa0\xd9\xa0",
    ],
)
def test_bad_status_codes_are_refused(status: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        response_head(status, b"OK", [])


@pytest.mark.parametrize(
    "method", [b"", b"G T", b"GET\r\n", b"GET\n", b"G\x00", b"G(T", b"G\xc3\x89T", b"GET "]
)
def test_bad_methods_are_refused(method: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        request_head(method, b"/", [])


@pytest.mark.parametrize(
    "target",
    [
        b"",
        b"/a b",
        b"/a\tb",
        b"/\r\nX: y",
        b"/\n",
        b"/\x00",
        b"/\x7f",
        b" /",
        b"/ HTTP/1.1\r\n",
        b"/caf\xc3\xa9",  # (a URI is ASCII: percent-encode it)
        b"/\x80",
    ],
)
def test_bad_targets_are_refused(target: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        request_head(b"GET", target, [])


@pytest.mark.parametrize("version", [b"", b"2.0", b"1.2", b"1.1\r\nX: y", b"1.1 ", b"HTTP/1.1"])
def test_bad_versions_are_refused(version: bytes) -> None:
    with pytest.raises(OutputSyntaxError):
        request_head(b"GET", b"/", [], version)
    with pytest.raises(OutputSyntaxError):
        response_head(b"200", b"OK", [], version)


def test_output_syntax_error_is_an_output_error() -> None:
    with pytest.raises(OutputError):
        request_head(b"GET", b"/", [(b"X", b"\r")])


# -- chunked framing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "framed"),
    [
        (b"a", b"1\r\na\r\n"),
        (b"hello", b"5\r\nhello\r\n"),
        (b"x" * 15, b"f\r\n" + b"x" * 15 + b"\r\n"),
        (b"x" * 16, b"10\r\n" + b"x" * 16 + b"\r\n"),
        (b"\r\n0\r\n\r\n", b"7\r\n\r\n0\r\n\r\n\r\n"),  # data is data, whatever it looks like
        (b"y" * 70000, b"11170\r\n" + b"y" * 70000 + b"\r\n"),
    ],
)
def test_encode_chunk(data: bytes, framed: bytes) -> None:
    assert encode_chunk(data) == framed


def test_empty_chunk_is_nothing_not_the_last_chunk() -> None:
    """An empty write must not end the body early (b"0\\r\\n\\r\\n" is the last-chunk)."""
    assert encode_chunk(b"") == b""


def test_trailer_section_without_trailers_is_the_last_chunk() -> None:
    assert trailer_section([]) == LAST_CHUNK == b"0\r\n\r\n"


def test_trailer_section_with_trailers() -> None:
    section = trailer_section([(b"Digest", b"sha-256=abc"), (b"X-T", b"  two")])
    assert section == b"0\r\nDigest: sha-256=abc\r\nX-T:  two\r\n\r\n"


def test_chunked_body_as_a_whole() -> None:
    body = encode_chunk(b"Wiki") + encode_chunk(b"pedia") + trailer_section([(b"T", b"1")])
    assert body == b"4\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n"


@pytest.mark.parametrize(
    "fields",
    [[("X", "y")], [(b"X", "y")], [("X", b"y")], [(b"X", b"y", b"z")], [None], [b"X: y"]],
    ids=["str", "str-value", "str-name", "triple", "none", "line"],
)
def test_fields_that_are_not_pairs_of_bytes_are_an_output_syntax_error(fields: Any) -> None:
    """From the application, through each serialiser (request, response, trailers, and the
    server's own response head): OutputSyntaxError naming the field, never a TypeError."""
    calls = [
        lambda: request_head(b"GET", b"/", fields),
        lambda: response_head(b"200", b"OK", fields),
        lambda: trailer_section(fields),
        lambda: server_response_head(b"200", b"OK", fields, b"GET", b"1.1", True),
    ]
    for call in calls:
        with pytest.raises(OutputSyntaxError, match="pair of bytes") as caught:
            call()
        assert repr(fields[0]) in str(caught.value)


def test_a_str_phrase_is_an_output_syntax_error() -> None:
    with pytest.raises(OutputSyntaxError, match="phrase"):
        server_response_head(b"200", "OK", [], b"GET", b"1.1", True)  # type: ignore[arg-type]
