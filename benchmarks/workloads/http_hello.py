"""Hello-world HTTP server throughput, measured with wrk: the server on one CPU, wrk on another.

For each mode (keep-alive; Connection: close) a fresh server process is started on a free port,
pinned to --server-cpu (a script from benchmarks/servers/, run with this interpreter), then:

  1. check   curl fetches GET / twice: both must be 200, text/plain, exactly "Hello, world!"
             (13 bytes), and the connection must be reused (keep-alive) -- or, with a
             Connection: close request, answered with Connection: close and not reused; in
             close mode a raw socket also checks that the server closes after answering. A
             server failing the check is not measured (the run fails, saying why).
  2. warm-up wrk for --warmup seconds, not counted.
  3. measure `wrk -t1 -c{--conns} -d{--secs}s --latency [-H "Connection: close"]`, wrk pinned to
             --load-cpu, while the server's CPU (user + system of its process tree, from
             /proc/PID/stat) is read before and after.
  4. check   curl again (the server still answers correctly after the load), then the server is
             stopped.

Headline (`rate`): requests per server CPU-second (wrk's request count / the server's CPU
seconds over the wrk run): the steadier figure on a shared machine, and the one the goals are
stated in. Also: wrk's requests/s, p50/p99 latency (ms), errors (non-2xx responses + socket
errors), the server's RSS after the run, mean bytes per response.

  thor      servers/thor_hello.py: thor's HttpServer ('exchange' -> 'request_done' ->
            response_start/response_body/response_done), ours or 0.17
  aiohttp   servers/aiohttp_hello.py: aiohttp.web.Server (low-level, no app/router)
  uvicorn   servers/uvicorn_hello.py: raw ASGI app, uvicorn + httptools + uvloop
  asyncio   servers/asyncio_raw_hello.py: a stdlib asyncio Protocol that parses nothing (the
            pure-Python ceiling)
"""

from __future__ import annotations

import sys
import time

import _common as c
import _httpbench as h

SERVERS = {
    "thor": ("thor_hello.py", "thor HttpServer: 'exchange' + 'request_done' -> response_*"),
    "aiohttp": ("aiohttp_hello.py", "aiohttp.web.Server (low-level), handler returns Response"),
    "uvicorn": ("uvicorn_hello.py", "raw ASGI app on uvicorn, http=httptools, loop=uvloop"),
    "asyncio": ("asyncio_raw_hello.py", "asyncio.Protocol answering each CRLFCRLF, no parsing"),
}
MODES = {"keepalive": "keep-alive", "close": "Connection: close"}


def measure(args, mode: str) -> tuple[dict, float]:
    """One mode on a fresh server: its case, and the CPU seconds wrk and curl used (on the load
    CPU, and in curl's case wherever it ran)."""
    close = mode == "close"
    script, _ = SERVERS[args.impl]
    port = h.free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-E", "-s", str(h.BENCH / "servers" / script), str(port)]
    if args.profile:
        cmd += ["--profile", f"{args.profile}.{mode}"]
    load0 = h.children_cpu_s()
    with h.Process(f"hello-{args.impl}-{mode}", cmd, args.server_cpu) as srv:
        if not h.wait_port(port, 30, srv.alive):
            raise SystemExit(f"{script} did not listen on {port}: {srv.tail()}")
        problem = h.curl_check(url, close) or (h.eof_check(port) if close else "")
        if problem:
            raise SystemExit(f"{script}: check failed ({MODES[mode]}), not measured: {problem}")
        if args.warmup > 0:
            h.wrk(url, args.conns, args.warmup, close, args.load_cpu)
        split0 = h.tree_cpu_split(srv.pid)
        t0 = time.perf_counter()
        res = h.wrk(url, args.conns, args.secs, close, args.load_cpu)
        wall = time.perf_counter() - t0
        split1 = h.tree_cpu_split(srv.pid)
        cpu = sum(split1) - sum(split0)
        rss = h.tree_rss_mib(srv.pid)
        if not srv.alive():
            raise SystemExit(f"{script} died under load ({MODES[mode]}): {srv.tail()}")
        after = h.curl_check(url, close)
        if after:
            raise SystemExit(f"{script}: after the load ({MODES[mode]}): {after}")
        load = h.children_cpu_s() - load0  # wrk and curl (the server is not reaped yet)
    n = res["requests"]
    case = c.case(
        n,
        res["secs"],
        cpu,
        rate=n / cpu if cpu > 0 else 0.0,
        unit="req/CPU-s",
        rps=res["rps"],
        p50_ms=res["p50_ms"],
        p90_ms=res["p90_ms"],
        p99_ms=res["p99_ms"],
        errors=res["errors"],
        non2xx=res["non2xx"],
        socket_errors=res["socket_errors"],
        server_busy=round(cpu / wall, 3) if wall > 0 else 0.0,
        kernel_share=h.kernel_share(split0, split1),
        rss_mib=round(rss, 1),
        bytes_per_response=round(res["bytes_read"] / n, 1) if n else 0.0,
        wrk=" ".join(res["cmd"][res["cmd"].index("-t1") - 1 :]),
    )
    return case, load


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--modes", default="keepalive,close", help="keepalive, close or both")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections")
    ap.add_argument("--secs", type=int, default=5, help="measured wrk run, whole seconds")
    ap.add_argument("--warmup", type=int, default=1, help="wrk warm-up, whole seconds (0: none)")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to")
    ap.add_argument("--load-cpu", type=int, default=1, help="CPU wrk is pinned to")
    ap.add_argument("--profile", metavar="PREFIX", help="(thor) cProfile the server to PREFIX.MODE")
    args = ap.parse_args()
    if args.impl not in SERVERS:
        ap.error(f"http_hello runs on {', '.join(SERVERS)}")
    if args.profile and args.impl != "thor":
        ap.error("--profile: only the thor server script takes it")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        ap.error(f"--modes: choose from {', '.join(MODES)}")
    if args.impl == "thor":
        c.import_quietly("thor.http.server")  # so the run records where thor's HttpServer came from

    cases = {}
    load_cpu_s = 0.0
    for mode in modes:
        cases[MODES[mode]], load = measure(args, mode)
        load_cpu_s += load
    # load_cpu_s: CPU our helpers (wrk, curl) used off the server's CPU; the runner subtracts it
    # when it looks for other processes on the pinned CPUs
    c.emit_result(args, "http_hello", SERVERS[args.impl][1], cases, load_cpu_s=load_cpu_s)


if __name__ == "__main__":
    main()
