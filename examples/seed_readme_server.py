"""The seed README's server example, as written for classic thor, with bytes where thor needs them.

python examples/seed_readme_server.py [PORT]     # then: curl http://127.0.0.1:8000/
"""

import sys

import thor


def test_handler(exch):
    @thor.events.on(exch)
    def request_start(*args):
        exch.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
        exch.response_body(b"Hello, world!")
        exch.response_done([])


if __name__ == "__main__":
    demo_server = thor.HttpServer(b"127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    demo_server.on("exchange", test_handler)
    thor.run()
