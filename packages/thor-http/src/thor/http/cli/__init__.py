"""thor.http.cli: the ``thor`` command (also ``python -m thor.http``).

    thor serve [--listen ADDR:PORT] [DIR]          static files from DIR, or hello world
    thor get URL [-o FILE]                         fetch a URL (a progress bar with -o)
    thor proxy --listen ADDR:PORT --upstream URL[,URL...]   a load-balanced reverse proxy
    thor proxy --forward                           a forward proxy (CONNECT to port 443)
    thor proxy --config FILE.toml                  routes, upstreams, limits in one file

``serve`` and ``proxy`` take ``--workers N`` (N processes sharing the port, supervised).
Exit status: 0 after a graceful shutdown, 1 on a run-time failure (one line on stderr), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from . import _get, _proxy, _serve
from ._common import CliError, say

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``thor`` argument parser, with its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="thor",
        description="Serve files, fetch URLs and run HTTP proxies with thor.",
    )
    parser.add_argument("--version", action="version", version=f"thor {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _serve.add_parser(subparsers)
    _get.add_parser(subparsers)
    _proxy.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``thor`` command line; returns the exit status (0, 1 on failure, 2 on usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 1
    command: str = args.command
    logging.basicConfig(format=f"thor {command}: %(name)s: %(levelname)s: %(message)s")
    try:
        if command == "serve":
            return _serve.run(args, argv)
        if command == "get":
            return _get.run(args)
        return _proxy.run(args, argv, parser)
    except CliError as exc:
        say(command, str(exc))
        return 1
    except SystemExit as exc:  # a usage error found after parsing (parser.error)
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:  # Ctrl-C outside the loop (while starting up)
        return 130
