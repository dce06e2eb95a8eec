"""Access log writers: the exact lines CommonLogWriter and JsonLinesWriter write for
constructed AccessRecords (plain and extended common log lines, escaping, absent values, UTC
times), and that they work as 'access' listeners of a real EventEmitter."""

from __future__ import annotations

import dataclasses
import io
import json

from thor.events import EventEmitter
from thor.http.proxy._access_log import (
    AccessRecord,
    CommonLogWriter,
    JsonLinesWriter,
    begin_record,
)

# 2026-11-26 12:48:57.123 UTC
STARTED = 1795697337.123


def proxied() -> AccessRecord:
    return AccessRecord(
        client=("192.0.2.7", 50412),
        method=b"GET",
        target=b"/index.html?q=1",
        version=b"1.1",
        status=200,
        bytes_in=0,
        bytes_out=1234,
        upstream="127.0.0.1:8080",
        connect_time=0.000412,
        first_byte_time=0.0012034,
        total_time=0.0018771,
        started=STARTED,
    )


def failed() -> AccessRecord:
    return AccessRecord(
        client=("2001:db8::1", 443),
        method=b"POST",
        target=b'/a"b\\c\x80 d',
        version=b"1.0",
        status=504,
        bytes_in=17,
        bytes_out=0,
        upstream="10.0.0.2:80",
        connect_time=0.25,
        first_byte_time=None,
        total_time=30.0,
        error="upstream timeout",
        started=STARTED + 3600 * 24 * 40,  # in January 2027
    )


def never_answered() -> AccessRecord:
    return AccessRecord(client=("127.0.0.1", 1), method=b"GET", target=b"/", version=b"1.1")


def test_common_log_line() -> None:
    out = io.StringIO()
    CommonLogWriter(out)(proxied())
    assert out.getvalue() == (
        '192.0.2.7 - - [26/Nov/2026:12:48:57 +0000] "GET /index.html?q=1 HTTP/1.1" 200 1234\n'
    )


def test_common_log_escapes_and_absent_values() -> None:
    out = io.StringIO()
    writer = CommonLogWriter(out)
    writer(failed())
    writer(never_answered())
    assert out.getvalue().splitlines() == [
        '2001:db8::1 - - [05/Jan/2027:12:48:57 +0000] "POST /a\\x22b\\x5cc\\x80\\x20d HTTP/1.0"'
        " 504 -",
        '127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] "GET / HTTP/1.1" - -',
    ]


def test_common_log_extended() -> None:
    out = io.StringIO()
    writer = CommonLogWriter(out, extended=True)
    writer(proxied())
    writer(failed())
    writer(never_answered())
    assert out.getvalue().splitlines() == [
        '192.0.2.7 - - [26/Nov/2026:12:48:57 +0000] "GET /index.html?q=1 HTTP/1.1" 200 1234'
        " upstream=127.0.0.1:8080 connect=0.412 first_byte=1.203 total=1.877 in=0",
        '2001:db8::1 - - [05/Jan/2027:12:48:57 +0000] "POST /a\\x22b\\x5cc\\x80\\x20d HTTP/1.0"'
        " 504 - upstream=10.0.0.2:80 connect=250.000 first_byte=- total=30000.000 in=17"
        ' error="upstream timeout"',
        '127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] "GET / HTTP/1.1" - -'
        " upstream=- connect=- first_byte=- total=- in=0",
    ]


def test_json_lines() -> None:
    out = io.StringIO()
    writer = JsonLinesWriter(out)
    writer(proxied())
    writer(failed())
    writer(never_answered())
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    assert lines[0] == (
        '{"time":"2026-11-26T12:48:57.123Z","client":"192.0.2.7","client_port":50412,'
        '"method":"GET","target":"/index.html?q=1","version":"1.1","status":200,'
        '"bytes_in":0,"bytes_out":1234,"upstream":"127.0.0.1:8080","connect_ms":0.412,'
        '"first_byte_ms":1.203,"total_ms":1.877,"error":null}'
    )
    assert lines[1] == (
        '{"time":"2027-01-05T12:48:57.123Z","client":"2001:db8::1","client_port":443,'
        '"method":"POST","target":"/a\\"b\\\\c\\u0080 d","version":"1.0","status":504,'
        '"bytes_in":17,"bytes_out":0,"upstream":"10.0.0.2:80","connect_ms":250.0,'
        '"first_byte_ms":null,"total_ms":30000.0,"error":"upstream timeout"}'
    )
    # latin-1: every byte comes back
    assert json.loads(lines[1])["target"].encode("latin-1") == b'/a"b\\c\x80 d'
    assert json.loads(lines[2]) == {
        "time": "1970-01-01T00:00:00.000Z",
        "client": "127.0.0.1",
        "client_port": 1,
        "method": "GET",
        "target": "/",
        "version": "1.1",
        "status": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "upstream": None,
        "connect_ms": None,
        "first_byte_ms": None,
        "total_ms": None,
        "error": None,
    }


def test_json_time_rounding_into_the_next_second() -> None:
    record = never_answered()
    record.started = 59.9996
    assert json.loads(JsonLinesWriter(io.StringIO()).format(record))["time"] == (
        "1970-01-01T00:01:00.000Z"
    )


def test_writers_as_access_listeners() -> None:
    emitter = EventEmitter()
    common, lines = io.StringIO(), io.StringIO()
    emitter.on("access", CommonLogWriter(common))
    emitter.on("access", JsonLinesWriter(lines))
    emitter.emit("access", proxied())
    emitter.emit("access", never_answered())
    assert len(common.getvalue().splitlines()) == 2
    assert [json.loads(line)["status"] for line in lines.getvalue().splitlines()] == [200, 0]


def test_begin_record_equals_the_constructor_with_its_defaults() -> None:
    # the proxy makes its records field by field (faster); every field must be set, and to the
    # dataclass's default, so a field added to AccessRecord fails here until begin_record has it
    made = begin_record(("192.0.2.7", 50412), b"GET", b"/x", b"1.1", STARTED)
    expected = AccessRecord(("192.0.2.7", 50412), b"GET", b"/x", b"1.1", started=STARTED)
    for field in dataclasses.fields(AccessRecord):
        assert getattr(made, field.name) == getattr(expected, field.name), field.name
    assert made == expected
    assert type(made) is AccessRecord
