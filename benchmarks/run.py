#!/usr/bin/env python3
"""thor's benchmark suite: our packages (the working tree) against classic thor 0.17, asyncio,
uvloop, pyee, aiohttp, uvicorn and httpx, on the same machine in the same invocation.

    python benchmarks/run.py                       # everything, 3 interleaved rounds
    python benchmarks/run.py --quick               # 1 round, smaller counts
    python benchmarks/run.py --only echo,loop_burst --rounds 5
    python benchmarks/run.py --only http_hello,http_client

Standard library only. It prepares three venvs under $THOR_BENCH_VENVS (default
/tmp/thor-bench-venvs) with $THOR_BENCH_PYTHON (default python3.11):

    new       thor-events + thor-loop + thor-net + thor-http from ./packages, reinstalled
              (non-editable) on every run (plus thor-net's one dependency, dnspython, from PyPI)
    classic   thor==0.17.0 from PyPI (it owns thor/ too, hence its own venv)
    peers     pyee, uvloop, aiohttp, uvicorn, httptools, httpx (asyncio is the stdlib's)

Every workload (benchmarks/workloads/*.py) runs in a fresh interpreter pinned to one CPU
(taskset -c $THOR_BENCH_CPU, default 0), implementations interleaved round by round. The HTTP
workloads put their load on a second CPU ($THOR_BENCH_LOAD_CPU, default 1): wrk for http_hello,
and for http_client an nginx the runner starts on a free port. Markdown tables go to stdout
(progress to stderr); every run's raw figures and the tables are saved under bench-results/
($THOR_BENCH_RESULTS). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = HERE / "workloads"
VENVS = Path(os.environ.get("THOR_BENCH_VENVS", "/tmp/thor-bench-venvs"))
RESULTS = Path(os.environ.get("THOR_BENCH_RESULTS", str(ROOT / "bench-results")))
BASE_PYTHON = os.environ.get("THOR_BENCH_PYTHON", "python3.11")
CPU = os.environ.get("THOR_BENCH_CPU", "0")
LOAD_CPU = os.environ.get("THOR_BENCH_LOAD_CPU", "1")  # wrk, nginx (the HTTP workloads)
NOISY_STEAL = float(os.environ.get("THOR_BENCH_NOISY_STEAL", "20"))
NOISY_FOREIGN = float(os.environ.get("THOR_BENCH_NOISY_FOREIGN", "10"))
CLASSIC_VERSION = "0.17.0"
NEW_PACKAGES = ("thor-events", "thor-loop", "thor-net", "thor-http")
# what each of our distributions installs under thor/ (compared with the tree after installing)
NEW_MODULES = {
    "thor-events": ("events",),
    "thor-loop": ("loop",),
    "thor-net": ("tcp", "tls", "udp", "dns"),
    "thor-http": ("http",),
}
PEER_DISTS = ("pyee", "uvloop", "aiohttp", "uvicorn", "httptools", "httpx")
NEW_DEPENDENCIES = ("dnspython>=2.6,<3",)  # thor-net's, from PyPI; ours go in with --no-deps

NEW = "thor new"
CLASSIC = "thor 0.17"
GOAL_VS_CLASSIC = 3.0
GOAL_VS_ASYNCIO = 1 / 1.5
GOAL_CHAIN_BURST = 0.8  # "about 1": chained callbacks should cost what a burst does
# tcp_slow_reader: "the writer's memory stays bounded" while 32 MiB go to a slow reader
GOAL_SLOW_QUEUED_KIB = 1024  # peak queued bytes (ours pauses above 256 KiB)
GOAL_SLOW_RSS_MIB = 4.0  # peak RSS growth over the transfer
# http_hello, requests per server CPU-second: keep-alive >= 2x uvicorn+httptools+uvloop (about 8x
# thor 0.17); Connection: close >= 1.5x the raw asyncio protocol (which parses nothing)
GOAL_HELLO_VS_UVICORN = 2.0
GOAL_HELLO_VS_CLASSIC = 8.0
GOAL_HELLO_CLOSE_VS_RAW = 1.5
# http_client, requests per client CPU-second with 50 in flight
GOAL_CLIENT_VS_CLASSIC = 7.0
GOAL_CLIENT_VS_AIOHTTP = 5.0
GOAL_CLIENT_VS_RAW = 1.0  # ahead of it
HELLO_UVICORN = "uvicorn+httptools+uvloop"
HELLO_RAW = "raw asyncio Protocol (ceiling)"
CLIENT_AIOHTTP = "aiohttp ClientSession"
CLIENT_RAW = "raw asyncio Protocol (ceiling, heap tuned)"
CLIENT_RAW_GLIBC = "raw asyncio Protocol (glibc's initial heap settings)"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- what is measured ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    """One row: an implementation (and API variant) run from one venv."""

    label: str
    venv: str  # "new", "classic" or "peers"
    impl: str  # the workload's --impl
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    impls: tuple[Impl, ...]
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    peer: str  # label prefix of the peer the last ratio column compares with ("": no column)
    extras: tuple[tuple[str, str, int], ...] = ()  # (key, column header, decimals)
    timeout: float = 120.0
    classic_args: tuple[str, ...] = field(default=())
    # the headline already is "per CPU-s" (http_*): no separate per CPU-s column
    per_cpu_headline: bool = False
    # extras shown as the worst (largest) run rather than the median (error counts)
    worst: tuple[str, ...] = ()
    # "wrk": the workload loads its server from LOAD_CPU; "origin": it needs the runner's nginx
    load: str = ""


THOR_ROWS = (Impl(NEW, "new", "thor"), Impl(CLASSIC, "classic", "thor"))
ASYNC_ROWS = (Impl("asyncio", "peers", "asyncio"), Impl("uvloop", "peers", "uvloop"))
SOON_LATER_ROWS = tuple(
    Impl(f"{lib} {api}", "peers", lib, ("--api", flag))
    for lib in ("asyncio", "uvloop")
    for api, flag in (("call_soon", "call_soon"), ("call_later(0)", "call_later0"))
)

SUITE: tuple[Workload, ...] = (
    Workload(
        "events",
        "EventEmitter.emit, no loop (emits/s; pyee's emit locks and copies its listener list)",
        (*THOR_ROWS, Impl("pyee", "peers", "pyee")),
        ("--secs", "0.5"),
        ("--secs", "0.2"),
        peer="pyee",
        extras=(("ns_per_emit", "ns/emit", 0),),
    ),
    Workload(
        "loop_burst",
        "100k zero-delay callbacks scheduled up front, then run (callbacks/s over schedule+run)",
        (*THOR_ROWS, *SOON_LATER_ROWS),
        ("--n", "100000"),
        ("--n", "50000"),
        peer="asyncio",
        extras=(("schedule_ms", "schedule ms", 1), ("run_ms", "run ms", 1)),
    ),
    Workload(
        "loop_chain",
        "chained zero-delay callbacks, each schedules the next; 100k or 2 s (callbacks/s)",
        (*THOR_ROWS, *SOON_LATER_ROWS),
        ("--n", "100000", "--secs", "2"),
        ("--n", "20000", "--secs", "1"),
        peer="asyncio",
        extras=(("n", "callbacks", 0),),
    ),
    Workload(
        "run_in_loop",
        "run_in_loop / call_soon_threadsafe from a worker thread: 100k back to back (calls/s); "
        "then sequential thread -> loop -> thread round trips (median us, lower is better)",
        (*THOR_ROWS, *ASYNC_ROWS),
        ("--n", "100000", "--probes", "200", "--probe-secs", "2"),
        ("--n", "20000", "--probes", "50", "--probe-secs", "1"),
        peer="asyncio",
        extras=(("send_ms", "send ms", 1), ("p90_us", "p90 us", 0), ("max_us", "max us", 0)),
        classic_args=("--probes", "20"),
    ),
    Workload(
        "timers",
        "timers created + cancelled, then one loop pass (per second; incl. that pass)",
        (*THOR_ROWS, *ASYNC_ROWS),
        ("--n", "100000"),
        ("--n", "20000"),
        peer="asyncio",
        extras=(("cancel_rate", "pairs/s w/o pass", 0), ("pass_ms", "pass ms", 1)),
    ),
    Workload(
        "echo",
        "TCP echo ping-pong, 64 B, one loopback connection, same loop (round trips/s); thor: raw "
        "EventSource, asyncio/uvloop: Protocols; floor: the thor handlers on a bare select.epoll "
        "loop",
        (*THOR_ROWS, *ASYNC_ROWS, Impl("bare epoll loop (floor)", "peers", "bare")),
        ("--warmup", "0.3", "--secs", "2"),
        ("--warmup", "0.2", "--secs", "1"),
        peer="asyncio",
        extras=(),
    ),
    Workload(
        "tcp_echo",
        "TCP echo ping-pong, 64 B, one loopback connection, same loop (round trips/s), through "
        "the TCP API: thor: thor.tcp TcpServer + TcpClient, 'data' listeners + conn.write; "
        "asyncio/uvloop: Protocols",
        (*THOR_ROWS, *ASYNC_ROWS),
        ("--warmup", "0.3", "--secs", "2"),
        ("--warmup", "0.2", "--secs", "1"),
        peer="asyncio",
        extras=(),
    ),
    Workload(
        "tcp_bulk",
        "bulk transfer through one loopback connection, 64 KiB writes of one bytes object, "
        "writer honouring flow control, reader counting; MiB/s (2**20 B/s) after a warm-up "
        "(full: the first 256 MiB of 2 GiB untimed; --quick: 64 of 512 MiB)",
        (*THOR_ROWS, *ASYNC_ROWS),
        ("--mib", "2048", "--warmup-mib", "256", "--chunk-kib", "64"),
        ("--mib", "512", "--warmup-mib", "64", "--chunk-kib", "64"),
        peer="asyncio",
        extras=(("avg_read_kib", "KiB/read", 1), ("pauses", "pauses", 0)),
    ),
    Workload(
        "tcp_slow_reader",
        "32 MiB in 64 KiB writes to a reader taking 1 MiB per 10 ms (pause/resume on a timer), "
        "writer honouring 'pause': the writer's peak queued bytes (KiB, lower is better), "
        "peak RSS growth, every byte in order",
        THOR_ROWS,
        ("--mib", "32", "--chunk-kib", "64", "--read-kib", "1024", "--interval-ms", "10"),
        ("--mib", "32", "--chunk-kib", "64", "--read-kib", "1024", "--interval-ms", "10"),
        peer="",
        extras=(
            ("rss_growth_mib", "peak RSS +MiB", 2),
            ("rss_sampled_growth_mib", "sampled RSS +MiB", 2),
            ("mib_s", "MiB/s", 1),
            ("pauses", "pauses", 0),
            ("intact", "intact", 0),
        ),
    ),
    Workload(
        "http_hello",
        "hello-world HTTP server, wrk -t1 -c50 -d5s (1 s warm-up) pinned to another CPU than the "
        "server; headline: requests per server CPU-second (server process tree, /proc)",
        (
            *THOR_ROWS,
            Impl("aiohttp web.Server", "peers", "aiohttp"),
            Impl(HELLO_UVICORN, "peers", "uvicorn"),
            Impl(HELLO_RAW, "peers", "asyncio"),
        ),
        ("--secs", "5", "--warmup", "1", "--conns", "50"),
        ("--secs", "2", "--warmup", "1", "--conns", "50"),
        peer="uvicorn",
        extras=(
            ("rps", "req/s", 0),
            ("p99_ms", "p99 ms", 2),
            ("server_busy", "server busy", 2),
            ("kernel_share", "kernel share", 2),
            ("rss_mib", "RSS MiB", 1),
            ("errors", "errors", 0),
        ),
        per_cpu_headline=True,
        worst=("errors",),
        load="wrk",
    ),
    Workload(
        "http_client",
        "HTTP client GET chains against nginx (1 worker, pinned to another CPU than the client, "
        "13-byte 200, keep-alive), 0.5 s warm-up + 3 s; headline: requests per client CPU-second",
        (
            *THOR_ROWS,
            Impl(CLIENT_AIOHTTP, "peers", "aiohttp"),
            Impl("httpx AsyncClient", "peers", "httpx"),
            Impl(CLIENT_RAW, "peers", "asyncio"),
            Impl(CLIENT_RAW_GLIBC, "peers", "asyncio-glibc"),
        ),
        ("--concurrency", "1,50", "--secs", "3", "--warmup", "0.5"),
        ("--concurrency", "1,50", "--secs", "1.5", "--warmup", "0.3"),
        peer="aiohttp",
        extras=(
            ("rps", "req/s", 0),
            ("p99_ms", "p99 ms", 2),
            ("kernel_share", "kernel share", 2),
            ("conns", "conns opened", 0),
            ("errors", "errors", 0),
        ),
        per_cpu_headline=True,
        worst=("errors", "conns"),
        load="origin",
    ),
    Workload(
        "http_proxy",
        "reverse proxy -> nginx origin, proxy pinned to one CPU, wrk and the origin on another; "
        "13-byte bodies (wrk -t1 -c50), headline requests per proxy CPU-second; 1 MiB bodies "
        "(-c10), headline MB/s; 1 s warm-up + 5 s (see benchmarks/chart.py for the chart)",
        (
            THOR_ROWS[0],
            Impl("thor new via `thor proxy`", "new", "thor", ("--via", "cli")),
            Impl(
                "thor new via `thor proxy --workers 2` (NOT pinned)",
                "new",
                "thor",
                ("--workers", "2"),
            ),
            THOR_ROWS[1],
            Impl("aiohttp", "peers", "aiohttp"),
            Impl("aiohttp on uvloop", "peers", "uvloop"),
            Impl("nginx (native ceiling)", "peers", "nginx"),
        ),
        ("--secs", "5", "--warmup", "1"),
        ("--secs", "2", "--warmup", "1"),
        peer="aiohttp",
        extras=(
            ("rps", "req/s", 0),
            ("mb_s", "MB/s", 1),
            ("req_per_cpu_s", "req/CPU-s", 0),
            ("p99_ms", "p99 ms", 2),
            ("proxy_busy", "proxy busy", 2),
            ("kernel_share", "kernel share", 2),
            ("upstream_conns", "upstream conns opened", 0),
            ("rss_mib", "RSS MiB", 1),
            ("errors", "errors", 0),
        ),
        per_cpu_headline=True,
        worst=("errors", "upstream_conns"),
        load="wrk",
    ),
)
BY_NAME = {w.name: w for w in SUITE}


# -- venvs ----------------------------------------------------------------------------------------


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def check(cmd: list[str], what: str, **kw: Any) -> str:
    r = sh(cmd, **kw)
    if r.returncode != 0:
        sys.exit(f"{what} failed (exit {r.returncode}):\n$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, base: str) -> Path:
    py = venv_python(name)
    if py.exists():
        version = sh([str(py), "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip()
        wanted = sh([base, "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip()
        if version == wanted:
            return py
        log(f"venv {name}: python {version} != {wanted}, recreating")
        shutil.rmtree(VENVS / name)
    log(f"venv {name}: creating with {base}")
    check([base, "-m", "venv", str(VENVS / name)], f"creating venv {name}")
    return py


def pip(py: Path, *args: str, what: str) -> None:
    log(f"  pip install {' '.join(args)}")
    check([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], what)


def dists(py: Path, names: list[str]) -> dict[str, str | None]:
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = None\n"
        "print(json.dumps(out))"
    )
    return json.loads(check([str(py), "-c", code, *names], "listing distributions"))


def where_thor(py: Path) -> dict[str, Any]:
    code = (
        "import json, thor.loop, thor.events, thor.tcp\n"
        "print(json.dumps({'thor.loop': thor.loop.__file__, 'thor.events': thor.events.__file__,"
        " 'thor.tcp': thor.tcp.__file__, 'version': getattr(thor.loop, '__version__', None)}))"
    )
    return json.loads(check([str(py), "-E", "-s", "-c", code], f"importing thor with {py}"))


def tree_matches(py: Path) -> tuple[int, list[str]]:
    """Compare the new venv's modules with the working tree's: (files compared, files differing).

    A difference means the tree changed after the install (or the install is stale)."""
    code = "import json, thor.loop as l; print(json.dumps(l.__file__))"
    found = json.loads(check([str(py), "-E", "-s", "-c", code], "importing thor"))
    installed = Path(found).parent.parent  # site-packages/thor
    count = 0
    differ: list[str] = []
    for dist, subpackages in NEW_MODULES.items():
        for sub in subpackages:
            src = ROOT / "packages" / dist / "src" / "thor" / sub
            for f in sorted(src.rglob("*.py")):
                other = installed / sub / f.relative_to(src)
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
                if not other.exists() or hashlib.sha256(other.read_bytes()).hexdigest() != digest:
                    differ.append(str(f.relative_to(ROOT)))
                count += 1
    return count, differ


def prepare(reinstall: bool) -> dict[str, Any]:
    base = shutil.which(BASE_PYTHON)
    if base is None:
        sys.exit(f"{BASE_PYTHON} not found (set THOR_BENCH_PYTHON)")
    VENVS.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"base_python": base}
    info["python"] = check(
        [base, "-c", "import platform; print(platform.python_version())"], base
    ).strip()

    # new: our packages from the working tree, non-editable
    py = ensure_venv("new", base)
    have = dists(py, ["hatchling", "thor", "dnspython", *NEW_PACKAGES])
    if have["thor"]:
        pip_uninstall(py, "thor")
    if not have["hatchling"]:
        pip(py, "hatchling>=1.21", what="installing hatchling into the new venv")
    if not have["dnspython"]:
        pip(py, *NEW_DEPENDENCIES, what="installing thor-net's dependencies into the new venv")
    if reinstall or not all(have[d] for d in NEW_PACKAGES):
        paths = [f"./packages/{d}" for d in NEW_PACKAGES]
        pip(py, "--no-build-isolation", "--force-reinstall", "--no-deps", *paths, what="new venv")
    # classic: thor 0.17 from PyPI
    pyc = ensure_venv("classic", base)
    have = dists(pyc, ["thor", *NEW_PACKAGES])
    if any(have[d] for d in NEW_PACKAGES):
        pip_uninstall(pyc, *NEW_PACKAGES)
        have["thor"] = None
    if have["thor"] != CLASSIC_VERSION:
        pip(pyc, "--force-reinstall", f"thor=={CLASSIC_VERSION}", what="classic venv")
    # peers
    pyp = ensure_venv("peers", base)
    have = dists(pyp, list(PEER_DISTS))
    missing = [d for d, v in have.items() if not v]
    if missing:
        pip(pyp, *missing, what="peers venv")

    # where does thor come from in each venv?
    for name, p in (("new", py), ("classic", pyc)):
        where = where_thor(p)
        info[name] = {"python": str(p), **where, **dists(p, ["thor", *NEW_PACKAGES])}
        log(f"{name:8s} thor.loop from {where['thor.loop']}, thor.tcp from {where['thor.tcp']}")
    for module in ("loop", "tcp"):
        if not info["new"][f"thor.{module}"].endswith(f"thor/{module}/__init__.py"):
            sys.exit(f"the new venv does not import our thor.{module} package")
        if not info["classic"][f"thor.{module}"].endswith(f"thor/{module}.py"):
            sys.exit(f"the classic venv does not import thor 0.17's thor/{module}.py")
        for name in ("new", "classic"):
            if not info[name][f"thor.{module}"].startswith(str(VENVS / name)):
                sys.exit(
                    f"{name}: thor.{module} is not imported from its venv (PYTHONPATH? editable?)"
                )
    # thor.http: ours must come from thor-http in the new venv, 0.17's from its thor/http/. A new
    # thor.http.server that does not import (being written) fails the http rows, not the suite.
    for name, p in (("new", py), ("classic", pyc)):
        where = where_http(p)
        info[name].update(where)
        log(f"{name:8s} thor.http server from {where.get('thor.http.server') or where['error']}")
        got = where.get("thor.http.server") or ""
        expected = "thor/http/server.py"
        if got and (not got.endswith(expected) or not got.startswith(str(VENVS / name))):
            sys.exit(f"{name}: thor.http.server comes from {got}, not the venv's {expected}")
    info["new"]["dnspython"] = dists(py, ["dnspython"])["dnspython"]
    files, differ = tree_matches(py)
    info["new"]["differs_from_tree"] = differ
    if differ:
        log(f"WARNING: the new venv differs from the working tree in {differ} (edited meanwhile?)")
    else:
        log(f"{'':8s} (new: {files} module files identical to the working tree)")
    info["peers"] = {"python": str(pyp), **dists(pyp, [*PEER_DISTS, "httpcore"])}
    log("peers    " + ", ".join(f"{d} {info['peers'][d]}" for d in (*PEER_DISTS, "httpcore")))
    return info


def where_http(py: Path) -> dict[str, Any]:
    """Where thor.http's server and client come from in a venv (or why they do not import)."""
    code = (
        "import json\n"
        "out = {}\n"
        "try:\n"
        "    import thor.http.server as s, thor.http.client as c\n"
        "    out = {'thor.http.server': s.__file__, 'thor.http.client': c.__file__}\n"
        "except Exception as e:\n"
        "    out = {'error': f'not importable: {e!r}'}\n"
        "print(json.dumps(out))"
    )
    return json.loads(check([str(py), "-E", "-s", "-c", code], f"importing thor.http with {py}"))


def pip_uninstall(py: Path, *names: str) -> None:
    log(f"  pip uninstall {' '.join(names)}")
    check([str(py), "-m", "pip", "uninstall", "-y", "-q", *names], "pip uninstall")


# -- running ------------------------------------------------------------------------------------


def cpu_stat() -> dict[str, list[int]]:
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu"):
                    parts = line.split()
                    out[parts[0]] = [int(x) for x in parts[1:9]]
    except OSError:
        pass
    return out


def noise(
    before: dict, after: dict, child_cpu: float, wall: float, helpers: float = 0.0
) -> dict[str, Any]:
    """Steal per CPU, and CPU used on the pinned CPU by anything but the workload.

    `child_cpu` is what the workload's process tree used on the pinned CPU, `helpers` what its
    load (wrk, nginx) used on LOAD_CPU; for workloads with such load, the load CPU's foreign use
    is worked out too."""
    hz = os.sysconf("SC_CLK_TCK")
    steal = {}
    for cpu, now in after.items():
        if cpu == "cpu" or cpu not in before:
            continue
        d = [b - a for a, b in zip(before[cpu], now, strict=True)]
        total = sum(d)
        steal[cpu] = round(100.0 * d[7] / total, 1) if total else 0.0
    out: dict[str, Any] = {"steal_pct": steal, "steal_max": max(steal.values(), default=0.0)}
    pinned = f"cpu{CPU}"
    busy = {}
    for cpu, now in after.items():
        if cpu != "cpu" and cpu in before and wall > 0:
            d = [b - a for a, b in zip(before[cpu], now, strict=True)]
            busy[cpu] = (d[0] + d[1] + d[2]) / hz  # user, nice, system (not irq/softirq/steal)
    if pinned in busy:
        # the pinned CPU's busy time that the workload did not use (clock ticks: +-10 ms)
        foreign = max(0.0, busy[pinned] - child_cpu)
        out["foreign_s"] = round(foreign, 3)
        out["foreign_pct"] = round(100.0 * foreign / wall, 1)
    load = f"cpu{LOAD_CPU}"
    if helpers and load in busy and load != pinned:
        foreign = max(0.0, busy[load] - helpers)
        out["load_cpu_foreign_s"] = round(foreign, 3)
        out["load_cpu_foreign_pct"] = round(100.0 * foreign / wall, 1)
        busy[load] = foreign  # for the footer: how busy the other CPU was with *other* work
    others = [v for k, v in busy.items() if k != pinned]
    if others:
        out["other_cpu_busy_pct"] = round(100.0 * max(others) / wall, 1)
    return out


def disturbed(rec: dict[str, Any]) -> bool:
    """Hypervisor steal over the limit on any CPU, or other processes on the pinned CPU for
    more than the limit and more than 3 clock ticks (short runs cannot resolve less)."""
    foreign = rec.get("foreign_pct", 0.0) > NOISY_FOREIGN and rec.get("foreign_s", 0.0) > 0.03
    load = (
        rec.get("load_cpu_foreign_pct", 0.0) > NOISY_FOREIGN
        and rec.get("load_cpu_foreign_s", 0.0) > 0.03
    )
    return rec["steal_max"] > NOISY_STEAL or foreign or load


def pin_prefix() -> list[str]:
    taskset = shutil.which("taskset")
    if taskset and sh([taskset, "-c", CPU, "true"]).returncode == 0:
        return [taskset, "-c", CPU]
    return []


NGINX_CONF = """\
# the http_client workload's origin, written by benchmarks/run.py
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    location = /nginx_status {{ stub_status; }}
    location / {{ default_type text/plain; return 200 "Hello, world!"; }}
  }}
}}
"""


class Origin:
    """nginx serving 200 "Hello, world!" on a free 127.0.0.1 port (one worker, pinned to
    LOAD_CPU), for the http_client workload; started once per invocation, checked first."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int, tmp: Path) -> None:
        self.popen = popen
        self.port = port
        self.dir = tmp
        self.url = f"http://127.0.0.1:{port}/"
        self.status_url = f"http://127.0.0.1:{port}/nginx_status"

    @classmethod
    def start(cls) -> Origin:
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
        if nginx is None:
            sys.exit("http_client needs nginx (apt-get install nginx-light)")
        tmp = Path(tempfile.mkdtemp(prefix="thor-bench-nginx-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        taskset = shutil.which("taskset")
        pin = [taskset, "-c", LOAD_CPU] if taskset else []
        cmd = [*pin, nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
        with open(tmp / "stdout.log", "wb") as out:
            popen = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        origin = cls(popen, port, tmp)
        problem = origin.check()
        if problem:
            origin.stop()
            sys.exit(f"nginx origin: {problem}\n$ {' '.join(cmd)}")
        log(f"origin   nginx on {origin.url} (pid {popen.pid}, pinned to CPU {LOAD_CPU})")
        return origin

    def check(self) -> str:
        """'' when nginx answers two GETs on one connection with 200 "Hello, world!"."""
        import http.client

        deadline = time.monotonic() + 10
        while True:
            if self.popen.poll() is not None:
                return f"nginx exited ({self.popen.returncode}): {self.log_tail()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    return f"nginx did not listen within 10 s: {self.log_tail()}"
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            for i in (1, 2):
                conn.request("GET", "/")
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or body != b"Hello, world!" or r.will_close:
                    return f"request {i}: {r.status} {body[:60]!r}, will close: {r.will_close}"
                if i == 1:
                    sock = conn.sock
                elif conn.sock is not sock:
                    return "the connection was not kept alive"
        except (OSError, http.client.HTTPException) as e:
            return f"GET / failed: {e!r}"
        finally:
            conn.close()
        return ""

    def log_tail(self) -> str:
        texts = []
        for name in ("stdout.log", "error.log"):
            try:
                texts.append((self.dir / name).read_text(errors="replace")[-600:].strip())
            except OSError:
                pass
        return " | ".join(t for t in texts if t)

    def cpu_s(self) -> float:
        """User + system CPU seconds of nginx's master and worker so far."""
        hz = os.sysconf("SC_CLK_TCK")
        ticks = 0
        todo = [self.popen.pid]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(x) for x in f.read().split())
            except (OSError, IndexError, ValueError):
                pass
        return ticks / hz

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()  # nginx: fast shutdown of master and worker
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_one(
    w: Workload, impl: Impl, round_no: int, quick: bool, pin: list[str], *, origin: Origin | None
) -> dict[str, Any]:
    args = list(w.quick_args if quick else w.args)
    if impl.venv == "classic":
        args += w.classic_args
    if w.load == "wrk":
        args += ["--server-cpu", CPU, "--load-cpu", LOAD_CPU]
    elif w.load == "origin":
        if origin is None:
            raise RuntimeError(f"{w.name} needs the nginx origin")
        args += ["--cpu", CPU, "--url", origin.url, "--status-url", origin.status_url]
    cmd = [
        *pin,
        str(venv_python(impl.venv)),
        "-E",
        "-s",
        str(WORKLOADS / f"{w.name}.py"),
        "--impl",
        impl.impl,
        "--label",
        impl.label,
        *args,
        *impl.args,
    ]
    rec: dict[str, Any] = {"workload": w.name, "label": impl.label, "round": round_no, "cmd": cmd}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    origin_cpu0 = origin.cpu_s() if origin and w.load == "origin" else 0.0
    st0 = cpu_stat()
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, text=True, capture_output=True, timeout=w.timeout, cwd=ROOT)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", _text(e.stdout), _text(e.stderr)
    wall = time.perf_counter() - t0
    st1 = cpu_stat()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    origin_cpu = origin.cpu_s() - origin_cpu0 if origin and w.load == "origin" else 0.0
    child_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    rec.update(returncode=rc, wall_s=round(wall, 3), child_cpu_s=round(child_cpu, 3))
    if err.strip():
        rec["stderr"] = err[-2000:]
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if rc == 0 and lines:
        try:
            rec["result"] = json.loads(lines[-1])
        except ValueError:
            rec["error"] = "unparsable output"
    else:
        rec["error"] = f"exit {rc}"
    # the load our HTTP workloads generate on LOAD_CPU: wrk (reported by the workload, and part of
    # child_cpu), nginx (not a child of this run)
    wrk_cpu = float(rec.get("result", {}).get("load_cpu_s") or 0.0)
    if origin_cpu:
        rec["origin_cpu_s"] = round(origin_cpu, 3)
    rec.update(noise(st0, st1, child_cpu - wrk_cpu, wall, helpers=wrk_cpu + origin_cpu))
    rec["disturbed"] = disturbed(rec)
    return rec


def _text(x: bytes | str | None) -> str:
    if x is None:
        return ""
    return x.decode(errors="replace") if isinstance(x, bytes) else x


def progress(rec: dict[str, Any]) -> str:
    head = f"[round {rec['round'] + 1}] {rec['workload']:11s} {rec['label']:22s}"
    if "result" not in rec:
        tail = (rec.get("stderr") or "").strip().splitlines()[-1:]
        return f"{head} FAILED {rec.get('error')} {tail}"
    parts = []
    for name, case in rec["result"]["cases"].items():
        unit = (
            f" {case['unit']}"
            if case.get("unit")
            else (" us" if case.get("lower_is_better") else "/s")
        )
        parts.append(f"{name}: {fmt(case['rate'])}{unit}")
    flag = f"  DISTURBED (steal {rec['steal_max']}%, foreign {rec.get('foreign_pct')}%)"
    other = (
        f", other CPU {rec['other_cpu_busy_pct']:.0f}% busy" if "other_cpu_busy_pct" in rec else ""
    )
    return (
        f"{head} {', '.join(parts)}  ({rec['wall_s']:.1f} s{other})"
        f"{flag if rec['disturbed'] else ''}"
    )


# -- reporting ----------------------------------------------------------------------------------


def fmt(x: float | None, nd: int | None = None) -> str:
    if x is None or math.isnan(x):
        return "-"
    if nd is None:
        nd = 0 if abs(x) >= 100 else 1
    return f"{x:,.{nd}f}"


@dataclass
class Row:
    workload: str
    case: str
    label: str
    runs: list[dict[str, Any]]  # {"case": {...}, "disturbed": bool}

    @property
    def used(self) -> list[dict[str, Any]]:
        """Undisturbed runs when at least two exist (or all runs are clean), else every run."""
        clean = [r for r in self.runs if not r["disturbed"]]
        return clean if len(clean) >= min(2, len(self.runs)) else self.runs

    def median(self, key: str = "rate") -> float:
        xs = [r["case"][key] for r in self.used if isinstance(r["case"].get(key), (int, float))]
        return statistics.median(xs) if xs else float("nan")

    def worst(self, key: str) -> float:
        """The largest value over every run, disturbed ones included (error counts)."""
        xs = [r["case"][key] for r in self.runs if isinstance(r["case"].get(key), (int, float))]
        return max(xs) if xs else float("nan")

    @property
    def lower_is_better(self) -> bool:
        return bool(self.runs and self.runs[0]["case"].get("lower_is_better"))

    @property
    def unit(self) -> str:
        """The headline's unit when the workload names one (e.g. "MiB/s", "KiB", "us")."""
        return str(self.runs[0]["case"].get("unit") or "") if self.runs else ""


def collect(records: list[dict[str, Any]]) -> dict[str, list[Row]]:
    rows: dict[str, dict[tuple[str, str], Row]] = {}
    for rec in records:
        if "result" not in rec:
            continue
        for case_name, case in rec["result"]["cases"].items():
            key = (case_name, rec["label"])
            table = rows.setdefault(rec["workload"], {})
            row = table.setdefault(key, Row(rec["workload"], case_name, rec["label"], []))
            row.runs.append({"case": case, "disturbed": rec["disturbed"]})
    # order: cases as first seen, implementations in suite order
    out = {}
    for w in SUITE:
        if w.name not in rows:
            continue
        order = [i.label for i in w.impls]
        cases = list(dict.fromkeys(case for case, _ in rows[w.name]))
        out[w.name] = sorted(
            rows[w.name].values(),
            key=lambda r: (cases.index(r.case), order.index(r.label) if r.label in order else 99),
        )
    return out


def ratio(row: Row, base: float) -> float:
    mine = row.median()
    if math.isnan(base) or math.isnan(mine) or base <= 0 or mine <= 0:
        return float("nan")
    return base / mine if row.lower_is_better else mine / base


def peer_best(rows: list[Row], case: str, prefix: str) -> float:
    vals = [r.median() for r in rows if r.case == case and r.label.startswith(prefix)]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return float("nan")
    lower = any(r.lower_is_better for r in rows if r.case == case)
    return min(vals) if lower else max(vals)


def table(w: Workload, rows: list[Row]) -> str:
    multi = len({r.case for r in rows}) > 1
    head = ["case"] if multi else []
    head += ["implementation", "median", "runs"]
    head += [h for _, h, _ in w.extras]
    head += ["CPU s"] + ([] if w.per_cpu_headline else ["per CPU-s"])
    head += [f"vs {CLASSIC}"] + ([f"vs {w.peer}"] if w.peer else [])
    lines = [
        f"### {w.name}: {w.title}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if h in ("case", "implementation") else "---:" for h in head) + "|",
    ]
    for r in rows:
        classic = next((x for x in rows if x.case == r.case and x.label == CLASSIC), None)
        vs_classic = ratio(r, classic.median()) if classic else float("nan")
        vs_peer = ratio(r, peer_best(rows, r.case, w.peer)) if w.peer else float("nan")
        used = r.used
        runs = " / ".join(
            fmt(x["case"]["rate"]) + ("" if any(x is u for u in used) else "*") for x in r.runs
        )
        unit = r.unit
        unit = f" {unit}" if unit else (" us" if r.lower_is_better else "")
        cells = [r.case] if multi else []
        cells += [r.label, f"**{fmt(r.median())}**{unit}", runs]
        cells += [fmt(r.worst(k) if k in w.worst else r.median(k), nd) for k, _, nd in w.extras]
        cpu = r.median("cpu_s")
        per_cpu = float("nan")
        if not r.lower_is_better:
            xs = [x["case"]["n"] / x["case"]["cpu_s"] for x in used if x["case"].get("cpu_s")]
            per_cpu = statistics.median(xs) if xs else float("nan")
        cells += [fmt(cpu, 2)] + ([] if w.per_cpu_headline else [fmt(per_cpu)])
        cells += [xfmt(vs_classic)]
        cells += [xfmt(vs_peer)] if w.peer else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def xfmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.2f}x"


def find(tables: dict[str, list[Row]], workload: str, case: str, label: str) -> Row | None:
    for r in tables.get(workload, []):
        if r.case == case and r.label == label:
            return r
    return None


def summary(tables: dict[str, list[Row]]) -> tuple[str, dict[str, Any]]:
    items: list[str] = []
    data: dict[str, Any] = {}

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISS"

    for workload, case in (
        ("loop_burst", "burst"),
        ("echo", "round trips"),
        ("tcp_echo", "round trips"),
    ):
        new, old = find(tables, workload, case, NEW), find(tables, workload, case, CLASSIC)
        if new and old:
            x = ratio(new, old.median())
            data[f"{workload} new/classic"] = x
            items.append(f"{workload} new/0.17 {xfmt(x)} {mark(x >= GOAL_VS_CLASSIC)} (>=3x)")
    burst, chain = (
        find(tables, "loop_burst", "burst", NEW),
        find(tables, "loop_chain", "chain", NEW),
    )
    if burst and chain:
        x = chain.median() / burst.median()
        data["new chain/burst"] = x
        items.append(f"chain/burst (new) {x:.2f} {mark(x >= GOAL_CHAIN_BURST)} (~1)")
    vs = []
    for workload, case in (
        ("loop_burst", "burst"),
        ("loop_chain", "chain"),
        ("run_in_loop", "throughput"),
        ("run_in_loop", "latency"),
        ("timers", "create+cancel"),
        ("echo", "round trips"),
        ("tcp_echo", "round trips"),
        ("tcp_bulk", "throughput"),
    ):
        new = find(tables, workload, case, NEW)
        if new:
            x = ratio(new, peer_best(tables[workload], case, "asyncio"))
            if not math.isnan(x):
                data[f"{workload}/{case} new/asyncio-best"] = x
                name = workload if workload != "run_in_loop" else f"run_in_loop {case}"
                vs.append(f"{name} {x:.2f} {mark(x >= GOAL_VS_ASYNCIO)}")
    if vs:
        items.append("new vs best asyncio row (>=0.67): " + ", ".join(vs))
    slow = find(tables, "tcp_slow_reader", "peak queued", NEW)
    if slow:
        # every run counts here (a disturbed run does not make memory grow)
        queued = max(r["case"]["rate"] for r in slow.runs)
        rss = max(
            max(r["case"].get("rss_growth_mib", 0.0), r["case"].get("rss_sampled_growth_mib", 0.0))
            for r in slow.runs
        )
        intact = all(r["case"].get("intact") == 1 for r in slow.runs)
        ok = queued <= GOAL_SLOW_QUEUED_KIB and rss <= GOAL_SLOW_RSS_MIB and intact
        data["tcp_slow_reader new"] = {"peak_queued_kib": queued, "rss_mib": rss, "intact": intact}
        items.append(
            f"slow reader (new, worst run): queued {queued:,.0f} KiB, RSS +{rss:.1f} MiB, "
            f"{'intact' if intact else 'DATA LOST'} {mark(ok)} "
            f"(<= {GOAL_SLOW_QUEUED_KIB} KiB, <= {GOAL_SLOW_RSS_MIB:g} MiB, intact)"
        )
    items += http_goals(tables, data)
    return ("**Goals:** " + " | ".join(items)) if items else "", data


def http_goals(tables: dict[str, list[Row]], data: dict[str, Any]) -> list[str]:
    """The thor-http goals (issue 5), per CPU-second, thor new against the rows named."""
    items: list[str] = []

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISS"

    def versus(workload: str, case: str, label: str) -> float:
        new, other = find(tables, workload, case, NEW), find(tables, workload, case, label)
        x = ratio(new, other.median()) if new and other else float("nan")
        data[f"{workload}/{case} new/{label}"] = x
        return x

    parts = []
    for case, label, goal, name in (
        ("keep-alive", HELLO_UVICORN, GOAL_HELLO_VS_UVICORN, "uvicorn"),
        ("keep-alive", CLASSIC, GOAL_HELLO_VS_CLASSIC, "0.17"),
        ("Connection: close", HELLO_RAW, GOAL_HELLO_CLOSE_VS_RAW, "raw asyncio"),
    ):
        x = versus("http_hello", case, label)
        if not math.isnan(x):
            parts.append(f"{case} new/{name} {xfmt(x)} {mark(x >= goal)} (>={goal:g}x)")
    if parts:
        items.append("http_hello per server CPU-s: " + ", ".join(parts))
    parts = []
    for label, goal, name in (
        (CLASSIC, GOAL_CLIENT_VS_CLASSIC, "0.17"),
        (CLIENT_AIOHTTP, GOAL_CLIENT_VS_AIOHTTP, "aiohttp"),
        (CLIENT_RAW_GLIBC, GOAL_CLIENT_VS_RAW, "raw asyncio (glibc heap, as the goal's figures)"),
        (CLIENT_RAW, GOAL_CLIENT_VS_RAW, "raw asyncio (heap tuned)"),
    ):
        x = versus("http_client", "50 in flight", label)
        if not math.isnan(x):
            raw = label in (CLIENT_RAW, CLIENT_RAW_GLIBC)
            goal_text = ">1x" if raw else f">={goal:g}x"
            ok = x > goal if raw else x >= goal
            parts.append(f"new/{name} {xfmt(x)} {mark(ok)} ({goal_text})")
    if parts:
        items.append("http_client 50 in flight, per client CPU-s: " + ", ".join(parts))
    bad = []
    for workload in ("http_hello", "http_client"):
        for r in tables.get(workload, []):
            if r.label == NEW and r.worst("errors") > 0:
                bad.append(f"{workload}/{r.case} {r.worst('errors'):.0f}")
    if bad:
        items.append("thor new ERRORS (worst run): " + ", ".join(bad))
    return items


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    git = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "packages"]).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg": _loadavg(),
        "git": git + (" + uncommitted changes under packages/" if dirty else ""),
    }


def _loadavg() -> list[str]:
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return []


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", default="", help="comma-separated workloads: " + ",".join(BY_NAME))
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="1 round and smaller counts")
    ap.add_argument(
        "--no-reinstall",
        action="store_true",
        help="reuse the new venv as it is (default: reinstall from the working tree)",
    )
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(BY_NAME)}")
    selected = [w for w in SUITE if w.name in names]
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        ap.error("--rounds must be >= 1")

    started = time.time()
    venvs = prepare(reinstall=not args.no_reinstall)
    pin = pin_prefix()
    meta = machine()
    log(
        f"pinning: {' '.join(pin) if pin else 'none (no taskset)'}; rounds: {rounds}"
        f"{' (quick)' if args.quick else ''}; load average {' '.join(meta['loadavg'])}"
    )
    records = []
    origin = Origin.start() if any(w.load == "origin" for w in selected) else None
    try:
        for round_no in range(rounds):
            for w in selected:
                for impl in w.impls:
                    rec = run_one(w, impl, round_no, args.quick, pin, origin=origin)
                    records.append(rec)
                    log(progress(rec))
    finally:
        if origin is not None:
            origin.stop()

    tables = collect(records)
    out = []
    out.append(
        f"## thor benchmarks — {meta['date']}, {meta['cpu_model']} x{meta['nproc']}, "
        f"git {meta['git']}"
    )
    out.append("")
    pinned = f"pinned with `{' '.join(pin[1:])}`" if pin else "unpinned"
    out.append(
        f"{rounds} round(s){', quick' if args.quick else ''}, implementations interleaved, each "
        f"run a fresh process {pinned}; medians of the runs (`*` = disturbed: steal > "
        f"{NOISY_STEAL:g}% or other processes > {NOISY_FOREIGN:g}% of the pinned CPU; left out "
        f"of the median when 2 clean runs remain). Ratio columns: > 1 means better than that "
        f"row (latency too). thor new = thor-loop {venvs['new'].get('thor-loop')} + thor-events "
        f"{venvs['new'].get('thor-events')} + thor-net {venvs['new'].get('thor-net')} + thor-http "
        f"{venvs['new'].get('thor-http')} (dnspython {venvs['new'].get('dnspython')}) from the "
        f"working tree; "
        + ", ".join(f"{d} {venvs['peers'].get(d)}" for d in (*PEER_DISTS, "httpcore"))
        + f"; Python {venvs['python']}."
    )
    if any(w.load for w in selected):
        out.append("")
        out.append(
            f"HTTP workloads: the server (http_hello) or client (http_client) under test on CPU "
            f"{CPU}, the load on CPU {LOAD_CPU} (wrk; nginx 1 worker); headline = requests per "
            f"CPU-second of the process under test, `req/s` the throughput; `errors`: the worst "
            f"run's (non-2xx + socket errors; for clients also bad bodies and hung chains)."
        )
    for w in selected:
        if w.name in tables:
            out += ["", table(w, tables[w.name])]
    failed = [r for r in records if "result" not in r]
    line, goals = summary(tables)
    if line:
        out += ["", line]
    if "http_proxy" in tables:
        import chart

        proxy_line = chart.proxy_summary(records)
        out += ["", proxy_line] if proxy_line else []
    n_disturbed = sum(1 for r in records if r["disturbed"])
    steal = max((r["steal_max"] for r in records), default=0.0)
    other = [r["other_cpu_busy_pct"] for r in records if "other_cpu_busy_pct" in r]
    other_note = (
        f"; the other CPU(s) were busy {statistics.median(other):.0f}% (median), "
        f"{max(other):.0f}% (max) of the time: work there can slow the pinned CPU too"
        if other
        else ""
    )
    out += [
        "",
        f"Runs: {len(records)} ({n_disturbed} disturbed, {len(failed)} failed); max steal "
        f"{steal}%{other_note}; load average at start {' '.join(meta['loadavg'])}; "
        f"{time.time() - started:.0f} s in all.",
    ]
    for r in failed:
        tail = (r.get("stderr") or "").strip().splitlines()[-3:]
        out.append(
            f"- FAILED {r['workload']} / {r['label']} round {r['round'] + 1}: {r['error']} {tail}"
        )
    text = "\n".join(out) + "\n"
    print(text, end="", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = {
        "meta": {**meta, "rounds": rounds, "quick": args.quick, "pin": pin, "only": names},
        "venvs": venvs,
        "thresholds": {"steal_pct": NOISY_STEAL, "foreign_pct": NOISY_FOREIGN},
        "goals": goals,
        "medians": {
            w: {f"{r.case} | {r.label}": r.median() for r in rows} for w, rows in tables.items()
        },
        "runs": records,
    }
    raw = RESULTS / f"thor-bench-{stamp}.json"
    raw.write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / f"thor-bench-{stamp}.md").write_text(text)
    log(f"raw results: {raw.relative_to(ROOT) if raw.is_relative_to(ROOT) else raw}")
    if "http_proxy" in tables:  # its chart, drawn in a venv with matplotlib (benchmarks/chart.py)
        import chart

        try:
            log(f"proxy chart: {chart.draw(raw)}")
        except (OSError, subprocess.CalledProcessError) as e:
            log(f"proxy chart: not drawn ({e})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
