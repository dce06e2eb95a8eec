#!/usr/bin/env python3
"""The http_proxy benchmark's results: ratios (markdown) and a chart (PNG).

    python benchmarks/chart.py                          # the newest bench-results/ run with
                                                        # http_proxy: PNG beside its JSON
    python benchmarks/chart.py bench-results/thor-bench-STAMP.json [-o OUT.png]
    python benchmarks/chart.py RESULTS.json --copy benchmarks/proxy-chart.png
                                                        # also the stable copy the README shows

`benchmarks/run.py` calls it after every run that includes http_proxy: the ratio lines go under
the tables (``proxy_summary``, standard library only) and the chart is written as
``bench-results/thor-bench-STAMP-proxy.png``.

The chart needs matplotlib, which is no dependency of any thor package: when the interpreter
running this script lacks it, the script makes (once) a venv of its own,
``$THOR_BENCH_VENVS/chart`` (default /tmp/thor-bench-venvs/chart), installs matplotlib there
with pip, and runs itself again with that venv's python.

Three panels, one bar per proxy, medians of the runs the runner used (undisturbed runs when at
least two exist): requests per proxy CPU-second and requests per second with 13-byte bodies, MB/s
with 1 MiB bodies. The footer gives the date, the commit, rounds, and says when the run was
--quick or had disturbed runs (such a chart is not one to publish).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = Path(os.environ.get("THOR_BENCH_RESULTS", str(ROOT / "bench-results")))
VENVS = Path(os.environ.get("THOR_BENCH_VENVS", "/tmp/thor-bench-venvs"))
BASE_PYTHON = os.environ.get("THOR_BENCH_PYTHON", "python3.11")
CHART_DISTS = ("matplotlib>=3.7",)
WORKLOAD = "http_proxy"
SMALL = "13-byte body"
LARGE = "1 MiB body"
# goals of issue 6, thor new against each row (medians)
GOALS = {
    (SMALL, "classic"): 8.0,  # requests per proxy CPU-second
    (SMALL, "aiohttp"): 4.0,
    (LARGE, "aiohttp"): 1.5,  # MB/s
    (LARGE, "nginx"): 0.9,  # "on par with nginx"
}
ROLE_TEXT = {
    "classic": "thor 0.17",
    "aiohttp": "aiohttp",
    "uvloop": "aiohttp on uvloop",
    "nginx": "nginx",
}


def role(label: str) -> str:
    """What a row of the http_proxy table is, from its label."""
    low = label.lower()
    if low.startswith("thor new"):
        if "worker" in low:
            return "workers"
        return "cli" if "thor proxy" in low else "new"
    if low.startswith("thor 0.17"):
        return "classic"
    if low.startswith("nginx"):
        return "nginx"
    if low.startswith("aiohttp"):
        return "uvloop" if "uvloop" in low else "aiohttp"
    return "other"


# -- figures from the runner's records (standard library only) ----------------------------------


def medians(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{label: {case: {figure: median}}} for the http_proxy records, with the runner's rule:
    undisturbed runs when at least two exist (or when every run is clean), else all runs."""
    runs: dict[tuple[str, str], list[tuple[dict[str, Any], bool]]] = {}
    for rec in records:
        if rec.get("workload") != WORKLOAD or "result" not in rec:
            continue
        for name, case in rec["result"]["cases"].items():
            runs.setdefault((rec["label"], name), []).append((case, bool(rec.get("disturbed"))))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (label, name), items in runs.items():
        clean = [c for c, bad in items if not bad]
        used = clean if len(clean) >= min(2, len(items)) else [c for c, _ in items]
        figures = {}
        for key in ("rate", "rps", "mb_s", "req_per_cpu_s", "cpu_s", "proxy_busy"):
            xs = [c[key] for c in used if isinstance(c.get(key), (int, float))]
            figures[key] = statistics.median(xs) if xs else math.nan
        out.setdefault(label, {})[name] = figures
    return out


def _by_role(meds: dict[str, dict[str, dict[str, float]]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for label in meds:
        found.setdefault(role(label), label)
    return found


def _x(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}x"


def proxy_summary(records: list[dict[str, Any]]) -> str:
    """Markdown lines: thor new against every other proxy (the issue's ratios and goals), and
    the --workers scaling; '' when there is no http_proxy result for thor new."""
    meds = medians(records)
    roles = _by_role(meds)
    if "new" not in roles:
        return ""
    new = meds[roles["new"]]

    def ratio(case: str, other: str, key: str = "rate") -> float:
        if other not in roles or case not in new or case not in meds[roles[other]]:
            return math.nan
        mine, theirs = new[case][key], meds[roles[other]][case][key]
        return mine / theirs if theirs > 0 and not math.isnan(mine) else math.nan

    parts = []
    for case, what in (
        (SMALL, "13-byte bodies, requests per proxy CPU-s"),
        (LARGE, "1 MiB bodies, MB/s"),
    ):
        if case not in new:
            continue
        items = []
        for other in ("classic", "aiohttp", "uvloop", "nginx"):
            x = ratio(case, other)
            if math.isnan(x):
                continue
            goal = GOALS.get((case, other))
            mark = ""
            if goal is not None:
                mark = f" {'ok' if x >= goal else 'MISS'} (>={goal:g}x)"
                if case == LARGE and other == "nginx":
                    mark = f" {'ok' if x >= goal else 'MISS'} (on par: >={goal:g}x)"
            items.append(f"vs {ROLE_TEXT[other]} {_x(x)}{mark}")
        if items:
            parts.append(f"{what}: " + ", ".join(items))
    if "cli" in roles:
        cli = meds[roles["cli"]]
        cost = [
            f"{what} {_x(cli[case][key] / new[case][key])}"
            for case, key, what in (
                (SMALL, "req_per_cpu_s", "13-byte bodies per CPU-s"),
                (LARGE, "mb_s", "1 MiB MB/s"),
            )
            if case in cli and case in new and new[case][key] > 0
        ]
        if cost:
            parts.append(f"{roles['cli']} against the bare ReverseProxy: " + ", ".join(cost))
    if "workers" in roles:
        # against the one-process row that runs the same code: the command line's when the
        # workers came from it
        launched = {
            rec["label"]: next(iter(rec["result"]["cases"].values())).get("proxy", "")
            for rec in records
            if rec.get("workload") == WORKLOAD and rec.get("result", {}).get("cases")
        }
        via_cli = launched.get(roles["workers"], "").startswith("thor proxy")
        base_label = roles["cli"] if via_cli and "cli" in roles else roles["new"]
        base = meds[base_label]
        scale = []
        for case, what in ((SMALL, "13-byte bodies"), (LARGE, "1 MiB bodies")):
            one, two = base.get(case), meds[roles["workers"]].get(case)
            if one and two and one["rps"] > 0 and one["req_per_cpu_s"] > 0:
                scale.append(
                    f"{what} {_x(two['rps'] / one['rps'])} req/s, "
                    f"{_x(two['req_per_cpu_s'] / one['req_per_cpu_s'])} req per CPU-s"
                )
        if scale:
            parts.append(
                f"{roles['workers']} ({launched.get(roles['workers'], '?')}) against "
                f"{base_label} (one pinned process): " + "; ".join(scale)
            )
    if not parts:
        return ""
    return "**http_proxy, thor new against each proxy (medians):** " + " | ".join(parts)


# -- the chart (matplotlib) ---------------------------------------------------------------------


def _short(v: float) -> str:
    if math.isnan(v):
        return "failed"
    if v >= 10_000:
        return f"{v / 1000:,.0f}k"
    if v >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:,.0f}"


ORDER = ("new", "cli", "workers", "classic", "aiohttp", "uvloop", "nginx", "other")
COLOURS = {
    "new": "#1f5fa8",
    "cli": "#3f7fc8",
    "workers": "#6f9fd8",
    "classic": "#9aa7b4",
    "aiohttp": "#c9894b",
    "uvloop": "#e0ad72",
    "nginx": "#3c8d4f",
    "other": "#888888",
}


def render(payload: dict[str, Any], out: Path) -> None:
    """Draw the chart of one results payload (the runner's JSON) to `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    meds = medians(payload["runs"])
    records = [r for r in payload["runs"] if r.get("workload") == WORKLOAD]
    if not records:
        raise SystemExit("no http_proxy runs in this file")
    # every row that ran, failed ones too (drawn as "failed")
    labels = sorted(
        dict.fromkeys(r["label"] for r in records), key=lambda lb: ORDER.index(role(lb))
    )
    panels = (
        (SMALL, "req_per_cpu_s", "13-byte bodies: requests per proxy CPU-second"),
        (SMALL, "rps", "13-byte bodies: requests per second"),
        (LARGE, "mb_s", "1 MiB bodies: MB/s"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 0.55 * len(labels) + 2.4))
    for ax, (case, key, title) in zip(axes, panels, strict=True):
        values = [meds.get(lb, {}).get(case, {}).get(key, math.nan) for lb in labels]
        ys = list(range(len(labels)))[::-1]
        bars = ax.barh(
            ys,
            [0 if math.isnan(v) else v for v in values],
            color=[COLOURS[role(lb)] for lb in labels],
            hatch=None,
        )
        for bar, lb in zip(bars, labels, strict=True):
            if role(lb) == "workers":
                bar.set_hatch("//")
        top = max((v for v in values if not math.isnan(v)), default=1.0)
        for y, v in zip(ys, values, strict=True):
            ax.text((0 if math.isnan(v) else v) + top * 0.01, y, _short(v), va="center", fontsize=9)
        ax.set_yticks(ys)
        names = [lb.replace("`", "") for lb in labels]
        ax.set_yticklabels(names if ax is axes[0] else [""] * len(labels))
        ax.set_xlim(0, top * 1.18)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v) if v else "0"))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    meta = payload.get("meta", {})
    disturbed = sum(1 for r in records if r.get("disturbed"))
    failed = sum(1 for r in records if "result" not in r)
    warn = []
    if meta.get("quick"):
        warn.append("--quick run")
    if disturbed:
        warn.append(f"{disturbed} of {len(records)} runs disturbed")
    if failed:
        warn.append(f"{failed} failed")
    fig.suptitle(
        "thor reverse proxy against thor 0.17, aiohttp and nginx "
        "(proxy pinned to one CPU; wrk and the nginx origin on the other)",
        fontsize=12,
    )
    footer = (
        f"{meta.get('date', '')}, {meta.get('cpu_model', '')} x{meta.get('nproc', '')}, "
        f"git {meta.get('git', '')}; {meta.get('rounds', '?')} round(s), medians; "
        "wrk -t1, 50 connections (13 B) / 10 (1 MiB); keep-alive on both sides. "
        "Hatched: 2 processes, not pinned (they share both CPUs with wrk and the origin)."
    )
    fig.text(0.01, 0.01, "\n".join(textwrap.wrap(footer, 190)), fontsize=7.5, color="#444444")
    if warn:
        fig.text(
            0.5,
            0.905,
            "NOT FOR PUBLICATION: " + ", ".join(warn),
            ha="center",
            fontsize=10,
            color="#b00020",
        )
    fig.tight_layout(rect=(0, 0.07, 1, 0.9))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def newest_results() -> Path:
    """The newest bench-results JSON that has http_proxy records."""
    for path in sorted(RESULTS.glob("thor-bench-*.json"), reverse=True):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if any(r.get("workload") == WORKLOAD for r in payload.get("runs", ())):
            return path
    raise SystemExit(f"no results with {WORKLOAD} under {RESULTS}")


def chart_python() -> Path:
    """A python that has matplotlib: the chart venv (made and filled when missing)."""
    import shutil

    py = VENVS / "chart" / "bin" / "python"
    if not py.exists():
        base = shutil.which(BASE_PYTHON) or sys.executable
        print(f"chart: creating {py.parent.parent} with {base}", file=sys.stderr)
        subprocess.run([base, "-m", "venv", str(py.parent.parent)], check=True)
    probe = subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True)
    if probe.returncode != 0:
        print(f"chart: pip install {' '.join(CHART_DISTS)}", file=sys.stderr)
        cmd = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*cmd, *CHART_DISTS], check=True)
    return py


def draw(results: Path, out: Path | None = None, copy: Path | None = None) -> Path:
    """Write the chart of `results` (default: beside it, STEM-proxy.png), through the chart venv
    when this interpreter lacks matplotlib; the PNG's path. Raises CalledProcessError when
    drawing failed."""
    out = out or results.with_name(results.stem + "-proxy.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        cmd = [str(chart_python()), str(Path(__file__).resolve()), str(results), "-o", str(out)]
        cmd.append("--no-summary")
        if copy is not None:
            cmd += ["--copy", str(copy)]
        subprocess.run(cmd, check=True)
        return out
    render(json.loads(results.read_text()), out)
    if copy is not None:
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(out.read_bytes())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("results", nargs="?", type=Path, help="a bench-results JSON (default: newest)")
    ap.add_argument("-o", "--out", type=Path, help="the PNG (default: beside the JSON)")
    ap.add_argument("--copy", type=Path, help="also copy the PNG here (the README's chart)")
    ap.add_argument("--no-summary", action="store_true", help="do not print the ratio lines")
    args = ap.parse_args()
    results = args.results or newest_results()
    payload = json.loads(results.read_text())
    summary = "" if args.no_summary else proxy_summary(payload.get("runs", []))
    if summary:
        print(summary)
    out = draw(results, args.out, args.copy)
    print(f"chart: {out}" + (f" (copied to {args.copy})" if args.copy else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
