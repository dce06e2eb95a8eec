"""Helpers shared by the test_tls_* modules: certificates made at test time with trustme, and a
loop runner under a watchdog. The modules import this file by name (``from tls_fixtures import
Pki, run, stop_when_idle``); conftest.py puts this directory on sys.path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme

from thor.loop import LoopBase


class Pki:
    """A CA and a server certificate for localhost and 127.0.0.1, as files. Subclasses issue
    more certificates in their ``__init__`` with ``issue`` and ``write``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_file = self.write("ca.pem", self.ca.cert_pem)
        self.cert_file = self.issue("server.pem", "localhost", "127.0.0.1")

    def write(self, name: str, blob: trustme.Blob) -> str:
        path = str(self.directory / name)
        blob.write_to_path(path)
        return path

    def issue(self, file_name: str, *names: str, **options: Any) -> str:
        cert = self.ca.issue_cert(*names, **options)
        return self.write(file_name, cert.private_key_and_cert_chain_pem)


def run(loop: LoopBase, seconds: float = 10.0, what: str = "the exchange did not finish") -> None:
    """Run ``loop`` until something stops it; fail the test if ``seconds`` pass first."""
    expired: list[str] = []

    def expire() -> None:
        expired.append(repr(loop.registered_fd_handlers()))
        loop.stop()

    watchdog = loop.schedule(seconds, expire)
    loop.run()
    watchdog.delete()
    if expired:
        pytest.fail(f"timed out after {seconds} s: {what}; registered: {expired[0]}")


def stop_when_idle(loop: LoopBase, keep: int = 0) -> None:
    """Stop ``loop`` once no fd (but ``keep``) is registered any more (sockets closed)."""
    if loop.fd_count() > keep:
        loop.schedule(0.005, stop_when_idle, loop, keep)
    else:
        loop.stop()
