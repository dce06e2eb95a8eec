"""HttpClient.defer_writes: a request written from inside a loop pass waits in its
connection's queue until the pass's IO is dispatched (thor-net's TcpConnection.defer_writes),
then goes out; False writes it at once. Against Python's http.server on 127.0.0.1."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import http_client_support as support

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Recorder

    from thor.http.client import HttpClient


harness = support.harness
echo_server = support.echo_server


def _queued_after_request(
    harness: Harness, client: HttpClient, echo_server: EchoServer, body: bytes
) -> tuple[list[int], list[Recorder]]:
    """Fetch once, then a POST from that response's 'response_done' listener (a loop pass, on
    the pooled connection); the bytes its connection holds right after request_done."""
    queued: list[int] = []
    recs: list[Recorder] = []

    def again(rec: Recorder) -> None:
        if len(recs) == 1:
            recs.append(harness.fetch(client, echo_server.url("/second"), b"POST", body=body))
            conn = recs[1].exchange.conn
            assert conn is not None and conn.tcp_conn is not None
            queued.append(conn.tcp_conn.write_buffer_size)

    harness.on_finished = again
    recs.append(harness.fetch(client, echo_server.url("/first")))
    harness.run()
    return queued, recs


def test_requests_written_in_a_pass_wait_for_its_io_dispatch(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    assert client.defer_writes is True
    queued, recs = _queued_after_request(harness, client, echo_server, b"hello")
    assert queued and queued[0] > len(b"hello")  # the head and the body, still queued
    assert [r.status for r in recs] == [b"200", b"200"]
    echoed = json.loads(bytes(recs[1].body))
    assert (echoed["method"], echoed["path"], echoed["body"]) == ("POST", "/second", "hello")
    assert echo_server.accepts == 1


def test_defer_writes_false_writes_at_once(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client(defer_writes=False)
    queued, recs = _queued_after_request(harness, client, echo_server, b"hello")
    assert queued == [0]
    assert [r.status for r in recs] == [b"200", b"200"]
    assert json.loads(bytes(recs[1].body))["body"] == "hello"


def test_many_requests_started_in_one_pass_all_complete(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client(max_server_conn=4)
    recs: list[Recorder] = []

    def burst() -> None:  # from a callback of the running loop: every write is deferred
        for n in range(20):
            recs.append(
                harness.fetch(client, echo_server.url(f"/n{n}"), b"PUT", body=b"x" * (n * 1000))
            )

    harness.then(burst)
    harness.run()
    assert [r.status for r in recs] == [b"200"] * 20
    for n, rec in enumerate(recs):
        echoed = json.loads(bytes(rec.body))
        assert (echoed["path"], len(echoed["body"])) == (f"/n{n}", n * 1000)
    assert echo_server.accepts <= 4
