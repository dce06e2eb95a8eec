#!/usr/bin/env python3
"""List the instructions on thor's hot path that CPython 3.11 runs unspecialised.

CPython 3.11 rewrites an instruction it has run often into a specialised form (an attribute
read becomes a read at a known index of the instance's values, for example). Some reads are
never specialised: an attribute that the instance does not have and the class provides (a
class default), a property, any attribute of an object whose ``__dict__`` has been touched,
a method called through an instance or slot attribute. On a path run for every request each
costs 15-60 ns more than its specialised form; a profiler does not show them, this does.

It serves keep-alive hello requests from a thread on 127.0.0.1 (``--close``: one connection per
request), lets the interpreter specialise what it will, records each thor function's adaptive
instructions, then traces a few hundred more requests to learn which lines run per request,
and prints the instructions still in their adaptive (unspecialised) form on those lines, with
how many times per request the line ran. A line is listed whole: a read behind ``and``/``or``
may not have run. Calls to builtins and C methods that 3.11 cannot specialise are left out
(``--all`` shows them).

Usage: hatch run python tools/unspecialised_reads.py [--close] [--all] [--requests N]
(the hatch environment's Python is 3.11 here, with the packages installed)
"""

from __future__ import annotations

import argparse
import collections
import dis
import gc
import platform
import socket
import sys
import threading
import time
import types
from typing import Any

import thor.loop
from thor.events import on
from thor.http.server import HttpServer, HttpServerExchange

ROOT_MARK = "/thor/"
#: (typed as the 3.10 target mypy checks against, which has neither ``adaptive`` nor
#: ``Instruction.positions``)
get_instructions: Any = dis.get_instructions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--close", action="store_true", help="Connection: close requests")
    parser.add_argument("--all", action="store_true", help="list unspecialised calls too")
    parser.add_argument("--requests", type=int, default=20000, help="warm-up requests")
    args = parser.parse_args()
    if platform.python_version_tuple()[:2] != ("3", "11"):
        print("this tool reads CPython 3.11's adaptive instructions: run it with python3.11")
        return 2

    body = b"Hello, world!"
    headers = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(body))]

    def exchange(exch: HttpServerExchange) -> None:
        @on(exch)
        def request_done(trailers: list[tuple[bytes, bytes]]) -> None:
            exch.response_start(b"200", b"OK", headers)
            exch.response_body(body)
            exch.response_done([])

    server = HttpServer(b"127.0.0.1", 0)
    server.on("exchange", exchange)
    port = server.port
    codes: dict[types.CodeType, list[tuple[int | None, str, str]]] = {}
    executed: collections.Counter[tuple[str, int]] = collections.Counter()
    traced = 500
    sockets = 4

    def tracer(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            executed[(frame.f_code.co_filename, frame.f_lineno)] += 1
        return tracer

    def snapshot() -> None:
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType) and ROOT_MARK in obj.__code__.co_filename:
                code = obj.__code__
                codes[code] = [
                    (ins.positions.lineno if ins.positions else None, ins.opname, ins.argrepr)
                    for ins in get_instructions(code, adaptive=True)
                ]
        sys.settrace(tracer)

    def client() -> None:
        time.sleep(0.2)
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        request += b"Connection: close\r\n\r\n" if args.close else b"\r\n"
        conns: list[socket.socket] = []
        if not args.close:
            conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
        for i in range(args.requests + traced):
            if i == args.requests:
                thor.loop.schedule(0, snapshot)
                time.sleep(0.3)
            if args.close:
                conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
            for conn in conns:
                conn.sendall(request)
            for conn in conns:
                if args.close:
                    while conn.recv(65536):
                        pass
                    conn.close()
                else:
                    conn.recv(65536)
        for conn in conns:
            conn.close()
        thor.loop.schedule(0, thor.loop.stop)

    threading.Thread(target=client, daemon=True).start()
    thor.loop.run()
    sys.settrace(None)

    skipped = ("CALL_ADAPTIVE", "PRECALL_ADAPTIVE", "BINARY_SUBSCR_ADAPTIVE")
    per_request = traced * sockets
    rows = []
    for code, instructions in codes.items():
        for line, opname, argrepr in instructions:
            if not opname.endswith("_ADAPTIVE") or (not args.all and opname in skipped):
                continue
            if line is None:
                continue
            runs = executed.get((code.co_filename, line), 0) / per_request
            if runs >= 0.9:
                where = code.co_filename.split(ROOT_MARK, 1)[1]
                rows.append((where, line, runs, code.co_name, opname, argrepr))
    for where, line, runs, name, opname, argrepr in sorted(rows):
        print(f"{runs:4.1f}/request  {where}:{line}  {name}  {opname}({argrepr})")
    print(f"{len(rows)} unspecialised instructions on lines run per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
