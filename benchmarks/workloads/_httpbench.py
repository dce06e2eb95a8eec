"""Shared by the HTTP workloads (http_hello, http_client): processes pinned to a CPU, their CPU
time read from /proc, free ports, the curl check and wrk.

Everything talks to 127.0.0.1 only. The processes started here run in their own session, so a
server and anything it forked are stopped together.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent  # benchmarks/
SCRATCH = Path(tempfile.gettempdir()) / "thor-bench-scratch"
BODY = b"Hello, world!"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log_dir() -> Path:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    return SCRATCH


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, alive: Any = None) -> bool:
    """True once something accepts connections on 127.0.0.1:port (False after timeout, or as soon
    as the callable `alive` returns False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def taskset(cpu: int | None) -> list[str]:
    """`taskset -c CPU` to put before a command (it execs it: the pid stays the command's), or
    nothing when cpu is None (keep the inherited affinity) or taskset is missing."""
    if cpu is None or cpu < 0:
        return []
    ts = shutil.which("taskset")
    if ts is None:
        raise SystemExit("taskset not found (util-linux): cannot pin the processes")
    return [ts, "-c", str(cpu)]


class Process:
    """A child process in its own session, pinned to a CPU, output to a log file."""

    def __init__(self, name: str, cmd: list[str], cpu: int | None) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{os.getpid()}.log"
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen(
                [*taskset(cpu), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace` seconds; the exit status."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        return self.popen.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by pid and its descendants (clock ticks)."""
    user, system = tree_cpu_split(pid)
    return user + system


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by pid and its descendants (clock ticks)."""
    user = system = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime
            system += int(fields[12])  # stime
        except (OSError, IndexError, ValueError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def kernel_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The system (kernel) part of the CPU time between two ``tree_cpu_split`` readings."""
    user = after[0] - before[0]
    system = after[1] - before[1]
    return round(system / (user + system), 3) if user + system > 0 else 0.0


def tree_rss_mib(pid: int) -> float:
    kib = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        kib += int(line.split()[1])
        except OSError:
            pass
    return kib / 1024


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children so far (wrk and curl runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# -- checks -------------------------------------------------------------------------------------


def curl_check(url: str, close: bool) -> str:
    """GET `url` twice in one curl invocation; '' when both answers are 200, text/plain and exactly
    "Hello, world!", and the connection was reused (keep-alive) or, with a Connection: close
    request, the response said Connection: close and curl connected afresh for the second.
    Otherwise a description of what was wrong."""
    curl = shutil.which("curl")
    if curl is None:
        return "curl not found (apt-get install curl)"
    d = log_dir()
    bodies = [d / f"curl-{os.getpid()}-{i}" for i in (1, 2)]
    fmt = "%{http_code} %{size_download} %{num_connects} %{content_type}\\n"
    cmd = [curl, "-sS", "-v", "--max-time", "5", "-w", fmt]
    if close:
        cmd += ["-H", "Connection: close"]
    for body in bodies:
        cmd += ["-o", str(body), url]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "curl timed out (no complete answer within 5 s)"
    lines = r.stdout.split("\n")
    if r.returncode != 0 or len([ln for ln in lines if ln]) < 2:
        return f"curl exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]} {r.stdout!r}"
    for i, (line, body) in enumerate(zip(lines, bodies, strict=False), 1):
        parts = line.split(" ", 3)
        status, _size, connects, ctype = [*parts, "", "", ""][:4]
        got = body.read_bytes() if body.exists() else b""
        if status != "200":
            return f"request {i}: status {status}"
        if got != BODY:
            return f"request {i}: body {got[:60]!r} ({len(got)} bytes), expected {BODY!r}"
        if not ctype.lower().startswith("text/plain"):
            return f"request {i}: Content-Type {ctype!r}"
        if i == 2 and not close and connects != "0":
            return "the connection was not kept alive (curl connected again for request 2)"
        if i == 2 and close and connects != "1":
            return "curl reused the connection after a Connection: close exchange"
    for body in bodies:
        body.unlink(missing_ok=True)
    said_close = len(re.findall(r"(?im)^< connection:\s*close\s*$", r.stderr))
    if close and said_close < 2:
        return "no 'Connection: close' in the response to a Connection: close request"
    if not close and said_close:
        return "'Connection: close' in a response to a keep-alive request"
    return ""


def eof_check(port: int, timeout: float = 3.0) -> str:
    """Send one Connection: close request on a raw socket; '' when a 200 "Hello, world!" comes
    back and the server then closes the connection (EOF within `timeout` s)."""
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.sendall(req)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except TimeoutError:
        return f"the server did not close within {timeout:g} s after answering Connection: close"
    except OSError as e:
        return f"raw Connection: close request: {e!r}"
    if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(b"\r\n\r\n" + BODY):
        return f"raw Connection: close request got {data[:200]!r}"
    return ""


# -- wrk ----------------------------------------------------------------------------------------


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _bytes(value: str, unit: str) -> float:
    return float(value) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}.get(unit, 1)


def wrk(url: str, conns: int, secs: int, close: bool, cpu: int | None) -> dict[str, Any]:
    """One wrk run (-t1, --latency), pinned to `cpu`; its figures, parsed. wrk takes whole
    seconds only."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk not found (apt-get install wrk)")
    cmd = [*taskset(cpu), exe, "-t1", f"-c{conns}", f"-d{int(secs)}s", "--latency"]
    cmd += ["--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(url)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
    out = r.stdout
    if r.returncode != 0:
        raise SystemExit(f"wrk exit {r.returncode}: {r.stderr.strip()} {out[-500:]}")
    res: dict[str, Any] = {"cmd": cmd}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(\w+) read", out)
    if not m:
        raise SystemExit(f"unparsable wrk output: {out[-800:]}")
    res["requests"] = int(m.group(1))
    res["secs"] = _ms(m.group(2), m.group(3)) / 1000
    res["bytes_read"] = _bytes(m.group(4), m.group(5))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else res["requests"] / res["secs"]
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1), m.group(2)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
        if m
        else {}
    )
    res["errors"] = res["non2xx"] + sum(res["socket_errors"].values())
    return res


# -- nginx (the http_client origin, started by the runner) --------------------------------------


def nginx_accepts(status_url: str) -> int:
    """Connections nginx has accepted so far (stub_status; this request's own one included)."""
    with urllib.request.urlopen(status_url, timeout=5) as r:
        return int(r.read().decode().splitlines()[2].split()[0])


def last_json_line(text: str) -> dict[str, Any] | None:
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None
