"""``thor get URL [-o FILE]``: fetch a URL, like ``python -m thor.http.client``.

Without ``-o`` the status line, the header fields and the body go to stdout exactly as the
client command prints them (its printer is reused). With ``-o FILE`` only the body is written,
to ``FILE.part`` first and renamed to FILE once complete (a failed download never leaves a
truncated FILE behind); a response other than 2xx is not saved (exit status 1). ``-o -``
writes the body to stdout.

While saving, a progress bar (bytes, rate, ETA when the length is known) is drawn on stderr by
tqdm, only when stderr is a terminal; tqdm comes with the ``cli`` extra and is imported only
then. Without it, one line says how to get it, and the download goes on quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import thor.loop

from .._abnf import parse_decimal
from ..client.__main__ import (
    ResponsePrinter,
    add_fetch_arguments,
    describe_error,
    fetch_client,
)
from ..error import HttpError, UrlError
from ..uri import parse_uri
from ._common import CliError

if TYPE_CHECKING:
    from .._headers import RawHeaderListType

__all__ = ["Saver", "add_parser", "progress_bar", "run", "url_arg"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``get`` sub-command."""
    parser = subparsers.add_parser(
        "get",
        help="fetch a URL",
        description="Fetch an http(s) URL and print the response, or save its body (-o).",
    )
    parser.add_argument("url", type=url_arg, help="the absolute http:// or https:// URL")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="save the body to FILE (a progress bar on a terminal); '-' for stdout",
    )
    add_fetch_arguments(parser)


def url_arg(text: str) -> str:
    """argparse type: an absolute http(s) URL thor's client accepts (a usage error naming the
    URL otherwise)."""
    try:
        parse_uri(text.encode("utf-8", "surrogateescape"))
    except UrlError as exc:
        reason = exc.detail or exc.desc
        raise argparse.ArgumentTypeError(f"bad URL {text!r}: {reason}") from None
    return text


def progress_bar(total: int | None, name: str, stream: IO[str]) -> Any:
    """A tqdm progress bar on ``stream`` for a download of ``total`` bytes (None: unknown),
    or None when tqdm is not installed (a one-line note says so)."""
    try:  # optional: the 'cli' extra (imported here only, so the module imports without it)
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        print(
            "thor get: no progress bar: install tqdm (pip install 'thor-http[cli]')",
            file=stream,
        )
        return None
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        size = os.terminal_size((0, 0))
    # a terminal that reports no size (0 x 0: some ptys) gets 80 x 24: tqdm would otherwise
    # hide the bar as if it were below the bottom line
    sized = size.columns > 0 and size.lines > 0
    return tqdm(
        total=total,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=stream,
        dynamic_ncols=sized,
        ncols=None if sized else 80,
        nrows=None if sized else 24,
        leave=True,
    )


class Saver:
    """Writes a response body to a file, with an optional progress bar.

    Args:
        path: the file to write, or ``"-"`` for stdout.
        loop: the loop to stop when the response ends.
        show_progress: draw a progress bar on stderr.
    """

    def __init__(self, path: str, loop: thor.loop.LoopBase, show_progress: bool) -> None:
        self.path = path
        self.loop = loop
        self.show_progress = show_progress
        self.failure: str | None = None
        self.file: BinaryIO | None = None
        self.bar: Any = None
        self.received = 0

    @property
    def part(self) -> str:
        """Where the body is written until it is complete."""
        return self.path + ".part"

    def start(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        """The response head: open the file (2xx) or fail."""
        if not status.startswith(b"2"):
            self.failure = f"{self.path}: the server answered {status.decode()} " + (
                phrase.decode("latin-1")
            )
            self.loop.stop()
            return
        try:
            if self.path == "-":
                self.file = sys.stdout.buffer
            else:
                self.file = open(self.part, "wb")  # noqa: SIM115 - closed in finish()
        except OSError as exc:
            self.failure = f"cannot write {self.part}: {exc.strerror}"
            self.loop.stop()
            return
        if self.show_progress:
            total = None
            for name, value in headers:
                if name.lower() == b"content-length":
                    total = parse_decimal(value.strip())
            self.bar = progress_bar(total, os.path.basename(self.path), sys.stderr)

    def body(self, chunk: bytes) -> None:
        """Part of the body: write it and move the bar."""
        if self.file is None:
            return
        try:
            self.file.write(chunk)
        except OSError as exc:
            self.failure = f"cannot write {self.part}: {exc.strerror}"
            self.loop.stop()
            return
        self.received += len(chunk)
        if self.bar is not None:
            self.bar.update(len(chunk))

    def done(self, trailers: RawHeaderListType) -> None:
        """The body is complete."""
        self.loop.stop()

    def error(self, err: HttpError) -> None:
        """The exchange failed."""
        self.failure = describe_error(err)
        self.loop.stop()

    def finish(self) -> None:
        """Close the file; rename it into place, or remove it after a failure."""
        if self.bar is not None:
            self.bar.close()
        file, self.file = self.file, None
        if file is None or self.path == "-":
            if file is not None:
                file.flush()
            return
        file.close()
        if self.failure is None:
            os.replace(self.part, self.path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self.part)


def run(args: argparse.Namespace) -> int:
    """Run ``thor get`` with parsed ``args``."""
    loop = thor.loop.make()
    client = fetch_client(args, loop)
    exchange = client.exchange()
    saver: Saver | None = None
    printer: ResponsePrinter | None = None
    if args.output is not None:
        saver = Saver(args.output, loop, show_progress=sys.stderr.isatty())
        exchange.on("response_start", saver.start)
        exchange.on("response_body", saver.body)
        exchange.on("response_done", saver.done)
        exchange.on("error", saver.error)
    else:
        printer = ResponsePrinter(sys.stdout.buffer, loop)
        printer.attach(exchange)
    url = args.url.encode("utf-8", "surrogateescape")
    try:
        exchange.request_start(args.method.encode("latin-1"), url, args.header)
        if (printer is None or printer.failure is None) and (
            saver is None or saver.failure is None
        ):
            exchange.request_done([])
            loop.run()
    except BaseException:
        if saver is not None and saver.failure is None:
            saver.failure = "interrupted"
        raise
    finally:
        if saver is not None:
            saver.finish()
        client.close()
        loop.close()
    if printer is not None:
        closed = printer.output_failure()
        if closed is not None:
            raise CliError(closed)
        if printer.failure is not None:
            raise CliError(describe_error(printer.failure))
    message = saver.failure if saver is not None else None
    if message is not None:
        raise CliError(message)
    return 0
