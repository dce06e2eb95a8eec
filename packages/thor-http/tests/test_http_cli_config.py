"""``thor proxy --config``: the TOML file's validation, every problem naming its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import thor.loop
from thor.http.cli import build_parser
from thor.http.cli._config import ConfigError, load_config, parse_config
from thor.http.cli._proxy import _restart_only, build_router
from thor.http.client import HttpClient

GOOD = textwrap.dedent(
    """\
    listen = "127.0.0.1:8080"
    workers = 2
    access_log = "-"
    access_log_format = "json"
    admin = "127.0.0.1:9100"

    [limits]
    max_body_size = 1048576
    max_conns_per_upstream = 32

    [timeouts]
    idle = 30
    request_head = 5.5
    upstream_connect = 2
    upstream_read = false

    [upstreams.app]
    servers = ["http://127.0.0.1:8001", { url = "http://127.0.0.1:8002", weight = 3 }]
    balance = "hash:X-User"
    max_conns = 10
    queue_timeout = 2
    health_check = "/health"

    [upstreams.static]
    servers = ["http://127.0.0.1:8003/"]
    balance = "least_conn"

    [[routes]]
    path = "/api"
    upstream = "app"

    [[routes]]
    host = "static.example.com"
    upstream = "static"
    """
)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "proxy.toml")
    return info.value.problems


def test_a_good_file() -> None:
    config = parse_config(GOOD, "proxy.toml")
    assert config.listen == (b"127.0.0.1", 8080)
    assert config.workers == 2
    assert config.admin == (b"127.0.0.1", 9100)
    assert config.access_log == "-" and config.access_log_format == "json"
    assert config.server_settings == {
        "max_body_size": 1048576,
        "idle_timeout": 30.0,
        "request_head_timeout": 5.5,
    }
    assert config.client_settings == {
        "max_server_conn": 32,
        "connect_timeout": 2.0,
        "read_timeout": None,
    }
    app = config.groups["app"]
    assert [(s.url, s.weight, s.max_conns) for s in app.servers] == [
        ("http://127.0.0.1:8001", 1, 10),
        ("http://127.0.0.1:8002", 3, 10),
    ]
    assert (app.policy, app.hash_key, app.queue_timeout) == ("hash", "header:X-User", 2.0)
    assert app.health_check == "/health"
    assert config.groups["static"].policy == "least_conn"
    assert [(r.host, r.path, r.upstream) for r in config.routes] == [
        (None, "/api", "app"),
        ("static.example.com", "/", "static"),
    ]


def test_a_good_file_builds_a_router() -> None:
    loop = thor.loop.make()
    client = HttpClient(loop)
    router = build_router(parse_config(GOOD, "proxy.toml"), loop, client)
    assert len(router.routes) == 2
    router.close()
    client.close()
    loop.close()


def test_one_group_needs_no_routes() -> None:
    config = parse_config('[upstreams.only]\nservers = ["http://127.0.0.1:1"]\n')
    assert [(r.host, r.path, r.upstream) for r in config.routes] == [(None, "/", "only")]


def test_syntax_errors_carry_their_line() -> None:
    found = problems(
        'listen = "127.0.0.1:8080"\n\n[upstreams.a]\nservers = [\n  "http://h:1",,\n]\n'
    )
    assert len(found) == 1
    assert found[0].startswith("proxy.toml:5: TOML syntax: ")


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        # an array left open (tomllib says "at end of document", with no line)
        ('listen = ":8080"\n\n[upstreams.a]\nservers = ["http://127.0.0.1:8001"', 4, "Unclosed"),
        ('listen = ":8080"\n[upstreams.a]\nservers = [\n  "http://h:1",\n\n', 3, ""),
        ('[upstreams.a]\nservers = ["http://h:1"]\n[proxy]\nvia = """thor\n\n', 4, "Unterminated"),
        ('[upstreams.a]\nservers = ["http://h:1"]\nhealth_check =', 3, "Invalid value"),
        ("servers = [", 1, ""),
    ],
)
def test_syntax_errors_at_the_end_carry_the_line_of_what_is_left_open(
    text: str, line: int, what: str
) -> None:
    (found,) = problems(text)
    assert found.startswith(f"proxy.toml:{line}: TOML syntax: {what}"), found
    assert "end of document" not in found


def test_every_problem_is_reported_with_its_line() -> None:
    text = textwrap.dedent(
        """\
        listen = "127.0.0.1:http"
        wrokers = 2

        [timeouts]
        idle = -1

        [upstreams.app]
        servers = ["http://127.0.0.1:8001/x", "ftp://h", "http://127.0.0.1:8001"]
        balance = "fastest"
        max_conns = 0

        [upstreams.other]
        servers = []

        [[routes]]
        path = "api"
        upstream = "app"

        [[routes]]
        host = "example.com"
        upstream = "missing"
        """
    )
    found = problems(text)
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)
    by_line: dict[int, str] = {}
    for problem in found:
        line = int(problem.split(":")[1])
        by_line[line] = by_line.get(line, "") + problem + "\n"
    assert "listen: bad listen address '127.0.0.1:http'" in by_line[1]
    assert "wrokers: unknown key" in by_line[2]
    assert "timeouts.idle: expected a number of seconds > 0" in by_line[5]
    assert "upstreams.app.servers[0]: 'http://127.0.0.1:8001/x' must be an origin" in by_line[8]
    assert "upstreams.app.servers[1]: bad URL 'ftp://h'" in by_line[8]
    assert "unknown policy 'fastest'" in by_line[9]
    assert "upstreams.app.max_conns: expected a whole number >= 1" in by_line[10]
    assert "upstreams.other.servers: expected a non-empty list" in by_line[13]
    assert "routes[0].path: expected a path prefix starting with '/'" in by_line[16]
    assert "routes[1].upstream: no upstream group 'missing' (known: app, other)" in by_line[21]


def test_keys_in_dotted_and_quoted_forms_are_located() -> None:
    text = 'upstreams.app.servers = ["http://h:1"]\nupstreams.app."balance" = "nope"\n'
    (found,) = problems(text)
    assert found.startswith("proxy.toml:2: upstreams.app.balance: unknown policy 'nope'")


def test_array_of_tables_are_counted() -> None:
    text = textwrap.dedent(
        """\
        [upstreams.a]
        servers = ["http://h:1"]

        [[routes]]
        upstream = "a"

        [[routes]]
        upstream = "a"
        colour = "blue"
        """
    )
    (found,) = problems(text)
    assert found.startswith("proxy.toml:9: routes[1].colour: unknown key")


def test_several_groups_need_routes() -> None:
    text = '[upstreams.a]\nservers = ["http://h:1"]\n[upstreams.b]\nservers = ["http://h:2"]\n'
    (found,) = problems(text)
    assert found.startswith("proxy.toml:1: upstreams: several upstream groups")


def test_no_upstreams() -> None:
    (found,) = problems('listen = ":8080"\n')
    assert "no upstream group" in found


def test_types_are_checked() -> None:
    text = textwrap.dedent(
        """\
        workers = true
        access_log_format = "xml"

        [limits]
        max_fields = "100"

        [upstreams.a]
        servers = ["http://h:1", { url = "http://h:2", weight = 1.5 }, 7]
        health_check = "health"
        """
    )
    found = problems(text)
    assert "workers: expected a whole number >= 1, not True" in found[0]
    assert "access_log_format: expected one of 'common', 'extended', 'json'" in found[1]
    assert "limits.max_fields: expected a whole number" in found[2]
    joined = "\n".join(found)
    assert "servers[1].weight: expected a whole number >= 1, not 1.5" in joined
    assert "servers[2]: expected a URL or a table with url, not 7" in joined
    assert "health_check: expected a path starting with '/'" in joined


GROUP = '[upstreams.a]\nservers = ["http://h:1"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GROUP + "[proxy]\ntrusted_hops = [10]\n", "proxy.trusted_hops[0]: expected an address"),
        (GROUP + "queue_timeout = inf\n", "queue_timeout: expected a number of seconds"),
        (GROUP + "eject_for = nan\n", "eject_for: expected a number of seconds"),
        (GROUP + 'health_check = "/h\\u0001x"\n', "health_check: expected a path"),
        (GROUP + 'health_check = "/caf\u00e9"\n', "health_check: expected a path"),
        (GROUP + '[[routes]]\npath = "/caf\u00e9"\nupstream = "a"\n', "routes[0].path: expected"),
    ],
    ids=["hop-as-int", "inf-seconds", "nan-seconds", "control-byte", "non-ascii", "route"],
)
def test_values_that_would_fail_at_start_are_refused(text: str, expected: str) -> None:
    """Values the proxy could not use (a timer of inf or nan seconds, a request path that is
    not printable ASCII, an int taken by ipaddress as an address) are problems with their line,
    not a traceback or a bare message when the proxy starts."""
    found = problems(text)
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize("fmt", ["common", "extended", "json"])
def test_access_log_formats_are_the_flags(fmt: str) -> None:
    config = parse_config(f'access_log_format = "{fmt}"\n[upstreams.a]\nservers = ["http://h:1"]\n')
    assert config.access_log_format == fmt
    args = build_parser().parse_args(["proxy", "--config", "x.toml", "--access-log-format", fmt])
    assert args.access_log_format == fmt


def test_duplicate_servers() -> None:
    (found,) = problems('[upstreams.a]\nservers = ["http://h:1", "http://H:1/"]\n')
    assert "servers[1]: 'http://H:1/' is listed twice" in found


def test_load_config_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(GOOD)
    assert load_config(str(path)).source == str(path)
    path.write_bytes(b'listen = "\xff"\n')
    with pytest.raises(ConfigError, match=r"p\.toml:1: not UTF-8"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.toml"))


def test_config_error_pickles() -> None:
    import pickle

    err = ConfigError(["a:1: x", "a:2: y"])
    copy = pickle.loads(pickle.dumps(err))
    assert copy.problems == err.problems


def test_the_documented_examples_are_valid() -> None:
    from thor.http.cli import _config
    from thor.http.cli._proxy import EXAMPLE_CONFIG

    assert _config.__doc__ is not None
    block = _config.__doc__.split("::\n\n", 1)[1].split("\n\nWith a single", 1)[0]
    documented = parse_config(textwrap.dedent(block), "docstring")
    assert documented.groups["app"].health_check == "/health"
    assert documented.routes[0].host == "api.example.com"
    reverse, forward = EXAMPLE_CONFIG.split(":\n", 1)[1].split("\na forward proxy", 1)
    config = parse_config(textwrap.dedent(reverse), "--help")
    assert [(r.path, r.upstream) for r in config.routes] == [("/static", "static"), ("/", "app")]
    forward_config = parse_config(textwrap.dedent(forward.split(":\n", 1)[1]), "--help")
    assert forward_config.connect_ports == (443, 8443)
    forward_block = _config.__doc__.split("::\n\n", 2)[2].split("\n\nValidation", 1)[0]
    assert parse_config(textwrap.dedent(forward_block), "docstring").connect_ports == (443, 8443)


def test_the_proxy_table() -> None:
    config = parse_config(
        '[proxy]\nvia = "edge"\ntrusted_hops = ["10.0.0.0/8", "::1"]\nforwarded = false\n'
        "preserve_host = true\nproxy_protocol = true\n"
        '[upstreams.a]\nservers = ["http://h:1"]\n'
    )
    assert config.proxy_settings == {
        "via_name": "edge",
        "trusted_hops": ("10.0.0.0/8", "::1"),
        "forwarded": False,
        "preserve_host": True,
    }
    assert config.server_settings == {"proxy_protocol": True}
    config = parse_config('[proxy]\nvia = false\n[upstreams.a]\nservers = ["http://h:1"]\n')
    assert config.proxy_settings == {"via_name": None}


def test_the_proxy_table_is_checked() -> None:
    found = problems(
        '[proxy]\nvia = "two words"\ntrusted_hops = ["10.0.0.0/8", "nowhere"]\n'
        'forwarded = "yes"\nmagic = 1\n[upstreams.a]\nservers = ["http://h:1"]\n'
    )
    assert [p.split(": ", 1)[0] for p in found] == [
        "proxy.toml:2",
        "proxy.toml:3",
        "proxy.toml:4",
        "proxy.toml:5",
    ]
    assert "proxy.via: expected a name (a token) or false" in found[0]
    assert "proxy.trusted_hops[1]: expected an address or a network, not 'nowhere'" in found[1]
    assert "proxy.forwarded: expected true or false" in found[2]
    assert "proxy.magic: unknown key" in found[3]


@pytest.mark.parametrize(
    ("table", "changed"),
    [
        ("[proxy]\nproxy_protocol = true\n", ["proxy"]),  # the listener's server class
        ("[proxy]\npreserve_host = true\n", ["proxy"]),
        ("[limits]\nmax_fields = 50\n", ["limits"]),
        ("[timeouts]\nidle = 5\n", []),  # timeouts are set on the running server
    ],
)
def test_a_reload_names_what_needs_a_restart(table: str, changed: list[str]) -> None:
    upstreams = '[upstreams.a]\nservers = ["http://h:1"]\n'
    before = _restart_only(parse_config(upstreams))
    after = _restart_only(parse_config(table + upstreams))
    assert [name for name in before if before[name] != after[name]] == changed


# -- a forward proxy ------------------------------------------------------------------------------


def test_a_forward_table_makes_a_forward_proxy() -> None:
    config = parse_config(
        'listen = "127.0.0.1:3128"\n[forward]\nconnect_ports = [443, 8443]\n[proxy]\nvia = "fw"\n'
    )
    assert config.connect_ports == (443, 8443)
    assert config.groups == {} and config.routes == []
    assert parse_config("[forward]\n").connect_ports == (443,)


def test_without_a_forward_table_there_are_no_connect_ports() -> None:
    assert (
        parse_config('[upstreams.only]\nservers = ["http://127.0.0.1:1"]\n').connect_ports is None
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[forward]\nconnect_ports = []\n", "proxy.toml:2: forward.connect_ports: expected a list"),
        (
            "[forward]\nconnect_ports = 443\n",
            "proxy.toml:2: forward.connect_ports: expected a list",
        ),
        (
            '[forward]\nconnect_ports = [443, "80"]\n',
            "proxy.toml:2: forward.connect_ports: expected ports from 1 to 65535, not '80'",
        ),
        (
            "[forward]\nconnect_ports = [0]\n",
            "proxy.toml:2: forward.connect_ports: expected ports from 1 to 65535, not 0",
        ),
        ("[forward]\nports = [443]\n", "proxy.toml:2: forward.ports: "),
        (
            '[forward]\n[upstreams.a]\nservers = ["http://h:1"]\n',
            "proxy.toml:2: upstreams.a: a forward proxy ([forward]) has no upstreams or routes",
        ),
    ],
)
def test_bad_forward_tables(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(expected)


def test_routes_in_a_forward_file_are_refused_at_their_line() -> None:
    found = problems('[forward]\n\n[[routes]]\nupstream = "a"\n')
    assert found == [
        "proxy.toml:3: routes[0]: a forward proxy ([forward]) has no upstreams or routes"
    ]
