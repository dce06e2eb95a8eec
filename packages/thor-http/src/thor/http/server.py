"""thor.http.server: the HTTP/1.1 server (thor 0.17's API).

    import thor.loop
    from thor.events import on
    from thor.http.server import HttpServer

    def hello(exchange):
        @on(exchange)
        def request_done(trailers):
            exchange.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
            exchange.response_body(b"Hello, world!")
            exchange.response_done([])

    server = HttpServer(b"127.0.0.1", 8000)
    server.on("exchange", hello)
    thor.loop.run()

``HttpServer`` (``_server.py``) listens and keeps the settings, ``HttpServerConnection``
(``_server_connection.py``) turns one connection's bytes into exchanges and writes their
responses in order, ``HttpServerExchange`` (``_server_exchange.py``) is the application's side
of one request, and ``_server_framing.py`` decides and writes a response head.
"""

from ._server import HttpServer
from ._server_connection import HttpServerConnection
from ._server_exchange import HttpServerExchange

__all__ = ["HttpServer", "HttpServerConnection", "HttpServerExchange"]
