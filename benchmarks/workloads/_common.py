"""Shared by the workload scripts: argument parsing, loading the implementation, and the one JSON
line every workload prints.

A workload runs in a fresh interpreter of one benchmark venv (see ``benchmarks/run.py``) and
prints exactly one line on stdout::

    {"workload": ..., "impl": ..., "api": ..., "cases": {NAME: {"rate": ..., ...}}, ...}

Each case carries its headline figure (``rate``; ``lower_is_better`` marks latencies), the count
it was computed from (``n``), the wall seconds it took (``secs``) and the CPU seconds the process
used meanwhile (``cpu_s``, from ``os.times``: user + system, all threads), plus free extras.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

IMPLS = (
    "thor",
    "asyncio",
    "asyncio-glibc",
    "uvloop",
    "pyee",
    "bare",
    "aiohttp",
    "uvicorn",
    "httpx",
)
# the distributions whose versions a run records, by --impl (besides the thor ones)
PEER_DISTS = {
    "aiohttp": ("aiohttp",),
    "uvicorn": ("uvicorn", "httptools", "uvloop"),
    "httpx": ("httpx", "httpcore"),
}


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every workload takes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--impl", choices=IMPLS, required=True)
    ap.add_argument("--label", default="", help="the row name the runner uses (recorded only)")
    return ap


def cpu_now() -> float:
    """CPU seconds (user + system) used by this process so far, all threads.

    ``time.process_time`` (CLOCK_PROCESS_CPUTIME_ID): the same quantity as ``os.times()``'s
    user + system, at nanosecond rather than clock-tick (10 ms) resolution, which matters for
    cases that last a tenth of a second.
    """
    return time.process_time()


def describe(impl: str) -> dict[str, Any]:
    """What is being measured: versions and the files the code under test came from."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable}
    if impl == "thor":
        import thor.events
        import thor.loop

        info["thor.loop"] = thor.loop.__file__
        info["thor.events"] = thor.events.__file__
        info["thor.loop.__version__"] = getattr(thor.loop, "__version__", None)
        for name in ("thor.tcp", "thor.http", "thor.http.server", "thor.http.client"):
            module = sys.modules.get(name)
            if module is not None:
                info[name] = module.__file__
        try:
            from importlib.metadata import version

            dists = ("thor", "thor-loop", "thor-net", "thor-http", "dnspython")
            info["dist"] = {d: _dist_version(version, d) for d in dists}
        except ImportError:  # pragma: no cover
            pass
    elif impl == "uvloop":
        import uvloop

        info["uvloop"] = uvloop.__version__
    elif impl == "pyee":
        from importlib.metadata import version

        info["pyee"] = version("pyee")
    elif impl in PEER_DISTS:
        from importlib.metadata import version

        info.update({d: _dist_version(version, d) for d in PEER_DISTS[impl]})
    return info


def import_quietly(name: str) -> None:
    """Import a module if it imports (describe() then records its file); never fail."""
    import importlib

    try:
        importlib.import_module(name)
    except Exception:
        pass


def _dist_version(version: Any, dist: str) -> str | None:
    try:
        return str(version(dist))
    except Exception:
        return None


def new_asyncio_loop(impl: str) -> Any:
    """A fresh asyncio loop: the stdlib one, or uvloop's."""
    if impl == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    import asyncio

    return asyncio.new_event_loop()


def case(n: int, secs: float, cpu_s: float, *, rate: float | None = None, **extra: Any) -> dict:
    """One measured case; ``rate`` defaults to n / secs."""
    out: dict[str, Any] = {
        "rate": (n / secs if secs > 0 else 0.0) if rate is None else rate,
        "n": n,
        "secs": round(secs, 6),
        "cpu_s": round(cpu_s, 4),
    }
    out.update(extra)
    return out


def emit_result(
    args: argparse.Namespace, workload: str, api: str, cases: dict, **extra: Any
) -> None:
    """Print the one JSON line of this run."""
    out: dict[str, Any] = {
        "workload": workload,
        "impl": args.impl,
        "label": args.label,
        "api": api,
        "cases": cases,
        "info": describe(args.impl),
        "os_times": dict(zip(("user", "system"), os.times()[:2], strict=True)),
    }
    out.update(extra)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


perf = time.perf_counter
