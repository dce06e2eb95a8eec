"""The seed README's hello-world server, with bytes where thor needs them.

    python examples/hello_server.py [PORT]      # then: curl http://127.0.0.1:8000/

Serves until interrupted (Ctrl-C or SIGTERM stop it gracefully: requests in flight are
answered, then the loop stops).
"""

from __future__ import annotations

import signal
import sys

import thor.loop
from thor.events import on
from thor.http.server import HttpServer, HttpServerExchange


def test_handler(exch: HttpServerExchange) -> None:
    @on(exch)
    def request_start(*args: object) -> None:
        exch.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
        exch.response_body(b"Hello, world!")
        exch.response_done([])


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    demo_server = HttpServer(b"127.0.0.1", port)
    demo_server.on("exchange", test_handler)
    demo_server.on("start", lambda: print(f"listening on http://127.0.0.1:{port}/", flush=True))
    demo_server.on("stop", thor.loop.stop)
    loop = thor.loop._loop
    loop.add_signal_handler(signal.SIGINT, demo_server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, demo_server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
