"""``thor proxy --config FILE.toml``: reading and validating the proxy's configuration file.

The file (every key optional except ``upstreams`` (or ``forward``) and, with several groups,
``routes``)::

    listen = "127.0.0.1:8080"        # ADDR:PORT (the command line's --listen wins)
    workers = 2                      # processes sharing the port
    access_log = "-"                 # a file, or "-" for stdout
    access_log_format = "common"     # "extended" (upstream and times) or "json"
    admin = "127.0.0.1:9100"         # Prometheus metrics at GET /metrics

    [limits]                         # HttpServer limits, bytes / counts
    max_body_size = 10485760
    max_request_line = 8192
    max_field_section = 65536
    max_fields = 100
    max_pipeline_depth = 100
    max_conns_per_upstream = 256     # connections to each upstream server (the client's pool)

    [proxy]                          # how the proxy speaks (restart to change)
    via = "thor"                     # the Via pseudonym; false: no Via
    trusted_hops = ["10.0.0.0/8"]    # whose Forwarded / X-Forwarded-For are believed
    forwarded = true                 # add Forwarded
    x_forwarded_for = true           # add X-Forwarded-For
    preserve_host = false            # send the client's Host upstream
    proxy_protocol = false           # clients are behind a load balancer speaking PROXY v1/v2

    [timeouts]                       # seconds
    idle = 60                        # keep-alive client connection with no request
    request = 60                     # receiving a request stalls this long
    request_head = 10                # a request head takes this long
    write_stall = 60                 # the client reads none of the response this long
    upstream_connect = 3             # connecting to an upstream
    upstream_read = 30               # an upstream sends nothing this long

    [upstreams.app]
    servers = ["http://127.0.0.1:8001", { url = "http://127.0.0.1:8002", weight = 2 }]
    balance = "round_robin"          # least_conn, hash (client address), hash:<header>
    max_conns = 100                  # per server (a server's own max_conns wins)
    queue_limit = 1000
    queue_timeout = 10
    eject_after = 5
    eject_for = 10
    health_check = "/health"         # active checks (off without it)
    health_interval = 5

    [[routes]]                       # longest path prefix wins; a route with a host beats one
    host = "api.example.com"         # without (optional)
    path = "/v1"                     # optional, "/" by default
    upstream = "app"

With a single upstream group and no routes, every request goes to that group. A forward proxy
(``thor proxy --forward``) has a ``[forward]`` table instead of upstreams and routes::

    [forward]
    connect_ports = [443, 8443]      # ports CONNECT may tunnel to ([443] by default)

Validation reports *every* problem at once, each as ``FILE:LINE: key: what is wrong``. tomllib
gives lines for syntax errors only; for a value, the line is found by scanning the text for its
table header and key (``_Locator``), falling back to the nearest enclosing table or key.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from ..error import UrlError
from ..uri import parse_uri
from ._common import ListenAddress, parse_listen

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "ConfigError",
    "GroupSpec",
    "ProxyConfig",
    "RouteSpec",
    "ServerSpec",
    "load_config",
    "parse_config",
]

Path = tuple["str | int", ...]

POLICIES = ("round_robin", "least_conn", "hash")
#: access_log_format values (as --access-log-format's)
ACCESS_LOG_FORMATS = ("common", "extended", "json")

#: [limits] key -> (HttpServer setting, or None for the client's max_server_conn), minimum
LIMITS: dict[str, tuple[str, int]] = {
    "max_body_size": ("max_body_size", 0),
    "max_request_line": ("max_request_line", 16),
    "max_field_section": ("max_field_section", 64),
    "max_fields": ("max_fields", 1),
    "max_pipeline_depth": ("max_pipeline_depth", 1),
    "max_conns_per_upstream": ("max_server_conn", 1),
}
#: [timeouts] key -> setting (HttpServer's, or HttpClient's for upstream_*)
TIMEOUTS: dict[str, str] = {
    "idle": "idle_timeout",
    "request": "request_timeout",
    "request_head": "request_head_timeout",
    "write_stall": "write_stall_timeout",
    "upstream_connect": "connect_timeout",
    "upstream_read": "read_timeout",
}
TOP_KEYS = frozenset(
    (
        *("listen", "workers", "access_log", "access_log_format", "admin"),
        *("proxy", "limits", "timeouts", "upstreams", "routes", "forward"),
    )
)
FORWARD_KEYS = frozenset(("connect_ports",))
#: a forward proxy's CONNECT ports when [forward] does not say
DEFAULT_CONNECT_PORTS = (443,)
GROUP_KEYS = frozenset(
    (
        "servers",
        "balance",
        "max_conns",
        "queue_limit",
        "queue_timeout",
        "eject_after",
        "eject_for",
        "health_check",
        "health_interval",
    )
)
SERVER_KEYS = frozenset(("url", "weight", "max_conns"))
#: [proxy] keys that are ReverseProxy settings (-> attribute name); proxy_protocol is the
#: HttpServer's
PROXY_FLAGS = {
    "forwarded": "forwarded",
    "x_forwarded_for": "x_forwarded_for",
    "preserve_host": "preserve_host",
}
PROXY_KEYS = frozenset((*PROXY_FLAGS, "via", "trusted_hops", "proxy_protocol"))
ROUTE_KEYS = frozenset(("host", "path", "upstream"))
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_HOST = re.compile(r"^[A-Za-z0-9._-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](:[0-9]+)?$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ConfigError(Exception):
    """The configuration file cannot be used.

    Attributes:
        problems: one line per problem, ``FILE:LINE: what is wrong``.
    """

    def __init__(self, problems: list[str]) -> None:
        Exception.__init__(self, "\n".join(problems))
        self.problems = problems

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


@dataclass(slots=True)
class ServerSpec:
    """One upstream server of a group."""

    url: str
    weight: int = 1
    max_conns: int | None = None


@dataclass(slots=True)
class GroupSpec:
    """An upstream group: its servers and balancing settings."""

    name: str
    servers: list[ServerSpec]
    policy: str = "round_robin"
    hash_key: str = "client"
    queue_limit: int = 1000
    queue_timeout: float | None = 10.0
    eject_after: int = 5
    eject_for: float = 10.0
    health_check: str | None = None
    health_interval: float = 5.0


@dataclass(slots=True)
class RouteSpec:
    """Requests for ``host`` (any when None) under ``path`` go to the group ``upstream``."""

    host: str | None
    path: str
    upstream: str


@dataclass(slots=True)
class ProxyConfig:
    """A validated configuration (see the module docstring for the file format).

    Attributes:
        server_settings: HttpServer settings (attribute name -> value) from [limits] and
            [timeouts].
        client_settings: HttpClient settings for the upstream side.
        proxy_settings: ReverseProxy settings (class attribute name -> value) from [proxy].
    """

    source: str
    listen: ListenAddress | None = None
    workers: int | None = None
    access_log: str | None = None
    access_log_format: str = "common"
    admin: ListenAddress | None = None
    server_settings: dict[str, int | float | None] = field(default_factory=dict)
    client_settings: dict[str, int | float | None] = field(default_factory=dict)
    proxy_settings: dict[str, object] = field(default_factory=dict)
    groups: dict[str, GroupSpec] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    connect_ports: tuple[int, ...] | None = None


class _Locator:
    """Finds the line of a key in TOML text (tomllib does not say where values are)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
    _KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")

    def __init__(self, text: str) -> None:
        self.where: dict[Path, int] = {}
        table: Path = ()
        arrays: dict[Path, int] = {}
        for number, line in enumerate(text.splitlines(), 1):
            header = self._HEADER.match(line)
            if header:
                path = self._split(header.group(2))
                if header.group(1) == "[[":
                    index = arrays.get(path, -1) + 1
                    arrays[path] = index
                    table = (*path, index)
                else:
                    table = path
                self.where.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self.where.setdefault((*table, *self._split(key.group(1))), number)

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', dotted)
        return tuple(a or b or c for a, b, c in parts)

    def line(self, path: Path) -> int:
        """The line of ``path`` (or of its nearest enclosing key or table; 1 if none)."""
        for end in range(len(path), 0, -1):
            found = self.where.get(path[:end])
            if found is not None:
                return found
        return 1


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Checker:
    """Collects problems while reading the parsed document."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.locator = _Locator(text)
        self.problems: list[tuple[int, str]] = []

    def bad(self, path: Path, message: str) -> None:
        line = self.locator.line(path)
        self.problems.append((line, f"{self.source}:{line}: {_dotted(path)}: {message}"))

    def unknown_keys(self, table: dict[str, Any], known: frozenset[str], path: Path) -> None:
        for key in table:
            if key not in known:
                expected = ", ".join(sorted(known))
                self.bad((*path, key), f"unknown key (expected one of: {expected})")

    def integer(self, value: object, path: Path, minimum: int) -> int | None:
        if type(value) is not int or value < minimum:
            self.bad(path, f"expected a whole number >= {minimum}, not {value!r}")
            return None
        return value

    def seconds(self, value: object, path: Path, allow_off: bool = False) -> float | None:
        if allow_off and value is False:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < math.inf  # (nan and inf too: a timer cannot take them)
        ):
            extra = " (or false: no limit)" if allow_off else ""
            self.bad(path, f"expected a number of seconds > 0{extra}, not {value!r}")
            return None
        return float(value)

    def string(self, value: object, path: Path) -> str | None:
        if not isinstance(value, str):
            self.bad(path, f"expected a string, not {value!r}")
            return None
        return value

    def table(self, value: object, path: Path) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.bad(path, f"expected a table, not {value!r}")
            return None
        return value


def check_upstream_url(url: str) -> str | None:
    """Why ``url`` is not a usable upstream origin (``http(s)://host[:port]``), or None."""
    try:
        raw = url.encode("ascii")
    except UnicodeEncodeError:
        return f"{url!r} has non-ASCII characters"
    try:
        _, _, _, _, target = parse_uri(raw)
    except UrlError as exc:
        return f"bad URL {url!r}: {exc.detail or exc.desc}"
    if target != b"/" or raw.endswith((b"#", b"?")):
        return f"{url!r} must be an origin (http://host:port), with no path or query"
    return None


def parse_policy(text: str) -> tuple[str, str] | None:
    """``"hash:X-User"`` -> ``("hash", "header:X-User")``; ``"hash"`` -> ``("hash",
    "client")``; a policy name -> ``(name, "client")``; None when not valid."""
    name, colon, header = text.partition(":")
    if name not in POLICIES:
        return None
    if colon:
        if name != "hash" or not _HEADER_NAME.match(header):
            return None
        return name, f"header:{header}"
    return name, "client"


def _read_group(check: _Checker, name: str, table: dict[str, Any]) -> GroupSpec | None:
    path: Path = ("upstreams", name)
    check.unknown_keys(table, GROUP_KEYS, path)
    if not _NAME.match(name):
        check.bad(path, "a group name is letters, digits, '-' and '_'")
    group = GroupSpec(name, [])
    default_max = None
    if "max_conns" in table:
        default_max = check.integer(table["max_conns"], (*path, "max_conns"), 1)
    servers = table.get("servers")
    if not isinstance(servers, list) or not servers:
        check.bad((*path, "servers"), "expected a non-empty list of upstream URLs")
        servers = []
    seen: set[str] = set()
    for index, entry in enumerate(servers):
        where: Path = (*path, "servers", index)
        spec: ServerSpec | None = None
        if isinstance(entry, str):
            spec = ServerSpec(entry, 1, default_max)
        elif isinstance(entry, dict):
            check.unknown_keys(entry, SERVER_KEYS, where)
            url = check.string(entry.get("url"), (*where, "url"))
            weight = check.integer(entry.get("weight", 1), (*where, "weight"), 1)
            max_conns = default_max
            if "max_conns" in entry:
                max_conns = check.integer(entry["max_conns"], (*where, "max_conns"), 1)
            if url is not None and weight is not None:
                spec = ServerSpec(url, weight, max_conns)
        else:
            check.bad(where, f"expected a URL or a table with url, not {entry!r}")
        if spec is None:
            continue
        problem = check_upstream_url(spec.url)
        if problem is not None:
            check.bad(where, problem)
            continue
        key = spec.url.rstrip("/").lower()
        if key in seen:
            check.bad(where, f"{spec.url!r} is listed twice")
            continue
        seen.add(key)
        group.servers.append(spec)
    if "balance" in table:
        text = check.string(table["balance"], (*path, "balance"))
        policy = parse_policy(text) if text is not None else None
        if policy is None:
            if text is not None:
                check.bad(
                    (*path, "balance"),
                    f"unknown policy {text!r} (expected round_robin, least_conn, hash or "
                    f"hash:<header name>)",
                )
        else:
            group.policy, group.hash_key = policy
    for key in ("queue_limit", "eject_after"):
        if key in table:
            value = check.integer(table[key], (*path, key), 0)
            if value is not None:
                setattr(group, key, value)
    if "queue_timeout" in table:
        group.queue_timeout = check.seconds(
            table["queue_timeout"], (*path, "queue_timeout"), allow_off=True
        )
    for key in ("eject_for", "health_interval"):
        if key in table:
            seconds = check.seconds(table[key], (*path, key))
            if seconds is not None:
                setattr(group, key, seconds)
    if "health_check" in table:
        text = check.string(table["health_check"], (*path, "health_check"))
        if text is not None and not _is_request_path(text):
            check.bad(
                (*path, "health_check"),
                f"expected a path starting with '/' (printable ASCII), not {text!r}",
            )
        else:
            group.health_check = text
    return group


def _read_route(check: _Checker, index: int, table: object, groups: set[str]) -> RouteSpec | None:
    path: Path = ("routes", index)
    route_table = check.table(table, path)
    if route_table is None:
        return None
    check.unknown_keys(route_table, ROUTE_KEYS, path)
    host = None
    if "host" in route_table:
        host = check.string(route_table["host"], (*path, "host"))
        if host is not None and not _HOST.match(host):
            check.bad((*path, "host"), f"expected a host name, not {host!r}")
    prefix = "/"
    if "path" in route_table:
        text = check.string(route_table["path"], (*path, "path"))
        if text is not None and (not _is_request_path(text) or any(c in "?#" for c in text)):
            check.bad(
                (*path, "path"),
                f"expected a path prefix starting with '/' (printable ASCII), not {text!r}",
            )
        elif text is not None:
            prefix = text
    name = route_table.get("upstream")
    if not isinstance(name, str):
        check.bad((*path, "upstream"), "expected the name of an [upstreams.<name>] group")
        return None
    if name not in groups:
        known = ", ".join(sorted(groups)) or "none defined"
        check.bad((*path, "upstream"), f"no upstream group {name!r} (known: {known})")
        return None
    return RouteSpec(host, prefix, name)


def _read_proxy(check: _Checker, table: dict[str, Any], config: ProxyConfig) -> None:
    check.unknown_keys(table, PROXY_KEYS, ("proxy",))
    for key, value in table.items():
        path: Path = ("proxy", key)
        if key in PROXY_FLAGS or key == "proxy_protocol":
            if not isinstance(value, bool):
                check.bad(path, f"expected true or false, not {value!r}")
            elif key == "proxy_protocol":
                config.server_settings["proxy_protocol"] = value
            else:
                config.proxy_settings[PROXY_FLAGS[key]] = value
        elif key == "via":
            if value is False:
                config.proxy_settings["via_name"] = None
            elif isinstance(value, str) and _HEADER_NAME.match(value):
                config.proxy_settings["via_name"] = value
            else:
                check.bad(path, f"expected a name (a token) or false, not {value!r}")
        elif key == "trusted_hops":
            hops = value if isinstance(value, list) else None
            if hops is None:
                check.bad(path, f"expected a list of addresses or networks, not {value!r}")
                continue
            for index, entry in enumerate(hops):
                try:
                    if not isinstance(entry, str):  # (ip_network takes an int as an address)
                        raise TypeError(entry)
                    ipaddress.ip_network(entry, strict=False)
                except (TypeError, ValueError):
                    check.bad((*path, index), f"expected an address or a network, not {entry!r}")
            config.proxy_settings["trusted_hops"] = tuple(str(entry) for entry in hops)


def _is_request_path(text: str) -> bool:
    """A path to send in a request target: '/' and then printable ASCII (a URI is ASCII)."""
    return text.startswith("/") and text.isascii() and text.isprintable() and " " not in text


_SCAN_LINES = 2000


def _end_of_document_line(text: str) -> int:
    """The line a syntax error "at end of document" belongs to: where the construct left
    unclosed (an array, an inline table, a multi-line string) starts.

    tomllib stops at the error, so the text before it parses; the construct starts on the line
    after the longest run of whole lines that parses on its own (a run ending inside the
    construct never does). Beyond ``_SCAN_LINES`` lines, the last line (not worth the parses).
    """
    lines = text.splitlines(keepends=True)
    if len(lines) > _SCAN_LINES:
        return len(lines)
    for count in range(len(lines) - 1, 0, -1):
        try:
            tomllib.loads("".join(lines[:count]))
        except tomllib.TOMLDecodeError:
            continue
        return count + 1
    return 1


def parse_config(text: str, source: str = "<config>") -> ProxyConfig:
    """Validate the configuration ``text`` (read from ``source``, named in messages).

    Raises:
        ConfigError: with every problem found, each naming its line.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = found.group(1) if found else str(_end_of_document_line(text))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise ConfigError([f"{source}:{line}: TOML syntax: {message}"]) from None
    check = _Checker(source, text)
    config = ProxyConfig(source)
    check.unknown_keys(doc, TOP_KEYS, ())
    if "listen" in doc:
        listen = check.string(doc["listen"], ("listen",))
        if listen is not None:
            try:
                config.listen = parse_listen(listen)
            except ValueError as exc:
                check.bad(("listen",), str(exc))
    if "admin" in doc:
        admin = check.string(doc["admin"], ("admin",))
        if admin is not None:
            try:
                config.admin = parse_listen(admin)
            except ValueError as exc:
                check.bad(("admin",), str(exc))
    if "workers" in doc:
        config.workers = check.integer(doc["workers"], ("workers",), 1)
    if "access_log" in doc:
        config.access_log = check.string(doc["access_log"], ("access_log",))
    if "access_log_format" in doc:
        fmt = check.string(doc["access_log_format"], ("access_log_format",))
        if fmt is not None and fmt not in ACCESS_LOG_FORMATS:
            expected = ", ".join(repr(name) for name in ACCESS_LOG_FORMATS)
            check.bad(("access_log_format",), f"expected one of {expected}, not {fmt!r}")
        elif fmt is not None:
            config.access_log_format = fmt
    limits = check.table(doc.get("limits", {}), ("limits",))
    if limits is not None:
        check.unknown_keys(limits, frozenset(LIMITS), ("limits",))
        for key, value in limits.items():
            if key in LIMITS:
                setting, minimum = LIMITS[key]
                number = check.integer(value, ("limits", key), minimum)
                if number is not None:
                    target = (
                        config.client_settings
                        if setting == "max_server_conn"
                        else config.server_settings
                    )
                    target[setting] = number
    timeouts = check.table(doc.get("timeouts", {}), ("timeouts",))
    if timeouts is not None:
        check.unknown_keys(timeouts, frozenset(TIMEOUTS), ("timeouts",))
        for key, value in timeouts.items():
            if key in TIMEOUTS:
                seconds = check.seconds(value, ("timeouts", key), allow_off=True)
                if seconds is not None or value is False:
                    target = (
                        config.client_settings
                        if key.startswith("upstream_")
                        else config.server_settings
                    )
                    target[TIMEOUTS[key]] = seconds
    proxy = check.table(doc.get("proxy", {}), ("proxy",))
    if proxy is not None:
        _read_proxy(check, proxy, config)
    if "forward" in doc:
        forward = check.table(doc["forward"], ("forward",))
        if forward is not None:
            config.connect_ports = _read_forward(check, forward)
        for other in ("upstreams", "routes"):
            if other in doc:
                value = doc[other]
                where: Path = (other,)
                if isinstance(value, dict) and value:  # (the line of its first [upstreams.X])
                    where = (other, next(iter(value)))
                elif isinstance(value, list) and value:  # (the line of its first [[routes]])
                    where = (other, 0)
                check.bad(where, "a forward proxy ([forward]) has no upstreams or routes")
        if check.problems:
            raise ConfigError([message for _, message in sorted(check.problems)])
        return config
    upstreams = check.table(doc.get("upstreams", {}), ("upstreams",))
    if upstreams is not None:
        if not upstreams:
            check.bad(("upstreams",), "no upstream group: add an [upstreams.<name>] table")
        for name, table in upstreams.items():
            group_table = check.table(table, ("upstreams", name))
            if group_table is not None:
                group = _read_group(check, name, group_table)
                if group is not None:
                    config.groups[name] = group
    routes = doc.get("routes", [])
    if not isinstance(routes, list):
        check.bad(("routes",), "expected [[routes]] tables")
        routes = []
    for index, table in enumerate(routes):
        route = _read_route(check, index, table, set(config.groups))
        if route is not None:
            config.routes.append(route)
    if not routes and len(config.groups) > 1:
        check.bad(("upstreams",), "several upstream groups: add [[routes]] to say which to use")
    if check.problems:
        raise ConfigError([message for _, message in sorted(check.problems)])
    if not config.routes and len(config.groups) == 1:
        config.routes.append(RouteSpec(None, "/", next(iter(config.groups))))
    return config


def _read_forward(check: _Checker, table: dict[str, Any]) -> tuple[int, ...]:
    check.unknown_keys(table, FORWARD_KEYS, ("forward",))
    ports = table.get("connect_ports", list(DEFAULT_CONNECT_PORTS))
    path: Path = ("forward", "connect_ports")
    if not isinstance(ports, list) or not ports:
        check.bad(path, f"expected a list of ports, not {ports!r}")
        return DEFAULT_CONNECT_PORTS
    bad = [port for port in ports if type(port) is not int or not 0 < port < 65536]
    if bad:
        check.bad(path, f"expected ports from 1 to 65535, not {bad[0]!r}")
        return DEFAULT_CONNECT_PORTS
    return tuple(ports)


def load_config(path: str) -> ProxyConfig:
    """Read and validate the configuration file at ``path``.

    Raises:
        ConfigError: it cannot be read, or is not valid (every problem, each with its line).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: not UTF-8"]) from None
    return parse_config(text, path)
