"""The ``thor`` command, in process: argument parsing, usage errors, listen addresses, the
static file resolver and sender, and the SIGHUP-reload balancer switch."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import thor.loop
from thor.events import EventEmitter
from thor.http.cli import build_parser, main
from thor.http.cli._common import format_address, parse_listen
from thor.http.cli._get import progress_bar
from thor.http.cli._proxy import _command_line_config, build_router
from thor.http.cli._reload import SwitchableBalancer
from thor.http.cli._static import UNSATISFIABLE, StaticFiles, _Sender, byte_range
from thor.http.client import HttpClient
from thor.http.proxy._balance import UpstreamGroup
from thor.http.proxy._routing import Route, Router

# -- listen addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", (b"127.0.0.1", 8000)),
        ("localhost:0", (b"localhost", 0)),
        (":8080", (b"", 8080)),
        ("8080", (b"127.0.0.1", 8080)),
        ("[::1]:443", (b"::1", 443)),
        ("0.0.0.0:65535", (b"0.0.0.0", 65535)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[bytes, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text", ["", "host", "host:", "host:http", "host:65536", "::1:80", "[::1:80", "a b:80", "1:-1"]
)
def test_bad_listen_addresses_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="bad listen address") as info:
        parse_listen(text)
    assert repr(text) in str(info.value)


def test_format_address() -> None:
    assert format_address(b"127.0.0.1", 80) == "127.0.0.1:80"
    assert format_address(b"::1", 80) == "[::1]:80"
    assert format_address(b"", 80) == "0.0.0.0:80"


# -- usage errors: exit status 2, the bad value named -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--listen", "nowhere"], "'nowhere'"),
        (["serve", "--workers", "0"], "'0'"),
        (["get", "ftp://example.com/"], "'ftp://example.com/'"),
        (["get", "http://exa mple.com/"], "'http://exa mple.com/'"),
        (["get", "--timeout", "-1", "http://h/"], "'-1'"),
        (["get", "--timeout", "nan", "http://h/"], "'nan'"),
        (["get", "--timeout", "soon", "http://h/"], "'soon'"),
        (["get", "-X", "G T", "http://h/"], "'G T'"),
        (["proxy", "--upstream", "http://127.0.0.1:1/path"], "'http://127.0.0.1:1/path'"),
        (["proxy", "--upstream", "gopher://h"], "'gopher://h'"),
        (["proxy", "--upstream", "http://h:1", "--balance", "random"], "'random'"),
        (["proxy", "--forward", "--connect-ports", "443,x"], "'x'"),
        (["proxy", "--upstream", "http://h:1", "--admin", "h:p"], "'h:p'"),
        (["proxy", "--upstream", "http://h:1", "--trusted-hops", "10.0.0.0/8,bogus"], "'bogus'"),
        (["proxy"], "one of --upstream, --forward or --config"),
        (["proxy", "--forward", "--upstream", "http://h:1"], "not allowed with"),
        (["proxy", "--forward", "--balance", "least_conn"], "--balance goes with --upstream"),
        (["proxy", "--upstream", "http://h:1", "--eject-after", "-1"], "'-1'"),
        (["proxy", "--upstream", "http://h:1", "--eject-after", "2.5"], "'2.5'"),
        (["proxy", "--upstream", "http://h:1", "--eject-for", "-3"], "'-3'"),
        (["proxy", "--upstream", "http://h:1", "--eject-for", "nan"], "'nan'"),
        (["proxy", "--upstream", "http://h:1", "--eject-for", "inf"], "'inf'"),
        (["proxy", "--forward", "--eject-after", "3"], "--eject-after goes with --upstream"),
        (["proxy", "--config", "x.toml", "--eject-for", "3"], "--eject-for goes with --upstream"),
        (["proxy", "--config", "x.toml", "--connect-ports", "8443"], "goes with --forward"),
        (["proxy", "--upstream", "http://h:1", "--connect-ports", "8443"], "goes with --forward"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "usage: thor" in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("thor ")
    assert main(["proxy", "--help"]) == 0
    assert "--upstream" in capsys.readouterr().out


def test_balance_policies_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["proxy", "--upstream", "http://a:1,http://b:2", "--balance", "hash"])
    assert args.balance == ("hash", "client")
    assert args.upstream == [["http://a:1", "http://b:2"]]
    args = parser.parse_args(["proxy", "--upstream", "http://a:1", "--balance", "hash:X-User"])
    assert args.balance == ("hash", "header:X-User")
    args = parser.parse_args(["proxy", "--upstream", "http://a:1", "--balance", "least_conn"])
    assert args.balance == ("least_conn", "client")


@pytest.mark.parametrize(
    ("flags", "eject_after", "eject_for"),
    [
        ([], 5, 10.0),
        (["--eject-after", "2", "--eject-for", "0.5"], 2, 0.5),
        (["--eject-after", "0"], 0, 10.0),
        (["--eject-after", "3", "--eject-for", "0"], 0, 10.0),
    ],
)
def test_eject_flags_set_the_upstream_group(
    flags: list[str], eject_after: int, eject_for: float
) -> None:
    args = build_parser().parse_args(["proxy", "--upstream", "http://a:1,http://b:2", *flags])
    config = _command_line_config(args)
    spec = config.groups["default"]
    assert (spec.eject_after, spec.eject_for) == (eject_after, eject_for)
    loop = thor.loop.make()
    client = HttpClient(loop)
    router = build_router(config, loop, client)
    try:
        (group,) = {route.group for route in router.routes}
        assert isinstance(group, UpstreamGroup)
        assert (group.eject_after, group.eject_for) == (eject_after, eject_for)
    finally:
        router.close()
        client.close()


def test_runtime_failures_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("thor serve: ") and "is not a directory" in err
    assert err.count("\n") == 1
    assert main(["proxy", "--config", str(tmp_path / "missing.toml")]) == 1
    err = capsys.readouterr().err
    assert "missing.toml: cannot read" in err
    assert err.count("\n") == 1


def test_port_in_use_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--listen", f"127.0.0.1:{port}"]) == 1
        err = capsys.readouterr().err
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert err.count("\n") == 1
        # the supervisor checks the port before starting any worker
        assert main(["serve", "--workers", "2", "--listen", f"127.0.0.1:{port}"]) == 1
        err = capsys.readouterr().err
        assert f"cannot listen on 127.0.0.1:{port}" in err


# -- static files: path resolution --------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "inside").symlink_to(root / "a.txt")
    return root


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/../secret.txt", b"403"),
        (b"/sub/../../secret.txt", b"403"),
        (b"/%2e%2e/secret.txt", b"403"),
        (b"/%2E%2E%2Fsecret.txt", b"403"),
        (b"/sub/..%2f..%2fsecret.txt", b"403"),
        (b"/a.txt%00.png", b"403"),
        (b"/..\\secret.txt", b"403"),
        (b"/escape", b"403"),
        (b"*", b"400"),
        (b"http://example.com/a.txt", b"400"),
    ],
)
def test_refused_targets(site: Path, target: bytes, status: bytes) -> None:
    files = StaticFiles(str(site), thor.loop.make())
    assert files.resolve(target) == (None, status)


@pytest.mark.parametrize(
    ("target", "relative"),
    [
        (b"/a.txt", "a.txt"),
        (b"/a.txt?x=1", "a.txt"),
        (b"/./sub//b.txt", "sub/b.txt"),
        (b"/sub/%62.txt", "sub/b.txt"),
        (b"/", ""),
        (b"/inside", "a.txt"),
        (b"/missing", "missing"),
    ],
)
def test_resolved_targets(site: Path, target: bytes, relative: str) -> None:
    files = StaticFiles(str(site), thor.loop.make())
    path, status = files.resolve(target)
    assert status == b""
    assert path == os.path.realpath(site / relative)


# -- static files: streaming with back-pressure -------------------------------------------------


class FakeExchange(EventEmitter):
    """Records the body; asks to pause once ``limit`` bytes are buffered."""

    def __init__(self, limit: int) -> None:
        EventEmitter.__init__(self)
        self.limit = limit
        self.body = io.BytesIO()
        self.buffered = 0
        self.done = False
        self.paused = False

    def response_body(self, chunk: bytes) -> None:
        assert not self.paused, "written to while paused"
        self.body.write(chunk)
        self.buffered += len(chunk)
        if self.buffered >= self.limit:
            self.paused = True
            self.emit("pause", True)

    def response_done(self, trailers: Any) -> None:
        self.done = True

    def drain(self) -> None:
        self.buffered = 0
        self.paused = False
        self.emit("pause", False)


def test_sender_reads_only_while_the_client_keeps_up(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    loop = thor.loop.make()
    files = StaticFiles(str(tmp_path), loop)
    exchange = FakeExchange(limit=256 * 1024)
    handle = open(path, "rb")  # noqa: SIM115 - the sender closes it
    sender = _Sender(files, exchange, handle, len(data), loop)  # type: ignore[arg-type]
    sender.send()
    rounds = 0
    while not exchange.done:
        assert exchange.paused
        # the file was read no further than what was sent: nothing is read ahead
        assert handle.tell() == exchange.body.tell()
        assert exchange.buffered < 256 * 1024 + files.chunk_size
        exchange.drain()
        loop.schedule(0, loop.stop)
        loop.run()
        rounds += 1
        assert rounds < 100
    assert exchange.body.getvalue() == data
    assert handle.closed
    loop.close()


def test_sender_stops_on_error(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1_000_000)
    loop = thor.loop.make()
    files = StaticFiles(str(tmp_path), loop)
    exchange = FakeExchange(limit=100_000)
    handle = open(path, "rb")  # noqa: SIM115 - the sender closes it
    _Sender(files, exchange, handle, 1_000_000, loop).send()  # type: ignore[arg-type]
    exchange.emit("error", Exception("gone"))
    assert handle.closed
    exchange.drain()
    loop.schedule(0, loop.stop)
    loop.run()
    assert not exchange.done
    loop.close()


# -- the reload switch ---------------------------------------------------------------------------


class FakeUpstream:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeBalancer:
    """A group of a Router that is not an UpstreamGroup (the router tracks what it lent)."""

    def __init__(self, name: str) -> None:
        self.upstream = FakeUpstream(name)
        self.released: list[tuple[str, bool]] = []
        self.closed = False

    def acquire(self, px: Any, ready: Any) -> None:
        ready(self.upstream, None)

    def release(self, upstream: Any, ok: bool = True) -> None:
        self.released.append((upstream.name, ok))

    def close(self) -> None:
        self.closed = True


class FakeProxy:
    """What SwitchableBalancer needs of a ReverseProxy; acquire/release as the proxy does
    (each request is released to the selector it was acquired from)."""

    def __init__(self) -> None:
        self.selector: Any = None

    def set_upstream(self, upstream: Any) -> None:
        self.selector = upstream

    def acquire(self) -> tuple[Any, Any]:
        got: list[Any] = []
        selector = self.selector
        selector.acquire(Request(), lambda up, reason: got.append(up))
        return selector, got[0]


class Request:
    target = b"/"
    client_address = ("127.0.0.1", 1)
    req_hdrs: tuple[tuple[bytes, bytes], ...] = ()


def router_of(group: Any) -> Router:
    return Router([Route(None, b"/", group)])


def test_switch_keeps_requests_in_flight_on_their_balancer() -> None:
    old_group, new_group = FakeBalancer("old"), FakeBalancer("new")
    old, new = router_of(old_group), router_of(new_group)
    proxy = FakeProxy()
    switch = SwitchableBalancer(proxy, old)  # type: ignore[arg-type]
    assert proxy.selector is old
    first = proxy.acquire()
    switch.switch(new)
    assert proxy.selector is new
    assert not old.closed and not old_group.closed  # still lent out
    assert switch.balancers() == [new, old]
    second = proxy.acquire()
    assert [first[1].name, second[1].name] == ["old", "new"]
    first[0].release(first[1], False)
    assert old_group.released == [("old", False)]
    assert old.closed and old_group.closed  # retired and idle: closed
    assert switch.balancers() == [new]
    second[0].release(second[1], True)
    assert new_group.released == [("new", True)]
    assert not new.closed
    with pytest.raises(RuntimeError):
        second[0].release(second[1], True)


def test_switch_closes_an_idle_balancer_at_once() -> None:
    old_group, new_group = FakeBalancer("old"), FakeBalancer("new")
    old, new = router_of(old_group), router_of(new_group)
    switch = SwitchableBalancer(FakeProxy(), old)  # type: ignore[arg-type]
    switch.switch(new)
    assert old.closed and old_group.closed
    assert switch.balancers() == [new]
    switch.close()
    assert new.closed and new_group.closed


def test_switch_retires_a_router_of_upstream_groups_once_its_upstreams_are_back() -> None:
    loop = thor.loop.make()
    old_group = UpstreamGroup(["http://127.0.0.1:1"], loop=loop)
    new_group = UpstreamGroup(["http://127.0.0.1:2"], loop=loop)
    old, new = router_of(old_group), router_of(new_group)
    proxy = FakeProxy()
    switch = SwitchableBalancer(proxy, old)  # type: ignore[arg-type]
    first = proxy.acquire()
    second = proxy.acquire()
    switch.switch(new)
    third = proxy.acquire()
    assert [got[1].name for got in (first, second, third)] == [
        "127.0.0.1:1",
        "127.0.0.1:1",
        "127.0.0.1:2",
    ]
    first[0].release(first[1], True)
    assert not old.closed  # one still in flight
    second[0].release(second[1], True)
    assert old.closed
    assert switch.balancers() == [new]
    third[0].release(third[1], True)
    assert not new.closed
    switch.close()
    assert new.closed
    loop.close()


# -- byte ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"bytes=0-9", (0, 9)),
        (b"bytes=10-", (10, 99)),
        (b"bytes=-10", (90, 99)),
        (b"bytes=-1000", (0, 99)),
        (b"bytes=90-1000", (90, 99)),
        (b"BYTES = 5-5", (5, 5)),
        (b"bytes=100-", UNSATISFIABLE),
        (b"bytes=100-200", UNSATISFIABLE),
        (b"bytes=-0", UNSATISFIABLE),
        (b"bytes=0-1,5-6", None),  # several ranges: the whole file
        (b"bytes=9-1", None),
        (b"bytes=a-b", None),
        (b"bytes=-", None),
        (b"bytes=1-x", None),
        (b"items=0-1", None),
        (b"0-1", None),
    ],
)
def test_byte_ranges(value: bytes, expected: tuple[int, int] | None) -> None:
    assert byte_range(value, 100) == expected


def test_byte_ranges_of_an_empty_file() -> None:
    assert byte_range(b"bytes=0-", 0) == UNSATISFIABLE
    assert byte_range(b"bytes=-5", 0) == UNSATISFIABLE


# -- the progress bar ---------------------------------------------------------------------------


def test_progress_bar_draws_bytes_rate_and_eta() -> None:
    stream = io.StringIO()
    bar = progress_bar(4 * 1024 * 1024, "file.bin", stream)
    bar.update(2 * 1024 * 1024)
    bar.close()
    text = stream.getvalue()
    assert "file.bin" in text
    assert "2.00M/4.00M" in text  # bytes of the total, scaled by 1024
    assert "B/s" in text  # the rate
    assert "<" in text  # elapsed<remaining: the ETA


def test_progress_bar_without_tqdm_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_tqdm(name: str, package: str | None = None) -> Any:
        if name == "tqdm":
            raise ImportError("No module named 'tqdm'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_tqdm)
    stream = io.StringIO()
    assert progress_bar(100, "x", stream) is None
    assert stream.getvalue() == (
        "thor get: no progress bar: install tqdm (pip install 'thor-http[cli]')\n"
    )


def test_admin_port_in_use_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"]
        assert main([*argv, "--admin", f"127.0.0.1:{port}"]) == 1
        err = capsys.readouterr().err
        assert (
            err
            == f"thor proxy: cannot listen on 127.0.0.1:{port} (--admin): Address already in use\n"
        )


def test_access_log_that_cannot_be_opened_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"]
    assert main([*argv, "--access-log", str(tmp_path / "no" / "such" / "dir.log")]) == 1
    err = capsys.readouterr().err
    assert "cannot open the access log" in err and "No such file or directory" in err
