"""thor.http.client: an HTTP/1.1 client with pooled, persistent connections.

    import thor.loop
    from thor.http.client import HttpClient

    client = HttpClient()
    exchange = client.exchange()
    exchange.on("response_start", lambda status, phrase, headers: print(status, phrase))
    exchange.on("response_body", lambda chunk: print(len(chunk), "bytes"))
    exchange.on("response_done", lambda trailers: thor.loop.stop())
    exchange.on("error", lambda err: (print(err), thor.loop.stop()))
    exchange.request_start(b"GET", b"https://example.com/", [])
    exchange.request_done([])
    thor.loop.run()

``HttpClient`` holds the settings and the connection pool (``_client``), ``HttpClientExchange``
is one request and its response (``_exchange``), ``HttpClientConnection`` one pooled connection
(``_connection``). ``python -m thor.http.client URL`` fetches a URL and prints the response.
"""

from ._client import HttpClient, OriginType
from ._connection import HttpClientConnection
from ._exchange import HttpClientExchange

__all__ = ["HttpClient", "HttpClientConnection", "HttpClientExchange", "OriginType"]
