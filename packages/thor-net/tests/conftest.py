"""Makes the shared test helpers (tcp_fixtures, dns_test_server) importable by name: pytest runs
in importlib mode, which keeps test directories off sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
