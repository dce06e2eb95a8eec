"""thor.http.uri.parse_uri: the URLs the client accepts, what it makes of them, and the ones it
refuses (with UrlError), as tables. Each row's id says what it checks."""

from __future__ import annotations

import pytest

from thor.http.error import UrlError
from thor.http.uri import parse_uri

GOOD = [
    pytest.param(
        b"http://example.com/a/b?c=d#frag",
        ("http", "example.com", 80, b"example.com", b"/a/b?c=d"),
        id="plain",
    ),
    pytest.param(
        b"https://example.com",
        ("https", "example.com", 443, b"example.com", b"/"),
        id="https-empty-path",
    ),
    pytest.param(
        b"HTTP://Example.COM/X", ("http", "example.com", 80, b"Example.COM", b"/X"), id="case"
    ),
    pytest.param(b"http://h:8080/", ("http", "h", 8080, b"h:8080", b"/"), id="port"),
    pytest.param(
        b"http://h:80/", ("http", "h", 80, b"h:80", b"/"), id="explicit-default-port-kept"
    ),
    pytest.param(b"http://h:/", ("http", "h", 80, b"h", b"/"), id="empty-port"),
    pytest.param(b"http://h:65535/", ("http", "h", 65535, b"h:65535", b"/"), id="port-max"),
    pytest.param(b"http://h:00080/", ("http", "h", 80, b"h:00080", b"/"), id="port-leading-zeros"),
    pytest.param(b"http://user:pw@h/p", ("http", "h", 80, b"h", b"/p"), id="userinfo-stripped"),
    pytest.param(b"http://a@b@h/", ("http", "h", 80, b"h", b"/"), id="userinfo-to-last-at"),
    pytest.param(b"http://h?q=1", ("http", "h", 80, b"h", b"/?q=1"), id="query-no-path"),
    pytest.param(b"http://h/?", ("http", "h", 80, b"h", b"/?"), id="empty-query-kept"),
    pytest.param(b"http://h#f", ("http", "h", 80, b"h", b"/"), id="fragment-no-path"),
    pytest.param(b"http://[::1]/", ("http", "::1", 80, b"[::1]", b"/"), id="ipv6"),
    pytest.param(
        b"http://[::1]:8000/x", ("http", "::1", 8000, b"[::1]:8000", b"/x"), id="ipv6-port"
    ),
    pytest.param(
        b"http://[0:0::1]/", ("http", "::1", 80, b"[0:0::1]", b"/"), id="ipv6-normalised-host"
    ),
    pytest.param(
        b"http://[FE80::A]/", ("http", "fe80::a", 80, b"[FE80::A]", b"/"), id="ipv6-lowered"
    ),
    pytest.param(
        b"http://[::ffff:1.2.3.4]/",
        ("http", "::ffff:1.2.3.4", 80, b"[::ffff:1.2.3.4]", b"/"),
        id="ipv4-mapped",
    ),
    pytest.param(
        b"http://[::ffff:102:304]/",
        ("http", "::ffff:1.2.3.4", 80, b"[::ffff:102:304]", b"/"),
        id="ipv4-mapped-hex-spelling",
    ),
    pytest.param(b"http://127.0.0.1:1/", ("http", "127.0.0.1", 1, b"127.0.0.1:1", b"/"), id="ipv4"),
    pytest.param(
        b"http://my_host.local/",
        ("http", "my_host.local", 80, b"my_host.local", b"/"),
        id="underscore",
    ),
    pytest.param(
        b"http://1a.example/", ("http", "1a.example", 80, b"1a.example", b"/"), id="numeric-label"
    ),
    pytest.param(
        b"http://h/a b", ("http", "h", 80, b"h", b"/a b"), id="space-in-path-left-to-request-line"
    ),
    pytest.param(b"http://h/%7Ex", ("http", "h", 80, b"h", b"/%7Ex"), id="percent-kept"),
]


@pytest.mark.parametrize(("uri", "expected"), GOOD)
def test_parse_uri_accepts(uri: bytes, expected: tuple[object, ...]) -> None:
    assert parse_uri(uri) == expected


def test_parse_uri_takes_bytearray_and_memoryview() -> None:
    expected = ("http", "h", 80, b"h", b"/")
    assert parse_uri(bytearray(b"http://h/")) == expected  # type: ignore[arg-type]
    assert parse_uri(memoryview(b"http://h/")) == expected  # type: ignore[arg-type]


BAD = [
    pytest.param(b"ftp://h/", id="scheme-ftp"),
    pytest.param(b"httpx://h/", id="scheme-unknown"),
    pytest.param(b"//h/", id="no-scheme"),
    pytest.param(b"h/path", id="no-colon"),
    pytest.param(b"1http://h/", id="scheme-syntax"),
    pytest.param(b"http:h/", id="no-authority"),
    pytest.param(b"http:/h/", id="single-slash"),
    pytest.param(b"http://+80/", id="host-plus"),
    pytest.param(b"http://h:+80/", id="port-plus"),
    pytest.param(b"http://h:-80/", id="port-minus"),
    pytest.param(b"http://h: 80/", id="port-space"),
    pytest.param(b"http://h:8_0/", id="port-underscore"),
    pytest.param(b"http://h:0/", id="port-zero"),
    pytest.param(b"http://h:65536/", id="port-too-big"),
    pytest.param(b"http://h:123456/", id="port-six-digits"),
    pytest.param(b"http://h:80:80/", id="port-twice"),
    pytest.param(b"http://h:0x50/", id="port-hex"),
    pytest.param("http://h:\u0668\u0660/".encode(), id="port-arabic-digits"),
    pytest.param(b"http:///path", id="empty-host"),
    pytest.param(b"http://:80/", id="empty-host-with-port"),
    pytest.param(b"http://user@/", id="empty-host-after-userinfo"),
    pytest.param(b"http://[::1/", id="unclosed-bracket"),
    pytest.param(b"http://[]/", id="empty-brackets"),
    pytest.param(b"http://[::1]junk/", id="junk-after-bracket"),
    pytest.param(b"http://[::1]x:80/", id="junk-before-port"),
    pytest.param(b"http://[::1%25eth0]/", id="zone-id"),
    pytest.param(b"http://[v1.abc]/", id="ipvfuture"),
    pytest.param(b"http://[12345::]/", id="bad-ipv6"),
    pytest.param(b"http://[1.2.3.4]/", id="ipv4-in-brackets"),
    pytest.param(b"http://::1/", id="ipv6-unbracketed"),
    pytest.param("http://bücher.example/".encode(), id="non-ascii-host"),
    pytest.param("http://h/päth".encode(), id="non-ascii-path"),
    pytest.param(b"http://h/\xff", id="high-byte"),
    pytest.param(b"http://h/a\r\nX-Injected: 1", id="crlf-in-path"),
    pytest.param(b"http://h/a\nb", id="lf-in-path"),
    pytest.param(b"http://h/a\x00", id="nul-in-path"),
    pytest.param(b"http://h\r\n/", id="crlf-in-host"),
    pytest.param(b"http://h x/", id="space-in-host"),
    pytest.param(b"http://h\tx/", id="tab-in-host"),
    pytest.param(b" http://h/", id="leading-space"),
    pytest.param(b"http://a..b/", id="empty-label"),
    pytest.param(b"http://.h/", id="leading-dot"),
    pytest.param(b"http://h./", id="trailing-dot"),
    pytest.param(b"http://" + b"a" * 64 + b".com/", id="label-too-long"),
    pytest.param(b"http://" + b"a." * 127 + b"aa/", id="host-too-long"),
    pytest.param(b"http://h%41/", id="percent-in-host"),
    pytest.param(b"http://h!/", id="subdelim-in-host"),
    pytest.param(b"http://999.1.1.1/", id="bad-ipv4"),
    pytest.param(b"http://127.1/", id="short-ipv4"),
    pytest.param(b"http://127.000.0.1/", id="ipv4-leading-zeros"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("uri", BAD)
def test_parse_uri_refuses(uri: bytes) -> None:
    with pytest.raises(UrlError) as info:
        parse_uri(uri)
    assert info.value.detail


def test_parse_uri_refuses_str_with_url_error() -> None:
    with pytest.raises(UrlError):
        parse_uri("http://h/")  # type: ignore[arg-type]


def test_parse_uri_label_and_host_limits_are_inclusive() -> None:
    label = b"a" * 63
    assert parse_uri(b"http://" + label + b"/")[1] == label.decode()
    host = b".".join([b"a" * 63] * 4)[:255]
    assert len(host) == 255
    assert parse_uri(b"http://" + host + b"/")[1] == host.decode()
