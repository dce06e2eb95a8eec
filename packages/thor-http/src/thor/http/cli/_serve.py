"""``thor serve [--listen ADDR:PORT] [DIR]``: static files from DIR, or hello world."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import thor.loop

from ._common import (
    CliError,
    close_server,
    format_address,
    parse_listen_arg,
    positive_int,
    run_until_shutdown,
)
from ._static import StaticFiles, hello_world
from ._workers import Supervisor, WorkerInfo, worker_from_env

if TYPE_CHECKING:
    from .._headers import RawHeaderListType
    from ..server import HttpServer, HttpServerExchange

__all__ = ["add_parser", "run"]

DEFAULT_LISTEN = "127.0.0.1:8000"


def add_common_server_options(parser: argparse.ArgumentParser, default_listen: str) -> None:
    """The options ``thor serve`` and ``thor proxy`` share: listen, workers, grace, PID."""
    parser.add_argument(
        "--listen",
        type=parse_listen_arg,
        default=None,
        metavar="ADDR:PORT",
        help=f"where to listen: HOST:PORT, [IPv6]:PORT, :PORT (all addresses) or PORT "
        f"({default_listen})",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes sharing the port, supervised (1: no supervisor)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM / Ctrl-C, how long requests in flight may take to finish (30)",
    )
    parser.add_argument(
        "--inherit-socket",
        action="store_true",
        help="with --workers: one listening socket inherited by every worker, instead of one "
        "SO_REUSEPORT socket each",
    )
    parser.add_argument(
        "--worker-header",
        action="store_true",
        help="add 'X-Thor-Worker: <pid>' to every response (to see which worker answered)",
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the files of a directory (or hello world)",
        description="Serve the files under DIR (GET and HEAD), or 'Hello, world!' without DIR.",
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="the directory to serve")
    add_common_server_options(parser, DEFAULT_LISTEN)


def make_server(
    host: bytes,
    port: int,
    loop: thor.loop.LoopBase,
    worker: WorkerInfo | None,
    server_class: type[HttpServer] | None = None,
) -> HttpServer:
    """An HttpServer (or ``server_class``) on ``host:port``: in a ``worker``, the listening
    socket it inherited or else an SO_REUSEPORT one of its own.

    Raises:
        CliError: the address cannot be used (in use, not local, no permission).
    """
    from ..server import HttpServer  # noqa: PLC0415

    cls = server_class or HttpServer
    sock = worker.listen_socket() if worker is not None else None
    try:
        if sock is not None:
            return cls(host, port, loop, sock=sock)
        return cls(host, port, loop, reuse_port=worker is not None)
    except (OSError, UnicodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot listen on {format_address(host, port)}: {reason}") from None


def worker_header(enabled: bool) -> RawHeaderListType:
    """``[(b"X-Thor-Worker", pid)]`` when enabled, else ``[]``."""
    return [(b"X-Thor-Worker", b"%d" % os.getpid())] if enabled else []


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``thor serve`` with parsed ``args`` (``argv``: the command line, for workers)."""
    host, port = args.listen if args.listen is not None else (b"127.0.0.1", 8000)
    root = args.dir
    if root is not None:
        if not os.path.isdir(root):
            raise CliError(f"{root!r} is not a directory")
        if not os.access(root, os.R_OK | os.X_OK):
            raise CliError(f"{root!r} cannot be read")
    what = f"serving files from {os.path.realpath(root)}" if root else "serving hello world"
    worker = worker_from_env()
    if worker is None and (args.workers or 1) > 1:
        return Supervisor(
            argv,
            args.workers,
            host,
            port,
            command="serve",
            grace=args.grace,
            what=what,
            inherit=args.inherit_socket,
        ).run()
    loop = thor.loop.make()
    server = None
    try:
        server = make_server(host, port, loop, worker)
        extra = worker_header(args.worker_header)
        if root is not None:
            server.on("exchange", StaticFiles(root, loop, extra))
        else:

            def hello(exchange: HttpServerExchange) -> None:
                hello_world(exchange, extra)

            server.on("exchange", hello)
        announce = None
        if worker is None:
            where = format_address(host, server.port)
            announce = f"{what} on http://{where} (pid {os.getpid()})"
        return run_until_shutdown(
            loop,
            [server],
            command="serve",
            grace=args.grace,
            announce=announce,
            worker=worker.pipes if worker is not None else None,
        )
    finally:
        if server is not None:
            close_server(server)
        loop.close()
