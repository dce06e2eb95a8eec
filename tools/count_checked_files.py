#!/usr/bin/env python3
"""Run mypy from the root config and prove it checked every source file of every package.

With a PEP 420 namespace (``thor``) split across distributions, a mis-set mypy can silently
check one distribution only; this compares mypy's own count with the files on disk.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    expected = sorted(ROOT.glob("packages/*/src/**/*.py"))
    failed = False
    for platform in ("linux", "darwin"):
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--platform", platform],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr)
        match = re.search(r"in (\d+) source files?", result.stdout)
        checked = int(match.group(1)) if match else -1
        if result.returncode != 0:
            print(result.stdout)
            failed = True
        if checked != len(expected):
            print(
                f"mypy ({platform}) checked {checked} files; packages/*/src holds {len(expected)}"
            )
            failed = True
    print(f"count_checked_files: {len(expected)} source files expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
