"""``--workers N``: a supervisor process and N worker processes sharing one listening port.

Theory of operation
-------------------
The supervisor binds the port first, so that a port in use is reported before any worker
starts (and port 0 is resolved to a real port). It then starts each worker as
``python -m thor.http <the same arguments> --listen HOST:PORT --workers 1`` with the
``THOR_WORKER`` environment variable naming the pipes it inherits (see ``worker_from_env``).

Sharing the port:

- ``reuseport`` (where SO_REUSEPORT exists, e.g. Linux): the supervisor keeps a socket bound to
  the port but not listening (it holds the port; it is never given connections), and each
  worker binds and listens with SO_REUSEPORT: the kernel spreads new connections across the
  workers, and a dead worker's share goes to the others.
- ``inherit`` (elsewhere, or with ``--inherit-socket``): the supervisor listens, and every
  worker accepts on the inherited socket. The kernel then wakes whichever worker it likes (the
  load may be uneven), but connections waiting in the queue survive a worker's death.

Supervision, on a thor loop: SIGCHLD reaps workers; a worker that exits while the supervisor is
not stopping is started again, at once if it had lived ``stable_after`` seconds, else after a
back-off doubling from ``backoff_min`` up to ``backoff_max`` (a worker that dies on start does
not make the supervisor spin). If a worker dies before the first start-up completed, the
supervisor stops everything and fails (the problem is not transient).

Each worker writes ``ready <pid>`` on its *ready* pipe once it listens; the supervisor announces
the address once every worker is ready. Each worker also inherits the read end of a *lifeline*
pipe whose write end only the supervisor holds: if the supervisor dies (even by SIGKILL), the
workers see end-of-file and shut down gracefully.

SIGTERM or SIGINT: the supervisor sends SIGTERM to every worker (each finishes the requests in
flight: ``HttpServer.graceful_shutdown``) and exits 0 when all have exited; a second signal, or
``grace`` seconds more, kills the ones left. SIGHUP is passed on to the workers when they
reload on it (``thor proxy --config``), and is a SIGTERM otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import thor.loop
from thor.loop import EventSource

from ._common import CliError, WorkerPipes, format_address, say

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

__all__ = ["ENV_VAR", "Supervisor", "WorkerInfo", "worker_from_env"]

#: the environment variable that makes a ``thor`` process a worker
ENV_VAR = "THOR_WORKER"


class WorkerInfo:
    """What a worker process learns from its supervisor (``THOR_WORKER``).

    Attributes:
        index: the worker's slot, 0 to N-1 (kept across restarts).
        pipes: its ready and lifeline pipes.
        listen_fd: the inherited listening socket's fd (``inherit`` mode), or None
            (``reuseport`` mode: bind the port with SO_REUSEPORT).
    """

    def __init__(self, index: int, pipes: WorkerPipes, listen_fd: int | None) -> None:
        self.index = index
        self.pipes = pipes
        self.listen_fd = listen_fd

    def listen_socket(self) -> socket.socket | None:
        """The inherited listening socket, or None in ``reuseport`` mode."""
        if self.listen_fd is None:
            return None
        return socket.socket(fileno=self.listen_fd)


def worker_from_env() -> WorkerInfo | None:
    """The worker's inherited state, or None when this process is not a supervised worker.

    ``THOR_WORKER`` is ``index,ready_fd,lifeline_fd[,listen_fd]``; it is removed from the
    environment once read.
    """
    value = os.environ.pop(ENV_VAR, None)
    if not value:
        return None
    try:
        fields = [int(part) for part in value.split(",")]
    except ValueError:
        raise CliError(f"bad {ENV_VAR} value {value!r}") from None
    if len(fields) not in (3, 4):
        raise CliError(f"bad {ENV_VAR} value {value!r}")
    listen_fd = fields[3] if len(fields) == 4 else None
    return WorkerInfo(fields[0], WorkerPipes(fields[1], fields[2]), listen_fd)


def _share_mode(inherit: bool) -> str:
    return "reuseport" if hasattr(socket, "SO_REUSEPORT") and not inherit else "inherit"


def _hold_port(host: bytes, port: int, mode: str) -> socket.socket:
    """Bind the listen address in the supervisor (see the module docstring).

    Raises:
        CliError: the address cannot be bound (in use...).
    """
    from thor.tcp._listen import _bind_address, server_listen  # noqa: PLC0415

    where = format_address(host, port)
    try:
        if mode == "inherit":
            return server_listen(host, port)
        family, address = _bind_address(host, port)
        # first a plain bind: it fails if anything listens there already, even a process
        # of ours with SO_REUSEPORT (which the holder alone would share the port with)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            bound_port = probe.getsockname()[1]
        holder = socket.socket(family, socket.SOCK_STREAM)
        try:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and not host:
                with contextlib.suppress(OSError):
                    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            holder.bind((address[0], bound_port, *address[2:]))
        except BaseException:
            holder.close()
            raise
        return holder
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot listen on {where}: {reason}") from None


class _Worker(EventSource):
    """One worker process and the read end of its ready pipe."""

    def __init__(self, supervisor: Supervisor, index: int) -> None:
        EventSource.__init__(self, supervisor.loop)
        self.supervisor = supervisor
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False
        self.started_at = 0.0
        self.failures = 0  # quick deaths in a row
        self.ready_fd = -1
        self.restart_event: ScheduledEvent | None = None
        self.admin_port: int | None = None  # its internal metrics endpoint, if it has one

    def start(self) -> None:
        sup = self.supervisor
        self.restart_event = None
        read_fd, write_fd = os.pipe()
        keep = [write_fd, sup.lifeline_read]
        env_value = f"{self.index},{write_fd},{sup.lifeline_read}"
        if sup.mode == "inherit":
            keep.append(sup.sock.fileno())
            env_value += f",{sup.sock.fileno()}"
        env = dict(os.environ)
        env[ENV_VAR] = env_value
        argv = [
            sys.executable,
            "-m",
            "thor.http",
            *sup.argv,
            "--listen",
            format_address(sup.host, sup.port),
            "--workers",
            "1",
        ]
        try:
            self.process = subprocess.Popen(argv, env=env, pass_fds=keep)
        except OSError as exc:  # out of processes or fds: try again later
            os.close(read_fd)
            say(sup.command, f"cannot start a worker ({exc.strerror}); retrying")
            self.restart_event = sup.loop.schedule(sup.backoff_max, self.start)
            return
        finally:
            os.close(write_fd)
        self.ready = False
        self.started_at = sup.loop.time()
        self.ready_fd = read_fd
        os.set_blocking(read_fd, False)
        self.register_fd(read_fd, "fd_readable")

    def handle_fd_readable(self) -> None:
        try:
            data = os.read(self.ready_fd, 128)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data.startswith(b"ready"):
            _, _, admin = data.partition(b" admin=")
            digits = admin.strip()
            self.admin_port = int(digits) if digits.isdigit() else None
            self.ready = True
            self.supervisor.worker_ready(self)
        if not data:
            self.close_pipe()

    # a pipe whose writer is gone reports a hang-up (not always readability) under epoll
    handle_fd_close = handle_fd_readable
    handle_fd_error = handle_fd_readable

    def close_pipe(self) -> None:
        if self.ready_fd >= 0:
            self.unregister_fd()
            os.close(self.ready_fd)
            self.ready_fd = -1

    def signal(self, signum: int) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)


class Supervisor:
    """Starts and supervises the worker processes (see the module docstring).

    Args:
        argv: the command line of a worker (the sub-command and its arguments; ``--listen``
            and ``--workers`` are appended).
        count: how many workers.
        host, port: the listen address.
        command: the sub-command's name, for messages.
        grace: seconds the workers get to finish after SIGTERM before they are killed.
        what: what is served, for the announcement (``"files from /srv"``).
        inherit: share one listening socket (``inherit``) even where SO_REUSEPORT exists.
        reload: SIGHUP is passed on to the workers (they reload); otherwise it shuts down.
        admin: ``(host, port)`` where the supervisor serves the sum of the workers' metrics
            (``_admin.MetricsAggregator``), or None.

    Settings (class attributes):
        stable_after: a worker that lived this long is restarted at once (1.0 s).
        backoff_min, backoff_max: the restart delay after quick deaths (0.1 s doubling to 5 s).
    """

    stable_after: float = 1.0
    backoff_min: float = 0.1
    backoff_max: float = 5.0

    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        host: bytes,
        port: int,
        *,
        command: str,
        grace: float,
        what: str,
        inherit: bool = False,
        reload: bool = False,
        admin: tuple[bytes, int] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.count = count
        self.host = host
        self.command = command
        self.grace = grace
        self.what = what
        self.mode = _share_mode(inherit)
        self.reload = reload
        self.sock = _hold_port(host, port, self.mode)
        self.port = self.sock.getsockname()[1]
        self.loop: LoopBase = thor.loop.make()
        self.lifeline_read, self.lifeline_write = os.pipe()
        self.workers = [_Worker(self, index) for index in range(count)]
        self.started = False  # every worker was ready once
        self.admin = admin
        self.aggregator: Any = None
        self.stopping = False
        self.failed: str | None = None

    def run(self) -> int:
        """Start the workers and supervise them until shut down; returns the exit status."""
        loop = self.loop
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        loop.add_signal_handler(signal.SIGTERM, self.shutdown)
        loop.add_signal_handler(signal.SIGINT, self.shutdown)
        if self.reload:
            loop.add_signal_handler(signal.SIGHUP, self.forward, signal.SIGHUP)
        else:
            loop.add_signal_handler(signal.SIGHUP, self.shutdown)
        try:
            if self.admin is not None:
                self.aggregator = self._serve_admin(*self.admin)
            for worker in self.workers:
                worker.start()
            loop.run()
        finally:
            if self.aggregator is not None:
                self.aggregator.close()
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            for worker in self.workers:  # only after a failure: kill what is left
                worker.signal(signal.SIGKILL)
                if worker.process is not None:
                    worker.process.wait()
                worker.close_pipe()
            os.close(self.lifeline_read)
            os.close(self.lifeline_write)
            self.sock.close()
            loop.close()
        if self.failed is not None:
            raise CliError(self.failed)
        return 0

    def _serve_admin(self, host: bytes, port: int) -> Any:
        """The metrics endpoint adding up the workers' (``_admin.py``)."""
        from ._admin import MetricsAggregator  # noqa: PLC0415 - only with --admin

        try:
            return MetricsAggregator(host, port, self.loop, self.admin_ports)
        except ImportError as exc:
            raise CliError(f"--admin: {exc}") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            where = format_address(host, port)
            raise CliError(f"cannot listen on {where} (--admin): {reason}") from None

    def admin_ports(self) -> list[tuple[int, int]]:
        """``(slot, port)`` of the internal metrics endpoint of every worker ready now."""
        return [
            (w.index, w.admin_port) for w in self.workers if w.ready and w.admin_port is not None
        ]

    def worker_ready(self, worker: _Worker) -> None:
        """A worker listens: announce the address once they all do."""
        if not self.started and all(w.ready for w in self.workers):
            self.started = True
            pids = ", ".join(str(w.process.pid) for w in self.workers if w.process is not None)
            metrics = ""
            if self.aggregator is not None:
                assert self.admin is not None
                address = format_address(self.admin[0], self.aggregator.server.port)
                metrics = f"; metrics on http://{address}/metrics"
            say(
                self.command,
                f"{self.what} on http://{format_address(self.host, self.port)} "
                f"({self.count} workers: {pids}; supervisor pid {os.getpid()}){metrics}",
            )
        elif self.started and worker.process is not None:
            say(self.command, f"worker {worker.process.pid} ready")

    def reap(self) -> None:
        """SIGCHLD: collect exited workers; restart them unless stopping."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            worker.process = None
            worker.close_pipe()
            status = process.returncode
            how = f"signal {-status}" if status < 0 else f"status {status}"
            if self.stopping:
                continue
            if not self.started:
                self.failed = f"worker {process.pid} exited ({how}) while starting"
                self.stopping = True
                for other in self.workers:
                    other.signal(signal.SIGTERM)
                continue
            lived = self.loop.time() - worker.started_at
            if lived >= self.stable_after:
                worker.failures = 0
                delay = 0.0
            else:
                delay = min(self.backoff_min * 2**worker.failures, self.backoff_max)
                worker.failures += 1
            say(
                self.command,
                f"worker {process.pid} exited ({how}); restarting"
                + (f" in {delay:.1f}s" if delay else ""),
            )
            worker.restart_event = self.loop.schedule(delay, worker.start)
        if self.stopping and all(w.process is None for w in self.workers):
            self.loop.stop()

    def shutdown(self) -> None:
        """SIGTERM / SIGINT: stop the workers gracefully (a second signal kills them)."""
        if self.stopping:
            self.forward(signal.SIGKILL)
            return
        self.stopping = True
        live = sum(1 for worker in self.workers if worker.process is not None)
        say(self.command, f"shutting down {live} workers (signal again to stop them now)")
        for worker in self.workers:
            if worker.restart_event is not None:
                worker.restart_event.delete()
                worker.restart_event = None
        self.forward(signal.SIGTERM)
        self.loop.schedule(self.grace + 1.0, self.forward, signal.SIGKILL)
        self.reap()

    def forward(self, signum: int) -> None:
        """Send ``signum`` to every live worker."""
        for worker in self.workers:
            worker.signal(signum)
