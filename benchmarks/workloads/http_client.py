"""HTTP client throughput against a local nginx: GET chains, sequential and many in flight.

The origin is an nginx the runner starts (one worker, pinned to another CPU, `return 200
"Hello, world!"`, keep-alive, stub_status at /nginx_status); this script gets its --url and
--status-url. For each concurrency in --concurrency (default 1 and 50) it runs the client script
(benchmarks/clients/, with this interpreter, pinned to --cpu) for --warmup + --secs seconds and
reads the JSON line it prints. Before and after each run it reads nginx's accepted-connection
count, so the table shows how many connections the client opened (about the concurrency for a
client that keeps its connections alive).

Headline (`rate`): requests per client CPU-second over the measured window (the steadier figure
on a shared machine, and the one the goals are stated in). Also requests/s, p50/p99 latency (ms),
connections opened, errors, bad responses (status or body wrong) and unfinished chains (hangs).

  thor      clients/thor_client.py: thor's HttpClient, max_server_conn = the concurrency
  aiohttp   clients/aiohttp_client.py: aiohttp.ClientSession, TCPConnector(limit=concurrency)
  httpx     clients/httpx_client.py: httpx.AsyncClient, Limits(max_connections=concurrency)
  asyncio   clients/asyncio_raw_client.py: a raw asyncio Protocol per connection, one request in
            flight on each, Content-Length framing only (the pure-Python ceiling), with glibc's
            heap tuned so that its 256 KiB reads stay on the heap (asyncio at its best)
  asyncio-glibc  the same script under glibc's initial heap settings (a 256 KiB read is an
            mmap + munmap): how ../shared/bench, whose figures the goals quote, measured it

The raw client's allocator mode is fixed for each row (MALLOC_* environment variables) because
otherwise it is chance: glibc raises its mmap threshold only after freeing a large mmapped block,
and whether that happens early depends on the process's start (venv, script path); the same
script ran at 35-48k or 67-120k requests per CPU-second here from run to run. thor's client reads
64 KiB at a time, below every threshold, and measures the same either way.
"""

from __future__ import annotations

import os
import subprocess
import sys

import _common as c
import _httpbench as h

CLIENTS = {
    "thor": ("thor_client.py", "thor HttpClient: exchange() + request_start/request_done"),
    "aiohttp": ("aiohttp_client.py", "aiohttp.ClientSession(TCPConnector(limit=N)).get"),
    "httpx": ("httpx_client.py", "httpx.AsyncClient(limits=Limits(N, N)).get"),
    "asyncio": ("asyncio_raw_client.py", "asyncio.Protocol per connection, fixed request"),
    "asyncio-glibc": (
        "asyncio_raw_client.py",
        "asyncio.Protocol per connection, fixed request, glibc's initial heap settings",
    ),
}

#: the allocator settings of each row (glibc mallopt through the environment; see the docstring)
HEAP_ENV = {
    # 256 KiB blocks from the heap, and the heap top kept rather than trimmed after each free
    "asyncio": {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "8388608"},
    # glibc's initial mmap threshold (128 KiB), held there: every 256 KiB read is mmapped
    "asyncio-glibc": {"MALLOC_MMAP_THRESHOLD_": "131072"},
}


def case_name(conc: int) -> str:
    return "sequential" if conc == 1 else f"{conc} in flight"


def measure(args, conc: int) -> dict:
    script, _ = CLIENTS[args.impl]
    cmd = [*h.taskset(args.cpu), sys.executable, "-E", "-s", str(h.BENCH / "clients" / script)]
    cmd.append(args.url)
    cmd += ["--concurrency", str(conc), "--secs", str(args.secs), "--warmup", str(args.warmup)]
    if args.profile:
        cmd += ["--profile", f"{args.profile}.{conc}"]
    accepts0 = h.nginx_accepts(args.status_url)
    try:
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=args.warmup + args.secs + 60,
            env={**os.environ, **HEAP_ENV.get(args.impl, {})},
        )
    except subprocess.TimeoutExpired as e:
        raise SystemExit(f"{script} --concurrency {conc} hung (killed after its timeout)") from e
    conns = h.nginx_accepts(args.status_url) - accepts0 - 1  # less the status request's own
    got = h.last_json_line(r.stdout)
    if r.returncode != 0 or got is None:
        raise SystemExit(f"{script} --concurrency {conc}: exit {r.returncode}: {r.stderr[-1500:]}")
    if r.stderr.strip():
        got["stderr"] = r.stderr[-1500:]
    n, cpu = got["requests"], got["cpu_s"]
    return c.case(
        n,
        got["secs"],
        cpu,
        rate=n / cpu if cpu > 0 else 0.0,
        unit="req/CPU-s",
        rps=got["rps"],
        p50_ms=got["p50_ms"],
        p99_ms=got["p99_ms"],
        kernel_share=got.get("kernel_share", 0.0),
        conns=conns,
        errors=got["errors"] + got["bad"] + got["unfinished"],
        client=got,
    )


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--url", required=True, help="the origin, http://127.0.0.1:PORT/")
    ap.add_argument("--status-url", required=True, help="its stub_status, .../nginx_status")
    ap.add_argument("--concurrency", default="1,50", help="comma-separated requests in flight")
    ap.add_argument("--secs", type=float, default=3.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds not counted")
    ap.add_argument("--cpu", type=int, default=None, help="CPU the client is pinned to")
    ap.add_argument("--profile", metavar="PREFIX", help="cProfile the client to PREFIX.N")
    args = ap.parse_args()
    if args.impl not in CLIENTS:
        ap.error(f"http_client runs on {', '.join(CLIENTS)}")
    if not args.url.startswith("http://127.0.0.1:"):
        ap.error("--url: only http://127.0.0.1:PORT/")
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.impl == "thor":
        c.import_quietly("thor.http.client")  # so the run records where thor's HttpClient came from

    cases = {case_name(n): measure(args, n) for n in levels}
    c.emit_result(args, "http_client", CLIENTS[args.impl][1], cases)


if __name__ == "__main__":
    main()
