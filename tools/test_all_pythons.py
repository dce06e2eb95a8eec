#!/usr/bin/env python3
"""Run the whole test suite under every supported Python (3.10 to 3.13) found on this machine.

Each interpreter gets a virtual environment under $THOR_PY_VENVS (default /tmp/thor-pythons)
with the four packages installed editable and the test tools; then pytest runs as in
``hatch run test``. Interpreters are looked up under pyenv first, then as ``python3.X`` on PATH.

Usage: python tools/test_all_pythons.py [--require] [pytest args...]
  --require   fail when one of the versions is not installed (default: report and go on)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
TOOLS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "hatchling>=1.21",
    "pyee>=11",
    "trustme>=1.1",
    "requests>=2.31",
    "urllib3>=2",
    "tomli>=2",
    "prometheus-client>=0.17",
    "tqdm>=4.66",
]


def find_python(version: str) -> str | None:
    """Path of an interpreter for ``version``, or None."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}")):
        return str(candidate)
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-V"], capture_output=True).returncode == 0:
        return found
    return None


def main(argv: list[str]) -> int:
    require = "--require" in argv
    pytest_args = [a for a in argv if a != "--require"]
    base = Path(os.environ.get("THOR_PY_VENVS", "/tmp/thor-pythons"))
    results: dict[str, str] = {}
    for version in VERSIONS:
        python = find_python(version)
        if python is None:
            results[version] = "not installed"
            continue
        env_dir = base / f"py{version}"
        env_python = env_dir / "bin" / "python"
        if not env_python.exists():
            subprocess.run([python, "-m", "venv", str(env_dir)], check=True)
        packages = [f"-e{p}" for p in sorted(ROOT.glob("packages/*")) if p.is_dir()]
        subprocess.run(
            [
                str(env_python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *TOOLS,
                *packages,
            ],
            check=True,
        )
        print(f"== Python {version} ({python})", flush=True)
        code = subprocess.run(
            [str(env_python), "-m", "pytest", "-q", *pytest_args], cwd=ROOT
        ).returncode
        results[version] = "passed" if code == 0 else f"FAILED (exit {code})"
    print()
    for version, outcome in results.items():
        print(f"Python {version}: {outcome}")
    bad = [v for v, r in results.items() if r.startswith("FAILED")]
    missing = [v for v, r in results.items() if r == "not installed"]
    return 1 if bad or (require and missing) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
