"""An application listening to a pooled connection's TcpConnection (``exchange.conn.tcp_conn``,
reachable as in thor 0.17) does not take the response bytes away from the client.

The client reads through a sink (no listener context per read); when someone else listens to
``'data'``, the sink would get nothing, so the connection listens too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import http_client_support as support

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Recorder

harness = support.harness
echo_server = support.echo_server


def test_a_data_listener_on_the_pooled_connection_sees_the_bytes_and_the_client_still_works(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    url = f"http://127.0.0.1:{echo_server.port}/"
    seen: list[bytes] = []
    recs: list[Recorder] = [harness.fetch(client, url)]
    conns: list[Any] = []

    def second() -> None:  # on the same run: stopping the loop forgets the pooled connection
        rec = harness.fetch(client, url + "again")
        conn = rec.exchange.conn  # the pooled connection, taken at once
        assert conn is not None and conn.tcp_conn is not None
        conn.tcp_conn.on("data", seen.append)
        recs.append(rec)
        conns.append(conn)

    def third() -> None:
        rec = harness.fetch(client, url + "third")
        conns.append(rec.exchange.conn)
        recs.append(rec)

    harness.then(second)
    harness.then(third)
    harness.run()
    assert [rec.status for rec in recs] == [b"200"] * 3
    assert conns[0] is conns[1]  # the same connection served the third request too
    assert support.echoed(recs[1])["path"] == "/again"
    assert support.echoed(recs[2])["path"] == "/third"
    received = b"".join(seen)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert bytes(recs[1].body) in received and bytes(recs[2].body) in received
    assert echo_server.accepts == 1
