"""Makes test_cli.py's process helpers (``thor``, ``WAIT``, ``config_text``) importable by name
from the other CLI test files: pytest runs in importlib mode, which keeps test directories off
sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
