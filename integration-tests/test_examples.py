"""The runnable examples: each package README's first Python block, and examples/*.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = sorted(ROOT.glob("packages/*/README.md"))
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def readme_example(readme: Path) -> str | None:
    match = PYTHON_BLOCK.search(readme.read_text())
    return match.group(1) if match else None


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_readme_example_runs(readme: Path, tmp_path: Path) -> None:
    code = readme_example(readme)
    assert code is not None, f"{readme} has no ```python example"
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed nothing"


def test_ticker_demo_runs_to_the_end() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ticker.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "tick 1 at" in result.stdout
    assert "worker thread finished" in result.stdout
    assert re.search(r"done after \d+ ticks", result.stdout)


def test_ticker_demo_stops_gracefully_on_sigint() -> None:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "ticker.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "running on" in first
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "SIGINT received: stopping" in out
    assert "done after" in out


def test_hello_and_fetch_demo() -> None:
    """Serve hello-world and fetch it with thor's client, on one loop."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "hello_and_fetch.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("body: Hello, world!") == 3
    assert result.stdout.count("200 OK") == 3


def test_proxy_demo() -> None:
    """The README quick start's main job: a reverse proxy in front of a local origin."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "proxy_demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("(Via: 1.1 thor)") == 3
    assert "client: body b'Hello from the origin: /hello?lang=en\\n'" in out
    assert "client: 404 Not Found" in out
    # the proxy's access log: one extended common-log line per request, naming the upstream
    log = [line for line in out.splitlines() if line.startswith("127.0.0.1 - - [")]
    assert len(log) == 3
    assert all(" upstream=127.0.0.1:" in line for line in log)
    assert '"GET /missing HTTP/1.1" 404 13 ' in log[2]
