"""Pieces every ``thor`` sub-command shares: listen addresses, failures, running a server.

Theory of operation
-------------------
A sub-command parses its arguments (argparse reports usage errors itself, exit status 2), then
*runs*: anything that goes wrong at run time (a port in use, a file that cannot be read) is a
``CliError`` carrying a one-line message, which ``main`` prints as ``thor <command>: <message>``
with exit status 1.

``run_until_shutdown`` is the single-process life cycle shared by ``thor serve`` and ``thor
proxy``: SIGTERM and SIGINT start a graceful shutdown of the servers (requests already
received are answered, then the connections close); a second signal, or ``grace`` seconds
without the servers finishing, stops the loop at once. A worker process started by the
supervisor (``_workers.py``) also reports readiness on an inherited pipe and shuts down when
its *lifeline* pipe reaches end-of-file (the supervisor died).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from thor.loop import EventSource

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from ..server import HttpServer

__all__ = [
    "CliError",
    "ListenAddress",
    "WorkerPipes",
    "close_server",
    "format_address",
    "parse_listen",
    "parse_listen_arg",
    "run_until_shutdown",
]

#: the host of a listen address given as a bare port
DEFAULT_HOST = b"127.0.0.1"

ListenAddress = tuple[bytes, int]


class CliError(Exception):
    """A run-time failure of a sub-command: one line for the user, exit status 1."""


def parse_listen(text: str) -> ListenAddress:
    """Parse a listen address: ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` (every address) or
    ``PORT`` (127.0.0.1). Port 0 picks a free port.

    Raises:
        ValueError: the text is not one of those forms (the message names it).
    """
    value = text.strip()
    if value.isdigit():
        host, port_text = DEFAULT_HOST.decode(), value
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            raise ValueError(f"bad listen address {text!r}: expected ADDR:PORT")
        if host.startswith("["):
            if not host.endswith("]") or len(host) < 3:
                raise ValueError(f"bad listen address {text!r}: unbalanced [ ] around IPv6")
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"bad listen address {text!r}: write an IPv6 address as [ADDR]:PORT")
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise ValueError(f"bad listen address {text!r}: the port must be 0-65535")
    if any(ch.isspace() for ch in host) or not host.isascii():
        raise ValueError(f"bad listen address {text!r}: bad host")
    return host.encode("ascii"), int(port_text)


def parse_listen_arg(text: str) -> ListenAddress:
    """``parse_listen`` for argparse (a usage error, exit status 2, when it fails)."""
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_address(host: bytes, port: int) -> str:
    """``host:port`` for messages and URLs (IPv6 bracketed; every address shown as 0.0.0.0)."""
    text = host.decode("ascii") if host else "0.0.0.0"
    if ":" in text:
        text = f"[{text}]"
    return f"{text}:{port}"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return value


def port_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated ports (``443,8443``)."""
    ports = []
    for part in text.split(","):
        port = part.strip()
        if not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"bad port {port!r} in {text!r} (1-65535)")
        ports.append(int(port))
    return tuple(ports)


def say(command: str, message: str) -> None:
    """One line on stderr, ``thor <command>: <message>``, in one write (so that the lines of
    workers sharing stderr do not interleave)."""
    sys.stderr.write(f"thor {command}: {message}\n")
    sys.stderr.flush()


class _Lifeline(EventSource):
    """Watches the read end of the supervisor's lifeline pipe: end-of-file means it died."""

    def __init__(self, fd: int, loop: LoopBase, gone: Callable[[], object]) -> None:
        EventSource.__init__(self, loop)
        self.fd = fd
        self.gone = gone
        os.set_blocking(fd, False)
        self.register_fd(fd, "fd_readable")

    def handle_fd_readable(self) -> None:
        try:
            data = os.read(self.fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.unregister_fd()
            self.gone()

    # a pipe whose writer is gone reports a hang-up (not always readability) under epoll
    handle_fd_close = handle_fd_readable
    handle_fd_error = handle_fd_readable


class WorkerPipes:
    """The pipes a worker process inherits from its supervisor (see ``_workers.py``).

    Args:
        ready_fd: written ``ready <pid>`` (then closed) once the worker listens; with
            ``admin=<port>`` after it when the worker serves its metrics on that 127.0.0.1
            port (the supervisor serves them all added up).
        lifeline_fd: read end of a pipe the supervisor holds open; end-of-file means the
            supervisor is gone, and the worker shuts down.
    """

    def __init__(self, ready_fd: int | None, lifeline_fd: int | None) -> None:
        self.ready_fd = ready_fd
        self.lifeline_fd = lifeline_fd
        #: the 127.0.0.1 port of this worker's own metrics endpoint, reported with ``ready``
        self.admin_port: int | None = None

    def report_ready(self) -> None:
        """Tell the supervisor this worker listens (once)."""
        fd, self.ready_fd = self.ready_fd, None
        if fd is not None:
            admin = b"" if self.admin_port is None else b" admin=%d" % self.admin_port
            try:
                os.write(fd, b"ready %d%b\n" % (os.getpid(), admin))
            except OSError:
                pass
            os.close(fd)


def close_server(server: HttpServer) -> None:
    """Stop listening and close every connection left (after the grace period ran out)."""
    server.shutdown()
    for conn in list(server.connections):
        conn.close()


def run_until_shutdown(
    loop: LoopBase,
    servers: Sequence[HttpServer],
    *,
    command: str,
    grace: float,
    announce: str | None,
    worker: WorkerPipes | None = None,
    on_reload: Callable[[], object] | None = None,
    on_shutdown: Callable[[], object] | None = None,
) -> int:
    """Run ``loop`` until the servers have shut down gracefully; returns the exit status (0).

    Args:
        loop: the loop the servers run on.
        servers: the HTTP servers to shut down (the first one is announced).
        command: the sub-command's name, for messages.
        grace: seconds a graceful shutdown may take before the loop stops anyway.
        announce: a line printed (``thor <command>: <line>``) once the first server listens.
        worker: the pipes of a supervised worker, or None in single-process mode.
        on_reload: called on SIGHUP; when None, SIGHUP shuts down like SIGTERM.
        on_shutdown: called when the shutdown starts (close admin listeners, health checks...).
    """
    state = {"stopping": False, "left": len(servers)}

    def stopped() -> None:
        state["left"] -= 1
        if state["left"] <= 0:
            loop.stop()

    def shutdown() -> None:
        if state["stopping"]:  # a second signal: stop now
            loop.stop()
            return
        state["stopping"] = True
        if worker is None:
            say(command, "shutting down: requests in flight finish (signal again to stop now)")
        if on_shutdown is not None:
            on_shutdown()
        for server in servers:
            server.graceful_shutdown()
        loop.schedule(grace, loop.stop)

    def started() -> None:
        if announce is not None:
            say(command, announce)
        if worker is not None:
            worker.report_ready()

    for server in servers:
        server.on("stop", stopped)
    if servers:
        servers[0].once("start", started)
    loop.add_signal_handler(signal.SIGTERM, shutdown)
    if worker is None:
        loop.add_signal_handler(signal.SIGINT, shutdown)
    else:
        # Ctrl-C reaches the whole process group: the supervisor turns it into a SIGTERM for
        # each worker (were it a second signal here, the worker would stop at once)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGHUP reloads when there is something to reload, else it is a SIGTERM (a closed
    # terminal: finish what is in flight rather than die)
    loop.add_signal_handler(signal.SIGHUP, on_reload if on_reload is not None else shutdown)
    if worker is not None and worker.lifeline_fd is not None:
        _Lifeline(worker.lifeline_fd, loop, shutdown)
    try:
        loop.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    return 0
