"""``thor proxy``: a load-balanced reverse proxy, a forward proxy, or one set up by a file.

    thor proxy --listen ADDR:PORT --upstream URL[,URL...] [--balance POLICY]
               [--eject-after N] [--eject-for SECONDS]
    thor proxy --forward [--connect-ports 443,...]
    thor proxy --config FILE.toml

Each runs one ``HttpServer`` with a ``ReverseProxy`` (or ``ForwardProxy``) from
``thor.http.proxy`` on it, and optionally an access log (``--access-log``) and a Prometheus
admin listener (``--admin``; with ``--workers N``, the supervisor serves it, adding up the
metrics of every worker, which it fetches from their internal endpoints: ``_admin.py``). A
file with a ``[forward]`` table describes a forward proxy. With ``--config``, SIGHUP reloads
the file: a valid file replaces the routing (``SwitchableBalancer``: requests in flight keep
their upstream) or a forward proxy's CONNECT ports, the timeouts and the upstream-side
settings; a file with errors, or one that turns a reverse proxy into a forward one or back, is
refused with its problems logged, and the running configuration stays. The listen address, the
workers, the access log, the admin listener and the ``[limits]`` apply at start only (a reload
says when they changed).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import thor.loop

from ._common import (
    CliError,
    ListenAddress,
    close_server,
    format_address,
    parse_listen,
    port_list,
    run_until_shutdown,
    say,
)
from ._config import (
    ACCESS_LOG_FORMATS,
    DEFAULT_CONNECT_PORTS,
    TIMEOUTS,
    ConfigError,
    GroupSpec,
    ProxyConfig,
    RouteSpec,
    ServerSpec,
    check_upstream_url,
    load_config,
    parse_policy,
)
from ._reload import SwitchableBalancer
from ._serve import add_common_server_options, make_server, worker_header
from ._workers import Supervisor, WorkerInfo, worker_from_env

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from .._headers import RawHeaderListType
    from ..client import HttpClient
    from ..proxy import ProxyBase, ProxyExchange
    from ..proxy._routing import Router
    from ..server import HttpServer

__all__ = ["add_parser", "build_router", "run"]

DEFAULT_LISTEN = "127.0.0.1:8080"

EXAMPLE_CONFIG = """\
a --config file (every key is described in thor.http.cli._config):

  listen = "127.0.0.1:8080"

  [timeouts]
  upstream_connect = 3

  [upstreams.app]
  servers = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
  balance = "least_conn"

  [upstreams.static]
  servers = ["http://127.0.0.1:8003"]

  [[routes]]
  path = "/static"
  upstream = "static"

  [[routes]]
  upstream = "app"

a forward proxy has a [forward] table instead of upstreams and routes:

  [forward]
  connect_ports = [443, 8443]
"""
_PARSER: list[argparse.ArgumentParser] = []


def _upstream_list(text: str) -> list[str]:
    urls = [part.strip() for part in text.split(",") if part.strip()]
    if not urls:
        raise argparse.ArgumentTypeError("expected one or more upstream URLs")
    for url in urls:
        problem = check_upstream_url(url)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"upstream {problem}")
    return urls


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return int(text)


def _seconds_or_off(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {text!r}")
    return seconds


def _policy(text: str) -> tuple[str, str]:
    policy = parse_policy(text)
    if policy is None:
        raise argparse.ArgumentTypeError(
            f"unknown policy {text!r} (round_robin, least_conn, hash or hash:<header name>)"
        )
    return policy


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``proxy`` sub-command."""
    parser = subparsers.add_parser(
        "proxy",
        help="run a reverse proxy (--upstream), a forward proxy (--forward) or a --config file",
        description="Run an HTTP reverse proxy in front of --upstream servers, a forward proxy "
        "(--forward), or one described by a TOML file (--config; SIGHUP reloads it).",
        epilog=EXAMPLE_CONFIG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--upstream",
        type=_upstream_list,
        action="append",
        metavar="URL[,URL...]",
        help="the origin servers to balance across (repeatable)",
    )
    mode.add_argument("--forward", action="store_true", help="a forward proxy (with CONNECT)")
    mode.add_argument("--config", metavar="FILE.toml", help="routes, upstreams, limits, timeouts")
    parser.add_argument(
        "--balance",
        type=_policy,
        default=None,
        metavar="POLICY",
        help="round_robin (default), least_conn, hash (client address) or hash:<header>",
    )
    parser.add_argument(
        "--eject-after",
        type=_count,
        default=None,
        metavar="N",
        help="consecutive failures that eject an upstream (5; 0: never eject)",
    )
    parser.add_argument(
        "--eject-for",
        type=_seconds_or_off,
        default=None,
        metavar="SECONDS",
        help="how long an ejected upstream is left out (10; 0: never eject)",
    )
    parser.add_argument(
        "--connect-ports",
        type=port_list,
        default=None,
        metavar="PORT[,PORT...]",
        help="ports a forward proxy tunnels CONNECT to (443)",
    )
    parser.add_argument(
        "--access-log", metavar="FILE|-", help="append an access log line per request ('-': stdout)"
    )
    parser.add_argument(
        "--access-log-format",
        choices=ACCESS_LOG_FORMATS,
        default=None,
        help="common log format (default), extended with upstream and times, or JSON lines",
    )
    parser.add_argument(
        "--admin",
        type=_admin_arg,
        metavar="ADDR:PORT",
        help="serve Prometheus metrics at GET /metrics there (needs the 'metrics' extra; with "
        "--workers, the sum over all workers)",
    )
    parser.add_argument(
        "--trusted-hops",
        type=_trusted_hops,
        metavar="NET[,NET...]",
        help="addresses or networks whose Forwarded / X-Forwarded-For fields are believed",
    )
    parser.add_argument(
        "--preserve-host",
        action="store_true",
        help="send the client's Host upstream (instead of the upstream's own)",
    )
    parser.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="every connection starts with a PROXY protocol v1/v2 header (behind a balancer)",
    )
    add_common_server_options(parser, DEFAULT_LISTEN)
    _PARSER[:] = [parser]


def _admin_arg(text: str) -> ListenAddress:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _usage_error(message: str) -> None:
    _PARSER[0].error(message)  # exits with status 2


# -- building the proxy -----------------------------------------------------------------------


def build_router(config: ProxyConfig, loop: LoopBase, client: HttpClient) -> Router:
    """The Router (with its UpstreamGroups, health checks started) a configuration describes.

    Raises:
        ValueError: a value the balancing classes refuse (the message names it).
    """
    from ..proxy._balance import Upstream, UpstreamGroup  # noqa: PLC0415
    from ..proxy._routing import Route, Router  # noqa: PLC0415

    groups: dict[str, UpstreamGroup] = {}
    try:
        for name, spec in config.groups.items():
            group = UpstreamGroup(
                [Upstream(s.url, max_conns=s.max_conns, weight=s.weight) for s in spec.servers],
                spec.policy,
                hash_key=spec.hash_key,
                loop=loop,
                queue_limit=spec.queue_limit,
                queue_timeout=spec.queue_timeout,
                eject_after=spec.eject_after,
                eject_for=spec.eject_for,
            )
            groups[name] = group
            if spec.health_check is not None:
                group.start_health_checks(
                    client, spec.health_check.encode("ascii"), spec.health_interval
                )
        return Router(
            Route(
                host=route.host.encode("ascii") if route.host is not None else None,
                path_prefix=route.path.encode("ascii"),
                group=groups[route.upstream],
            )
            for route in config.routes
        )
    except BaseException:
        for group in groups.values():
            group.close()
        raise


def _command_line_config(args: argparse.Namespace) -> ProxyConfig:
    """The configuration the command line describes (``--upstream``: one group and one route
    to it, ``--balance``, ``--eject-after``, ``--eject-for``), or the ``--config`` file's; then
    the flags for ``[proxy]`` settings, which win over the file.

    Raises:
        ConfigError: the file cannot be read or is not valid.
    """
    config = load_config(args.config) if args.config else ProxyConfig("command line")
    if args.upstream:
        policy, hash_key = args.balance or ("round_robin", "client")
        urls = [url for group in args.upstream for url in group]
        group = GroupSpec(
            "default", [ServerSpec(url) for url in urls], policy=policy, hash_key=hash_key
        )
        if args.eject_after is not None:
            group.eject_after = args.eject_after
        if args.eject_for is not None:
            if args.eject_for > 0:
                group.eject_for = args.eject_for
            else:
                group.eject_after = 0  # --eject-for 0: ejection off
        config.groups["default"] = group
        config.routes.append(RouteSpec(None, "/", "default"))
    if args.trusted_hops:
        config.proxy_settings["trusted_hops"] = args.trusted_hops
    if args.preserve_host:
        config.proxy_settings["preserve_host"] = True
    if args.proxy_protocol:
        config.server_settings["proxy_protocol"] = True
    return config


def _trusted_hops(text: str) -> tuple[str, ...]:
    hops = tuple(part.strip() for part in text.split(",") if part.strip())
    for hop in hops:
        try:
            ipaddress.ip_network(hop, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad trusted hop {hop!r}: expected an IP address or network"
            ) from None
    return hops


def _reverse_what(config: ProxyConfig) -> str:
    """How the reverse proxy is announced: ``reverse proxy to URL, URL...``."""
    names = ", ".join(s.url for g in config.groups.values() for s in g.servers)
    return f"reverse proxy to {names}"


def _restart_only(config: ProxyConfig) -> dict[str, object]:
    """What a reload cannot change, by name (compared to say what needs a restart)."""
    limits = {
        k: v
        for k, v in config.server_settings.items()
        if k not in TIMEOUTS.values() and k != "proxy_protocol"
    }
    proxy = dict(config.proxy_settings)
    proxy["proxy_protocol"] = config.server_settings.get("proxy_protocol", False)
    return {
        "listen": config.listen,
        "workers": config.workers,
        "access_log": (config.access_log, config.access_log_format),
        "admin": config.admin,
        "limits": limits,
        "proxy": proxy,
    }


def _open_log(target: str) -> IO[str]:
    if target == "-":
        return open(sys.stdout.fileno(), "w", buffering=1, closefd=False)
    try:
        return open(target, "a", buffering=1, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot open the access log {target!r}: {exc.strerror}") from None


def _access_writer(fmt: str, stream: IO[str]) -> Callable[[Any], None]:
    from ..proxy._access_log import CommonLogWriter, JsonLinesWriter  # noqa: PLC0415

    if fmt == "json":
        return JsonLinesWriter(stream)
    return CommonLogWriter(stream, extended=fmt == "extended")


def _server_class(settings: dict[str, int | float | None]) -> type[HttpServer]:
    from ..server import HttpServer  # noqa: PLC0415

    if not settings:
        return HttpServer
    return type("ConfiguredHttpServer", (HttpServer,), dict(settings))


def _apply(target: object, settings: dict[str, int | float | None]) -> None:
    for name, value in settings.items():
        setattr(target, name, value)


def _client_settings(config: ProxyConfig) -> dict[str, int | float | None]:
    """The upstream-side HttpClient's settings: the proxy's defaults, then the file's."""
    from ..proxy import ProxyBase  # noqa: PLC0415

    settings: dict[str, int | float | None] = {
        "connect_timeout": ProxyBase.upstream_connect_timeout,
        "read_timeout": ProxyBase.upstream_read_timeout,
        "max_server_conn": ProxyBase.upstream_max_conns,
        "idle_timeout": ProxyBase.upstream_idle_timeout,
    }
    settings.update(config.client_settings)
    return settings


def _connect_ports(args: argparse.Namespace, config: ProxyConfig) -> tuple[int, ...] | None:
    """The CONNECT ports of a forward proxy (``--forward``, or a file's ``[forward]``), or None
    for a reverse proxy."""
    if args.forward:
        return tuple(args.connect_ports or DEFAULT_CONNECT_PORTS)
    return config.connect_ports


def _make_client(loop: LoopBase, config: ProxyConfig) -> HttpClient:
    """The upstream-side HttpClient (see ``_client_settings``)."""
    from ..client import HttpClient  # noqa: PLC0415

    client = HttpClient(loop)
    _apply(client, _client_settings(config))
    return client


ProxyT = TypeVar("ProxyT", bound="ProxyBase")


def _proxy_class(
    base: type[ProxyT], header: RawHeaderListType, settings: dict[str, object]
) -> type[ProxyT]:
    """``base`` itself, or a subclass with ``settings`` as class attributes (the proxy's
    settings are class attributes) and, when ``header`` is not empty, a ``rewrite_response``
    adding it to every upstream response (``--worker-header``)."""
    if not header and not settings:
        return base
    namespace: dict[str, object] = dict(settings)
    if header:

        def rewrite_response(
            self: ProxyT,
            px: ProxyExchange,
            status: bytes,
            phrase: bytes,
            headers: RawHeaderListType,
        ) -> RawHeaderListType:
            return [*base.rewrite_response(self, px, status, phrase, headers), *header]

        namespace["rewrite_response"] = rewrite_response
    return type(base.__name__, (base,), namespace)


class _ProxyRunner:
    """One process's proxy: the server, the client, the proxy object, logs and metrics."""

    def __init__(self, args: argparse.Namespace, config: ProxyConfig) -> None:
        self.args = args
        self.config = config
        self.loop: LoopBase = thor.loop.make()
        self.admin_server: HttpServer | None = None
        self.balancer: SwitchableBalancer | None = None
        self.proxy: Any = None
        self.log_stream: IO[str] | None = None
        self.server: HttpServer | None = None
        self.client: HttpClient | None = None

    def run(self, host: bytes, port: int, worker: WorkerInfo | None) -> int:
        """Serve until shut down; returns the exit status.

        Raises:
            CliError: the proxy cannot start (an address in use, an access log that cannot
                be opened...); what was made is closed first.
        """
        try:
            return self._run(host, port, worker)
        finally:
            if self.balancer is not None:
                self.balancer.close()
            for server in (self.admin_server, self.server):
                if server is not None:
                    close_server(server)
            if self.client is not None:
                self.client.close()
            if self.log_stream is not None:
                self.log_stream.close()
            self.loop.close()

    def _run(self, host: bytes, port: int, worker: WorkerInfo | None) -> int:
        from ..proxy import ForwardProxy, ReverseProxy  # noqa: PLC0415

        args, config, loop = self.args, self.config, self.loop
        settings = dict(config.server_settings)
        # limits are read when a server is made (its parser class): a subclass carries them;
        # timeouts are read as they are used, so they go on the instance (and reload there)
        limits = {k: v for k, v in settings.items() if k not in TIMEOUTS.values()}
        server = make_server(host, port, loop, worker, _server_class(limits))
        _apply(server, {k: v for k, v in settings.items() if k in TIMEOUTS.values()})
        client = _make_client(loop, config)
        self.server, self.client = server, client
        header = worker_header(args.worker_header)
        proxy: Any
        proxy_settings = dict(config.proxy_settings)
        ports = _connect_ports(args, config)
        if ports is not None:
            proxy_settings.pop("preserve_host", None)
            forward_class = _proxy_class(ForwardProxy, header, proxy_settings)
            proxy = forward_class(server, client=client, connect_ports=ports)
            what = f"forward proxy (CONNECT to {', '.join(map(str, ports))})"
        else:
            try:
                router = build_router(config, loop, client)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            reverse_class = _proxy_class(ReverseProxy, header, proxy_settings)
            try:
                proxy = reverse_class(server, router, client=client)
            except BaseException:
                router.close()
                raise
            self.balancer = SwitchableBalancer(proxy, router)
            what = _reverse_what(config)
        proxy.on("error", self.proxy_error)
        self.proxy = proxy
        log_target = args.access_log or config.access_log
        if log_target:
            self.log_stream = _open_log(log_target)
            fmt = args.access_log_format or config.access_log_format
            proxy.on("access", _access_writer(fmt, self.log_stream))
        admin = args.admin or config.admin
        admin_note = ""
        if admin is not None and worker is not None:
            # the supervisor serves the workers' metrics added up: each worker's own endpoint
            # is internal, on a free 127.0.0.1 port it reports with its 'ready'
            self.admin_server = self.serve_admin(proxy, b"127.0.0.1", 0)
            worker.pipes.admin_port = self.admin_server.port
        elif admin is not None:
            admin_host, admin_port = admin
            self.admin_server = self.serve_admin(proxy, admin_host, admin_port)
            admin_note = (
                f"; metrics on http://{format_address(admin_host, self.admin_server.port)}/metrics"
            )
        announce = None
        if worker is None:
            where = format_address(host, server.port)
            announce = f"{what} on http://{where} (pid {os.getpid()}){admin_note}"
        return run_until_shutdown(
            loop,
            [server],
            command="proxy",
            grace=args.grace,
            announce=announce,
            worker=worker.pipes if worker is not None else None,
            on_reload=self.reload if args.config else None,
            on_shutdown=self.shutting_down,
        )

    def serve_admin(self, proxy: Any, host: bytes, port: int) -> HttpServer:
        try:
            from ..proxy._metrics import ProxyMetrics  # noqa: PLC0415

            metrics = ProxyMetrics()
        except ImportError as exc:
            raise CliError(f"--admin: {exc}") from None  # (the message names the extra)
        metrics.attach(proxy)
        balancer = self.balancer
        if balancer is not None:

            def queued() -> float:
                total = 0
                for router in balancer.balancers():
                    for route in getattr(router, "routes", ()):
                        total += getattr(route.group, "queued", 0)
                return float(total)

            metrics.queue_depth.set_function(queued)
        try:
            return metrics.serve_admin(host, port, self.loop)
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CliError(
                f"cannot listen on {format_address(host, port)} (--admin): {reason}"
            ) from None

    def proxy_error(self, err: object) -> None:
        say("proxy", f"error: {err}")

    def shutting_down(self) -> None:
        if self.admin_server is not None:
            self.admin_server.shutdown()

    def reload(self) -> None:
        """SIGHUP: read the file again; use it if valid, else keep the running one."""
        path = self.args.config
        old = self.config
        try:
            new = _command_line_config(self.args)
        except ConfigError as exc:
            for problem in exc.problems:
                say("proxy", f"reload refused: {problem}")
            return
        server, client = self.server, self.client
        assert server is not None and client is not None
        if (self.balancer is None) != (new.connect_ports is not None):
            running = "forward" if self.balancer is None else "reverse"
            say("proxy", f"reload refused: {path}: not a {running} proxy any more: restart")
            return
        if self.balancer is not None:
            try:
                router = build_router(new, self.loop, client)
            except ValueError as exc:
                say("proxy", f"reload refused: {path}: {exc}")
                return
            self.balancer.switch(router)
        elif self.proxy is not None and new.connect_ports is not None:
            self.proxy.connect_ports = frozenset(new.connect_ports)
        for name in TIMEOUTS.values():  # the file's value, or back to the class default
            if hasattr(type(server), name):
                setattr(server, name, new.server_settings.get(name, getattr(type(server), name)))
        _apply(client, _client_settings(new))
        before, after = _restart_only(old), _restart_only(new)
        restart = [name for name in before if before[name] != after[name]]
        self.config = new
        routes = len(new.routes)
        groups = len(new.groups)
        if new.connect_ports is not None:
            described = f"forward proxy, CONNECT to {', '.join(map(str, new.connect_ports))}"
        else:
            described = (
                f"{groups} upstream group{'s' if groups != 1 else ''}, "
                f"{routes} route{'s' if routes != 1 else ''}"
            )
        say(
            "proxy",
            f"reloaded {path}: {described}"
            + (f" ({', '.join(restart)} changed: restart to apply)" if restart else ""),
        )


def run(args: argparse.Namespace, argv: Sequence[str], parser: argparse.ArgumentParser) -> int:
    """Run ``thor proxy`` with parsed ``args`` (``argv``: the command line, for workers)."""
    if not (args.upstream or args.forward or args.config):
        _usage_error("one of --upstream, --forward or --config is required")
    if args.connect_ports is not None and not args.forward:
        _usage_error(
            "--connect-ports goes with --forward (in a --config file: 'connect_ports = "
            "[...]' in the [forward] table)"
        )
    if args.balance is not None and not args.upstream:
        _usage_error("--balance goes with --upstream (in a --config file: 'balance = ...')")
    for key in ("eject_after", "eject_for"):
        if getattr(args, key) is not None and not args.upstream:
            _usage_error(
                f"--{key.replace('_', '-')} goes with --upstream "
                f"(in a --config file: '{key} = ...' in an [upstreams.NAME] table)"
            )
    try:
        config = _command_line_config(args)
    except ConfigError as exc:
        for problem in exc.problems[:-1]:
            say("proxy", problem)
        raise CliError(exc.problems[-1]) from None
    host, port = args.listen or config.listen or parse_listen(DEFAULT_LISTEN)
    workers = args.workers or config.workers or 1
    worker = worker_from_env()
    if worker is None and workers > 1:
        forward = _connect_ports(args, config) is not None
        what = "forward proxy" if forward else _reverse_what(config)
        return Supervisor(
            argv,
            workers,
            host,
            port,
            command="proxy",
            grace=args.grace,
            what=what,
            inherit=args.inherit_socket,
            reload=bool(args.config),
            admin=args.admin or config.admin,
        ).run()
    return _ProxyRunner(args, config).run(host, port, worker)
