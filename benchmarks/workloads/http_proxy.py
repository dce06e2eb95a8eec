"""Reverse proxies in front of an nginx origin, measured with wrk: the proxy on one CPU, wrk and
the origin on the other.

The workload starts its own origin: nginx, one worker, pinned to --load-cpu, serving GET / (200
text/plain "Hello, world!", 13 bytes) and GET /1m (a 1 MiB file), keep-alive, with stub_status.
Then, for each size in --sizes, a fresh proxy process on a free port, pinned to --server-cpu
(except with --workers, see below), in front of that origin, and:

  1. check   two GETs on one client connection through the proxy: both 200, the body exactly the
             origin's (13 bytes; the 1 MiB file byte for byte), the connection kept alive. A
             proxy failing the check is not measured (the run fails, saying why).
  2. warm-up wrk for --warmup seconds, not counted (the proxy's upstream pool fills here).
  3. measure `wrk -t1 -c{conns} -d{--secs}s --latency` (--conns for 13 bytes, --conns-large for
             1 MiB), wrk pinned to --load-cpu, while the proxy's CPU (user + system of its process
             tree, /proc) and the origin's accepted-connection count are read before and after.
  4. check   the same two GETs again, then the proxy is stopped.

Headline (`rate`): for 13-byte bodies, requests per proxy CPU-second (wrk's requests / the proxy's
CPU seconds); for 1 MiB bodies, MB/s (10^6 bytes per second, as wrk read them). Also: req/s,
MB/s and requests per proxy CPU-second for both sizes, p50/p99 latency, `proxy busy` (proxy CPU
seconds per wall second: ~1 means the proxy's CPU was the limit), upstream connections the
origin accepted during the measured run (0 once the proxy's pool is warm), the proxy's RSS
after the run, errors (non-2xx + socket errors).

  --impl thor      benchmarks/proxies/thor_proxy.py (thor.http.proxy.ReverseProxy) in the new venv,
                   benchmarks/proxies/thor017_proxy.py (HttpServer + HttpClient relay) in the
                   classic one: the script is chosen by which thor the interpreter has
  --impl aiohttp   benchmarks/proxies/aiohttp_proxy.py (web.Server + ClientSession), asyncio loop
  --impl uvloop    the same on uvloop
  --impl nginx     nginx, one worker, proxy_pass to a keep-alive upstream pool of 64
                   (benchmarks/proxies/nginx_proxy.conf): the native ceiling

--via cli (thor new only) runs the proxy through thor's command line instead, `python -m
thor.http proxy --listen 127.0.0.1:PORT --upstream http://ORIGIN` (its Router/UpstreamGroup path).
--workers N (thor new only) runs N proxy processes sharing the port: `python -m thor.http proxy
... --workers N` when thor's command line has it (or with --via cli), else thor_proxy.py
--workers N (SO_REUSEPORT; or with --via script). Those processes are NOT pinned to one CPU: they
may run on --server-cpu and --load-cpu, beside wrk and the origin. Their CPU is the whole tree's.
Since the runner's noise check attributes CPU per CPU, for such a run the CPU used by other
processes (all CPUs' busy time less everything this workload started) is split evenly between
the two CPUs in what the workload reports as its load (`load_cpu_s`).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import _httpbench as h

PROXIES = h.BENCH / "proxies"
ONE_MIB = bytes(range(256)) * 4096
SIZES = {
    "small": ("13-byte body", "/", h.BODY),
    "1m": ("1 MiB body", "/1m", ONE_MIB),
}
IMPLS = {
    "thor": "thor reverse proxy (new: thor.http.proxy.ReverseProxy; 0.17: HttpServer+HttpClient)",
    "aiohttp": "aiohttp web.Server + ClientSession (pool 64), asyncio loop",
    "uvloop": "aiohttp web.Server + ClientSession (pool 64), uvloop",
    "nginx": "nginx proxy_pass, 1 worker, upstream keepalive 64",
}


def nginx_binary() -> str:
    exe = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if exe is None:
        raise SystemExit("http_proxy needs nginx (apt-get install nginx-light)")
    return exe


def fill(template: str, out: Path, **values: Any) -> Path:
    """Write PROXIES/template to `out` with every @NAME@ replaced by values[name]."""
    text = (PROXIES / template).read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    out.write_text(text)
    return out


def nginx_cmd(conf: Path, work: Path) -> list[str]:
    return [nginx_binary(), "-p", str(work), "-e", str(work / "nginx-stderr.log"), "-c", str(conf)]


def classic_thor() -> bool:
    """True when this interpreter's thor is classic 0.17 (a thor/loop.py module)."""
    import thor.loop

    return not thor.loop.__file__.endswith("__init__.py")


def has_cli() -> bool:
    """Does this thor have `python -m thor.http proxy --workers N` (its --help says so)?"""
    try:
        if importlib.util.find_spec("thor.http.cli") is None:
            return False
    except ImportError:
        return False
    cmd = [sys.executable, "-E", "-s", "-m", "thor.http", "proxy", "--help"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and "--workers" in r.stdout


def proxy_cmd(args, size: str, port: int, oport: int, work: Path) -> tuple[list[str], str]:
    """The proxy's command line and a description of it."""
    origin = f"127.0.0.1:{oport}"
    py = [sys.executable, "-E", "-s"]
    if args.impl == "nginx":
        conf = work / f"proxy-{port}.conf"
        fill("nginx_proxy.conf", conf, DIR=work, PORT=port, ORIGIN_PORT=oport)
        return nginx_cmd(conf, work), "nginx (proxies/nginx_proxy.conf)"
    if args.impl in ("aiohttp", "uvloop"):
        cmd = [*py, str(PROXIES / "aiohttp_proxy.py"), str(port), origin]
        cmd += ["--uvloop"] if args.impl == "uvloop" else []
        return cmd, "proxies/aiohttp_proxy.py" + (" --uvloop" if args.impl == "uvloop" else "")
    if classic_thor():
        return [*py, str(PROXIES / "thor017_proxy.py"), str(port), origin], "thor017_proxy.py"
    via = args.via or ("cli" if args.workers > 1 and has_cli() else "script")
    if via == "cli":
        cmd = [*py, "-m", "thor.http", "proxy", "--listen", f"127.0.0.1:{port}"]
        cmd += ["--upstream", f"http://{origin}"]
        if args.workers > 1:
            return [*cmd, "--workers", str(args.workers)], f"thor proxy --workers {args.workers}"
        return cmd, "thor proxy"
    cmd = [*py, str(PROXIES / "thor_proxy.py"), str(port), origin]
    if args.profile:
        cmd += ["--profile", f"{args.profile}.{size}"]
    if args.workers > 1:
        return [*cmd, "--workers", str(args.workers)], f"thor_proxy.py --workers {args.workers}"
    return cmd, "proxies/thor_proxy.py"


def cpus(spec: str) -> list[str]:
    """`taskset -c SPEC`: the process may run on the CPUs listed (a list like "0,1")."""
    exe = shutil.which("taskset")
    if exe is None:
        raise SystemExit("taskset not found (util-linux): cannot place the processes")
    return [exe, "-c", spec]


def check(port: int, path: str, body: bytes) -> str:
    """'' when two GETs of `path` on one connection through the proxy both answer 200 with
    exactly `body` and the connection stays open between them; else what was wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sock = None
        for i in (1, 2):
            conn.request("GET", path)
            r = conn.getresponse()
            got = r.read()
            if r.status != 200:
                return f"request {i}: status {r.status} {got[:200]!r}"
            if got != body:
                return f"request {i}: body {got[:60]!r} ({len(got)} bytes), expected {len(body)}"
            if body == h.BODY and not (r.getheader("Content-Type") or "").startswith("text/plain"):
                return f"request {i}: Content-Type {r.getheader('Content-Type')!r}"
            if r.will_close:
                return f"request {i}: the proxy closes the connection (not kept alive)"
            if i == 1:
                sock = conn.sock
            elif conn.sock is not sock:
                return "the connection was not kept alive"
    except (OSError, http.client.HTTPException) as e:
        return f"GET {path} failed: {e!r}"
    finally:
        conn.close()
    return ""


def cpu_busy() -> dict[str, float]:
    """Busy seconds (user + nice + system) per CPU so far, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                out[parts[0]] = (int(parts[1]) + int(parts[2]) + int(parts[3])) / h.CLK_TCK
    return out


def measure(args, size: str, oport: int, work: Path) -> tuple[dict, float]:
    """One size on a fresh proxy: its case, and the CPU seconds wrk used (on the load CPU)."""
    what, path, body = SIZES[size]
    conns = args.conns if size == "small" else args.conns_large
    port = h.free_port()
    cmd, desc = proxy_cmd(args, size, port, oport, work)
    if args.workers > 1:  # not pinned to one CPU: the server's and the load's
        cmd = [*cpus(f"{args.server_cpu},{args.load_cpu}"), *cmd]
        cpu = None
    else:
        cpu = args.server_cpu
    url = f"http://127.0.0.1:{port}{path}"
    status_url = f"http://127.0.0.1:{oport}/nginx_status"
    with h.Process(f"proxy-{args.label or args.impl}-{size}", cmd, cpu) as proxy:
        if not h.wait_port(port, 30, proxy.alive):
            raise SystemExit(f"{desc} did not listen on {port}: {proxy.tail()}")
        if args.workers > 1:
            wait_workers(proxy.pid, args.workers)
        problem = check(port, path, body)
        if problem:
            raise SystemExit(f"{desc}: check failed ({what}), not measured: {problem}")
        load0 = h.children_cpu_s()
        if args.warmup > 0:
            h.wrk(url, conns, args.warmup, False, args.load_cpu)
        accepts0 = h.nginx_accepts(status_url)
        split0 = h.tree_cpu_split(proxy.pid)
        t0 = time.perf_counter()
        res = h.wrk(url, conns, args.secs, False, args.load_cpu)
        wall = time.perf_counter() - t0
        split1 = h.tree_cpu_split(proxy.pid)
        used = sum(split1) - sum(split0)
        upstream = h.nginx_accepts(status_url) - accepts0 - 1  # less the second status request
        load = h.children_cpu_s() - load0  # the two wrk runs (the proxy is not reaped yet)
        rss = h.tree_rss_mib(proxy.pid)
        processes = len(h.tree(proxy.pid))
        if not proxy.alive():
            raise SystemExit(f"{desc} died under load ({what}): {proxy.tail()}")
        after = check(port, path, body)
        if after:
            raise SystemExit(f"{desc}: after the load ({what}): {after}")
    n = res["requests"]
    mb_s = res["bytes_read"] / res["secs"] / 1e6 if res["secs"] else 0.0
    per_cpu = n / used if used > 0 else 0.0
    case = c.case(
        n,
        res["secs"],
        used,
        rate=per_cpu if size == "small" else mb_s,
        unit="req/CPU-s" if size == "small" else "MB/s",
        rps=res["rps"],
        mb_s=mb_s,
        req_per_cpu_s=per_cpu,
        p50_ms=res["p50_ms"],
        p99_ms=res["p99_ms"],
        errors=res["errors"],
        non2xx=res["non2xx"],
        socket_errors=res["socket_errors"],
        proxy_busy=round(used / wall, 3) if wall > 0 else 0.0,
        kernel_share=h.kernel_share(split0, split1),
        upstream_conns=upstream,
        rss_mib=round(rss, 1),
        processes=processes,
        pinned=cpu is not None,
        proxy=desc,
        conns=conns,
        wrk=" ".join(res["cmd"][res["cmd"].index("-t1") - 1 :]),
    )
    return case, load


def wait_workers(pid: int, workers: int, timeout: float = 10.0) -> None:
    """Give a multi-process proxy time to have all its workers listening: wait until its tree has
    more than `workers` processes (a parent and its workers), then a moment more."""
    deadline = time.monotonic() + timeout
    while len(h.tree(pid)) <= workers and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)


def start_origin(work: Path, load_cpu: int) -> tuple[h.Process, int]:
    www = work / "www"
    www.mkdir()
    (www / "1m").write_bytes(ONE_MIB)
    for p in (work, www):  # nginx's worker may run as another user
        p.chmod(0o755)
    (www / "1m").chmod(0o644)
    oport = h.free_port()
    conf = fill("nginx_origin.conf", work / "origin.conf", DIR=work, PORT=oport, WWW=www)
    origin = h.Process("proxy-origin", nginx_cmd(conf, work), load_cpu)
    if not h.wait_port(oport, 20, origin.alive):
        raise SystemExit(f"origin nginx did not listen on {oport}: {origin.tail()}")
    for size, (_, path, body) in SIZES.items():
        problem = check(oport, path, body)
        if problem:
            origin.stop()
            raise SystemExit(f"origin nginx ({size}): {problem}")
    return origin, oport


def versions(impl: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    r = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True)
    out["nginx"] = (r.stderr or r.stdout).strip().rsplit("/", 1)[-1]
    if impl == "uvloop":
        from importlib.metadata import version

        out["aiohttp"] = version("aiohttp")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--impl", choices=list(IMPLS), required=True)
    ap.add_argument("--label", default="", help="the row name the runner uses (recorded only)")
    ap.add_argument("--sizes", default="small,1m", help="small (13 bytes), 1m (1 MiB) or both")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections, 13-byte bodies")
    ap.add_argument("--conns-large", type=int, default=10, help="wrk connections, 1 MiB bodies")
    ap.add_argument("--secs", type=int, default=5, help="measured wrk run, whole seconds")
    ap.add_argument("--warmup", type=int, default=1, help="wrk warm-up, whole seconds (0: none)")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU the proxy is pinned to")
    ap.add_argument("--load-cpu", type=int, default=1, help="CPU of wrk and the origin")
    ap.add_argument("--workers", type=int, default=1, help="(thor new) proxy processes, unpinned")
    ap.add_argument(
        "--via",
        choices=("cli", "script"),
        help="(thor new) run the proxy as `python -m thor.http proxy --upstream ...` (cli: thor's "
        "command line, its UpstreamGroup/Router path) or proxies/thor_proxy.py (script: "
        "ReverseProxy(server, URL)); default: script, and for --workers the command line when "
        "its --help has --workers",
    )
    ap.add_argument(
        "--profile",
        metavar="PREFIX",
        help="(thor new, proxies/thor_proxy.py) cProfile the proxy to PREFIX.small / PREFIX.1m",
    )
    args = ap.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(s not in SIZES for s in sizes):
        ap.error(f"--sizes: choose from {', '.join(SIZES)}")
    if (args.workers > 1 or args.via) and (args.impl != "thor" or classic_thor()):
        ap.error("--workers, --via: for the thor new proxy only")
    if args.profile and (args.impl != "thor" or classic_thor() or args.via or args.workers > 1):
        ap.error("--profile: for the thor new proxy script (no --via, no --workers) only")
    if args.via == "cli" and not has_cli():
        raise SystemExit("--via cli: this thor has no `python -m thor.http proxy --workers`")
    if args.impl == "thor":
        c.import_quietly("thor.http.server")
        c.import_quietly("thor.http.proxy")

    busy0 = cpu_busy()
    h.log_dir()
    work = Path(tempfile.mkdtemp(prefix="proxy-", dir=h.SCRATCH))
    cases = {}
    load_cpu_s = 0.0
    try:
        origin, oport = start_origin(work, args.load_cpu)
        try:
            for size in sizes:
                cases[SIZES[size][0]], load = measure(args, size, oport, work)
                load_cpu_s += load
            load_cpu_s += h.tree_cpu_s(origin.pid)
        finally:
            origin.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.workers > 1:
        # the proxy ran on both CPUs: report as load what ran on the load CPU, taking the other
        # processes' share to be half of all the CPU they used (see the docstring)
        busy1 = cpu_busy()
        busy = {k: busy1[k] - busy0.get(k, 0.0) for k in busy1}
        ours = h.children_cpu_s() + time.process_time()
        foreign = max(0.0, sum(busy.values()) - ours)
        load_cpu_s = max(0.0, busy.get(f"cpu{args.load_cpu}", 0.0) - foreign / 2)
    c.emit_result(
        args,
        "http_proxy",
        IMPLS[args.impl] + (f", {args.workers} workers, unpinned" if args.workers > 1 else ""),
        cases,
        load_cpu_s=load_cpu_s,
        versions=versions(args.impl),
    )


if __name__ == "__main__":
    main()
