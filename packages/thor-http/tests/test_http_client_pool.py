"""The HttpClient's pool: keep-alive reuse (counted in accepted connections), reuse from a
'response_done' listener, max_server_conn queueing, idle expiry, connections the server closed
while idle, stray bytes on an idle connection, and the loop's stop; also against nginx."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import http_client_support as support
import pytest

from thor.http.error import ConnectError

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Nginx, Recorder, ScriptedServer


harness = support.harness
scripted = support.scripted
echo_server = support.echo_server
nginx = support.nginx
read_request = support.read_request
response = support.response
keep_alive_script = support.keep_alive_script

MakeServer = Any


def test_sequential_requests_share_one_connection(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    recs: list[Recorder] = []
    for _ in range(5):
        harness.then(lambda: recs.append(harness.fetch(client, echo_server.url())))
    harness.run()
    assert [r.status for r in recs] == [b"200"] * 5
    assert echo_server.accepts == 1
    assert echo_server.requests == 5


def test_request_started_from_response_done_reuses_the_connection(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    counts: list[dict[Any, int]] = []
    recs: list[Recorder] = []

    def again(rec: Recorder) -> None:
        counts.append(client.conn_counts)
        if len(recs) < 3:
            recs.append(harness.fetch(client, echo_server.url()))

    harness.on_finished = again
    recs.append(harness.fetch(client, echo_server.url()))
    harness.run()
    assert echo_server.accepts == 1
    assert len(recs) == 3
    origin = ("http", "127.0.0.1", echo_server.port)
    assert counts[0] == {origin: 1}


def test_max_server_conn_queues_requests_fifo(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client(max_server_conn=3)
    recs = [harness.fetch(client, echo_server.url(f"/slow/50?n={n}")) for n in range(10)]
    assert client.conn_counts == {("http", "127.0.0.1", echo_server.port): 3}
    order: list[str] = []
    harness.on_finished = lambda rec: order.append(support.echoed(rec)["path"])
    harness.run()
    assert all(r.status == b"200" for r in recs)
    assert echo_server.accepts == 3
    assert echo_server.max_active <= 3
    assert set(order[:3]) == {f"/slow/50?n={n}" for n in range(3)}  # first come, first served
    assert set(order) == {f"/slow/50?n={n}" for n in range(10)}


def test_idle_connections_expire(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client(idle_timeout=0.2)
    origin = ("http", "127.0.0.1", echo_server.port)
    counts: list[dict[Any, int]] = []
    harness.fetch(client, echo_server.url())
    harness.then(lambda: counts.append(client.conn_counts))
    harness.then(lambda: counts.append(client.conn_counts), delay=0.6)
    harness.then(lambda: harness.fetch(client, echo_server.url()))
    harness.run()
    assert counts == [{origin: 1}, {}]
    assert echo_server.accepts == 2


def test_no_pooling_when_idle_timeout_is_zero(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client(idle_timeout=0)
    recs: list[Recorder] = []
    for _ in range(2):
        harness.then(lambda: recs.append(harness.fetch(client, echo_server.url())))
    harness.run()
    assert echo_server.accepts == 2
    headers = dict(support.echoed(recs[0])["headers"])
    assert headers["Connection"] == "close"
    assert recs[0].counts == {}


def test_server_closing_an_idle_connection_is_noticed(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(response(200, b"one"))
        time.sleep(0.05)
        sock.close()  # the server's idle timeout, long before the client's

    server = scripted(script)
    client = harness.client()
    counts: list[dict[Any, int]] = []
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.then(lambda: counts.append(client.conn_counts), delay=0.3)
    harness.then(lambda: recs.append(harness.fetch(client, server.url(), method=b"POST")))
    harness.run()
    assert counts == [{}]  # the close was seen: the connection left the pool
    assert [bytes(r.body) for r in recs] == [b"one", b"one"]
    assert server.accepts == 2


def test_get_on_a_connection_the_server_closed_is_retried_transparently(
    harness: Harness, scripted: MakeServer
) -> None:
    """The race: the server closes the idle connection just as the request goes out."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        _, _, rest = read_request(sock, rest)
        sock.sendall(response(200, b"first"))
        if index == 0:
            read_request(sock, rest)  # the second request arrives ... and is dropped
            sock.close()
            return
        keep_alive_script(b"fresh")(sock, index, server)

    server = scripted(script)
    client = harness.client(retry_limit=0)  # the transparent retry does not count
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.run()
    assert [r.status for r in recs] == [b"200", b"200"]
    assert bytes(recs[1].body) == b"first"  # from the second connection's first response
    assert server.accepts == 2


def test_post_sent_on_a_connection_the_server_then_closed_is_not_retried(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        _, _, rest = read_request(sock, rest)
        sock.sendall(response(200, b"first"))
        read_request(sock, rest)
        sock.close()

    server = scripted(script)
    client = harness.client()
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.then(lambda: recs.append(harness.fetch(client, server.url(), method=b"POST")))
    harness.run()
    assert isinstance(recs[1].error, ConnectError)
    assert "POST" in (recs[1].error.detail or "")
    assert server.accepts == 1


def test_post_is_not_written_on_an_idle_connection_found_closed(
    harness: Harness, scripted: MakeServer
) -> None:
    """The server's FIN is already there, but the loop has not seen it yet: the POST goes to a
    new connection instead of being lost."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(response(200, b"resp%d" % index))
        if index == 0:
            sock.close()  # right after the response, as if its idle timeout was 0
            server.event("closed").set()
        else:
            time.sleep(0.2)

    server = scripted(script)
    client = harness.client(retry_limit=0)
    recs: list[Recorder] = []

    def post(rec: Recorder) -> None:
        if len(recs) == 1:
            server.event("closed").wait(5)
            time.sleep(0.05)  # let the FIN land; the loop has not polled since
            recs.append(harness.fetch(client, server.url(), method=b"POST", body=[b"data"]))

    harness.on_finished = post
    recs.append(harness.fetch(client, server.url()))
    harness.run()
    assert recs[1].error is None
    assert bytes(recs[1].body) == b"resp1"
    assert server.accepts == 2


def test_a_queued_post_is_not_given_a_connection_found_closed_as_its_response_ends(
    harness: Harness, scripted: MakeServer
) -> None:
    """max_server_conn 1: a POST waits behind a GET. The server answers the GET and closes;
    its FIN is there by the time the client reads the answer. The connection is not handed to
    the POST (it could not be retried once written): the POST gets a new one."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        if index == 0:
            server.event("got GET").set()
            server.event("answer").wait(5)
            sock.sendall(response(200, b"resp0"))
            sock.close()  # right after the response
            server.event("closed").set()
        else:
            sock.sendall(response(200, b"resp1"))
            time.sleep(0.2)

    server = scripted(script)
    client = harness.client(retry_limit=0, max_server_conn=1)

    def answer_while_the_loop_waits() -> None:
        if not server.event("got GET").is_set():
            harness.loop.schedule(0.005, answer_while_the_loop_waits)
            return
        server.event("answer").set()
        server.event("closed").wait(5)
        time.sleep(0.05)  # the answer and the FIN land; the loop has not polled since

    get = harness.fetch(client, server.url())
    post = harness.fetch(client, server.url(), method=b"POST", body=[b"data"])
    harness.loop.schedule(0.005, answer_while_the_loop_waits)
    harness.run()
    assert bytes(get.body) == b"resp0"
    assert post.error is None
    assert bytes(post.body) == b"resp1"
    assert server.accepts == 2


def test_stray_bytes_on_an_idle_connection_close_it(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        _, _, rest = read_request(sock, rest)
        sock.sendall(response(200, b"genuine"))
        if index == 0:
            time.sleep(0.05)
            sock.sendall(response(200, b"EVIL!"))  # nobody asked
            try:
                read_request(sock, rest)
            except ConnectionError:
                server.notes.append("closed by the client")
            return
        keep_alive_script(b"second")(sock, index, server)

    server = scripted(script)
    client = harness.client()
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.then(lambda: recs.append(harness.fetch(client, server.url())), delay=0.3)
    harness.run()
    assert [bytes(r.body) for r in recs] == [b"genuine", b"genuine"]
    assert server.accepts == 2
    assert "closed by the client" in server.notes


def test_bytes_after_a_response_in_the_same_read_are_never_a_response(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        _, _, rest = read_request(sock, rest)
        if index == 0:
            sock.sendall(response(200, b"genuine") + response(200, b"EVIL!"))
            return
        sock.sendall(response(200, b"second"))

    server = scripted(script)
    client = harness.client()
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.run()
    assert [bytes(r.body) for r in recs] == [b"genuine", b"second"]
    assert recs[0].events == ["response_start", "response_body", "response_done"]
    assert server.accepts == 2


def test_connection_close_response_is_not_pooled(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(response(200, b"bye", ["Connection: close"]))
        time.sleep(0.3)  # the server does not close: the client must not reuse it anyway

    server = scripted(script)
    client = harness.client()
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.run()
    assert [bytes(r.body) for r in recs] == [b"bye", b"bye"]
    assert server.accepts == 2


def test_http10_keep_alive_response_is_pooled(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        while True:
            try:
                _, _, rest = read_request(sock, rest)
            except ConnectionError:
                return
            sock.sendall(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
            )

    server = scripted(script)
    client = harness.client()
    recs: list[Recorder] = []
    for _ in range(3):
        harness.then(lambda: recs.append(harness.fetch(client, server.url())))
    harness.run()
    assert [r.res_version for r in recs] == [b"1.0"] * 3
    assert server.accepts == 1


def test_loop_stop_drops_pooled_connections(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        keep_alive_script(b"ok")(sock, index, server)
        server.notes.append("client closed")

    server = scripted(script)
    client = harness.client()
    harness.fetch(client, server.url())
    harness.run()  # stopping the loop ...
    assert client.conn_counts == {}  # ... dropped the pooled connection
    deadline = time.monotonic() + 5
    while "client closed" not in server.notes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "client closed" in server.notes
    # the client is still usable on the next run
    rec = harness.fetch(client, server.url())
    harness.run()
    assert rec.status == b"200"
    assert server.accepts == 2


def test_pools_are_per_origin_and_host_case_insensitive(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, echo_server.url())))
    harness.then(lambda: recs.append(harness.fetch(client, echo_server.url(host="LOCALHOST"))))
    harness.then(lambda: recs.append(harness.fetch(client, echo_server.url(host="localhost"))))
    harness.run()
    assert all(r.status == b"200" for r in recs)
    assert echo_server.accepts == 2  # 127.0.0.1, and localhost (either case)
    hosts = [dict(support.echoed(r)["headers"])["Host"] for r in recs]
    assert hosts[1] == f"LOCALHOST:{echo_server.port}"  # the Host is the authority as written


def test_connection_close_by_the_application_ends_the_exchange(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        server.event("end").wait(5)

    server = scripted(script)
    client = harness.client()
    exchange = client.exchange()
    rec = harness.track(exchange)
    exchange.on("response_body", lambda chunk: exchange.conn and exchange.conn.close())
    exchange.request_start(b"GET", server.url().encode(), [])
    exchange.request_done([])
    harness.run()
    assert rec.events == ["response_start", "response_body", "error"]
    assert isinstance(rec.error, ConnectError)
    assert rec.counts == {}  # closed before the error


def test_tcp_conn_abort_by_the_application_ends_the_exchange(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        server.event("end").wait(5)

    server = scripted(script)
    client = harness.client(retry_limit=5)
    exchange = client.exchange()

    def abort(status: bytes, phrase: bytes, headers: Any) -> None:
        assert exchange.conn is not None and exchange.conn.tcp_conn is not None
        exchange.conn.tcp_conn.abort()

    rec = harness.track(exchange)
    exchange.on("response_start", abort)
    exchange.request_start(b"GET", server.url().encode(), [])
    exchange.request_done([])
    harness.run()
    assert rec.events == ["response_start", "error"]
    assert server.accepts == 1
    assert rec.counts == {}  # closed before the error


# -- against nginx -------------------------------------------------------------------------------


def test_nginx_sequential_keep_alive(harness: Harness, nginx: Nginx) -> None:
    before = nginx.accepts()
    client = harness.client()
    recs: list[Recorder] = []
    for _ in range(20):
        harness.then(lambda: recs.append(harness.fetch(client, nginx.url())))
    harness.run()
    assert [bytes(r.body) for r in recs] == [b"Hello, world!"] * 20
    assert nginx.accepts() - before == 2  # one for the client, one for the status query


def test_nginx_many_in_flight_within_max_server_conn(harness: Harness, nginx: Nginx) -> None:
    before = nginx.accepts()
    client = harness.client(max_server_conn=4)
    recs = [harness.fetch(client, nginx.url(f"/?n={n}")) for n in range(50)]
    harness.run()
    assert all(bytes(r.body) == b"Hello, world!" for r in recs)
    assert nginx.accepts() - before == 5


@pytest.mark.parametrize("method", [b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS"])
def test_nginx_methods(harness: Harness, nginx: Nginx, method: bytes) -> None:
    rec = harness.fetch(harness.client(), nginx.url(), method=method)
    harness.run()
    assert rec.status == b"200"
    assert bytes(rec.body) == (b"" if method == b"HEAD" else b"Hello, world!")
