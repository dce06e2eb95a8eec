"""``python -m thor.http.client URL``: fetch a URL and print the response.

Prints the status line, the header fields (``name:value``, the value exactly as received), an
empty line and the body, to stdout, as bytes; interim (1xx) responses are printed the same way
before the final one. On failure, one line goes to stderr (``thor.http.client: <what>
(<detail>)``) and the exit status is 1; a usage error exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import BinaryIO

import thor.loop

from .._headers import RawHeaderListType
from ..error import HttpError
from ._client import HttpClient


def _header_arg(text: str) -> tuple[bytes, bytes]:
    name, colon, value = text.partition(":")
    if not colon or not name:
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return name.strip().encode("latin-1"), value.strip().encode("latin-1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m thor.http.client",
        description="Fetch an http(s) URL with thor and print the response.",
    )
    parser.add_argument("url", help="the absolute http:// or https:// URL")
    parser.add_argument("-X", "--method", default="GET", help="request method (GET)")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header_arg,
        default=[],
        metavar="'NAME: VALUE'",
        help="request header field (repeatable)",
    )
    parser.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="accept any TLS certificate (thor 0.17's behaviour)",
    )
    parser.add_argument("--ca-file", help="PEM file of the CAs to trust for HTTPS")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="connect and read timeout, seconds (10)"
    )
    return parser


class _Printer:
    """Writes the response to ``out`` and remembers how the fetch ended."""

    def __init__(self, out: BinaryIO, loop: thor.loop.LoopBase) -> None:
        self.out = out
        self.loop = loop
        self.failure: HttpError | None = None
        self.version = b"1.1"

    def head(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        lines = [b"HTTP/%s %s %s\n" % (self.version, status, phrase)]
        lines += [b"%s:%s\n" % field for field in headers]
        lines.append(b"\n")
        self.out.write(b"".join(lines))

    def response_body(self, chunk: bytes) -> None:
        self.out.write(chunk)

    def response_done(self, trailers: RawHeaderListType) -> None:
        if trailers:
            self.out.write(b"".join(b"%s:%s\n" % field for field in trailers))
        self.out.flush()
        self.loop.stop()

    def error(self, err: HttpError) -> None:
        self.failure = err
        self.loop.stop()


def main(argv: Sequence[str] | None = None, out: BinaryIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    out = out if out is not None else sys.stdout.buffer
    loop = thor.loop.make()
    client = HttpClient(loop)
    client.careful = False  # show what the server sent, as thor 0.17's demo did
    client.connect_timeout = args.timeout
    client.connect_attempts = 1
    client.retry_limit = 0
    client.tls_verify = not args.insecure
    client.tls_ca_file = args.ca_file
    printer = _Printer(out, loop)
    exchange = client.exchange()

    def final(status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        printer.version = exchange.res_version or b"1.1"
        printer.head(status, phrase, headers)

    def interim(status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        conn = exchange.conn
        printer.version = (conn.res_version if conn is not None else None) or b"1.1"
        printer.head(status, phrase, headers)

    exchange.on("response_nonfinal", interim)
    exchange.on("response_start", final)
    exchange.on("response_body", printer.response_body)
    exchange.on("response_done", printer.response_done)
    exchange.on("error", printer.error)
    url = args.url.encode("utf-8", "surrogateescape")
    exchange.request_start(args.method.encode("latin-1"), url, args.header)
    if printer.failure is None:
        exchange.request_done([])
        loop.run()
    client.close()
    loop.close()
    if printer.failure is not None:
        err = printer.failure
        detail = f" ({err.detail})" if err.detail else ""
        print(f"thor.http.client: {err.desc}{detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
