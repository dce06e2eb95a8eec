"""``python -m thor.http``: the ``thor`` command (see ``thor.http.cli``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
