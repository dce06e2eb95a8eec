"""``python -m thor.http.client URL``: fetch a URL and print the response.

Prints the status line, the header fields (``name:value``, the value exactly as received), an
empty line and the body, to stdout, as bytes; interim (1xx) responses are printed the same way
before the final one. On failure, one line goes to stderr (``thor.http.client: <what>
(<detail>)``) and the exit status is 1; a usage error exits with 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import BinaryIO

import thor.loop

from .._abnf import is_token
from .._headers import RawHeaderListType
from ..error import HttpError
from ._client import HttpClient
from ._exchange import HttpClientExchange


def _header_arg(text: str) -> tuple[bytes, bytes]:
    name, colon, value = text.partition(":")
    if not colon or not name:
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return name.strip().encode("latin-1"), value.strip().encode("latin-1")


def _method_arg(text: str) -> str:
    if not is_token(text.encode("latin-1", "replace")):
        raise argparse.ArgumentTypeError(f"a method is a token (GET, POST...), not {text!r}")
    return text


def _timeout_arg(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"a timeout is a number of seconds > 0, not {text!r}")
    return seconds


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the request options (``-X``, ``-H``, ``-k``, ``--ca-file``, ``--timeout``) to
    ``parser``; shared with ``thor get``."""
    parser.add_argument(
        "-X", "--method", type=_method_arg, default="GET", help="request method (GET)"
    )
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
        "--timeout", type=_timeout_arg, default=10.0, help="connect and read timeout, seconds (10)"
    )


def fetch_client(args: argparse.Namespace, loop: thor.loop.LoopBase) -> HttpClient:
    """An HttpClient set up from ``add_fetch_arguments``' options: one attempt, no retry, and
    sloppy responses shown rather than refused (as thor 0.17's demo did)."""
    client = HttpClient(loop)
    client.careful = False
    client.connect_timeout = args.timeout
    client.connect_attempts = 1
    client.retry_limit = 0
    client.tls_verify = not args.insecure
    client.tls_ca_file = args.ca_file
    return client


def describe_error(err: HttpError) -> str:
    """``desc (detail)``: the one line a command prints for a failed fetch."""
    return f"{err.desc} ({err.detail})" if err.detail else err.desc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m thor.http.client",
        description="Fetch an http(s) URL with thor and print the response.",
    )
    parser.add_argument("url", help="the absolute http:// or https:// URL")
    add_fetch_arguments(parser)
    return parser


class ResponsePrinter:
    """Writes an exchange's response to ``out`` (status line, fields as received, an empty line,
    the body; interim responses the same way) and remembers how the fetch ended
    (``failure``); stops ``loop`` at the end. Shared with ``thor get``."""

    def __init__(self, out: BinaryIO, loop: thor.loop.LoopBase) -> None:
        self.out = out
        self.loop = loop
        self.failure: HttpError | None = None
        self.output_closed = False  # the output went away (a pipe whose reader exited)
        self._exchange: HttpClientExchange | None = None

    def attach(self, exchange: HttpClientExchange) -> None:
        """Print what ``exchange`` receives."""
        self._exchange = exchange

        def final(status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
            self.head(exchange.res_version, status, phrase, headers)

        def interim(status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
            conn = exchange.conn
            self.head(conn.res_version if conn is not None else None, status, phrase, headers)

        exchange.on("response_nonfinal", interim)
        exchange.on("response_start", final)
        exchange.on("response_body", self.response_body)
        exchange.on("response_done", self.response_done)
        exchange.on("error", self.error)

    def head(
        self, version: bytes | None, status: bytes, phrase: bytes, headers: RawHeaderListType
    ) -> None:
        """Write a response head."""
        lines = [b"HTTP/%s %s %s\n" % (version or b"1.1", status, phrase)]
        lines += [b"%s:%s\n" % field for field in headers]
        lines.append(b"\n")
        self.write(b"".join(lines))

    def response_body(self, chunk: bytes) -> None:
        """Write part of the body."""
        self.write(chunk)

    def response_done(self, trailers: RawHeaderListType) -> None:
        """Write the trailers, if any; stop the loop."""
        if trailers:
            self.write(b"".join(b"%s:%s\n" % field for field in trailers))
        self.write(b"", flush=True)
        self.loop.stop()

    def output_failure(self) -> str | None:
        """Once the fetch is over: why the output failed (it was closed), or None. Standard
        output that was closed is pointed at /dev/null, so that the interpreter's own flush at
        exit does not fail again."""
        if not self.output_closed:
            return None
        if self.out is sys.stdout.buffer:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return "the output was closed before the response ended"

    def write(self, data: bytes, flush: bool = False) -> None:
        """Write to the output; once it is closed (``head`` exited), abandon the exchange and
        stop the loop."""
        if self.output_closed:
            return
        try:
            if data:
                self.out.write(data)
            if flush:
                self.out.flush()
        except BrokenPipeError:
            self.output_closed = True
            if self._exchange is not None:
                self._exchange.cancel()
            self.loop.stop()

    def error(self, err: HttpError) -> None:
        """Remember the failure; stop the loop."""
        self.failure = err
        self.loop.stop()


def main(argv: Sequence[str] | None = None, out: BinaryIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    out = out if out is not None else sys.stdout.buffer
    loop = thor.loop.make()
    client = fetch_client(args, loop)
    printer = ResponsePrinter(out, loop)
    exchange = client.exchange()
    printer.attach(exchange)
    url = args.url.encode("utf-8", "surrogateescape")
    exchange.request_start(args.method.encode("latin-1"), url, args.header)
    if printer.failure is None:
        exchange.request_done([])
        loop.run()
    client.close()
    loop.close()
    closed = printer.output_failure()
    if closed is not None:
        print(f"thor.http.client: {closed}", file=sys.stderr)
        return 1
    if printer.failure is not None:
        print(f"thor.http.client: {describe_error(printer.failure)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
