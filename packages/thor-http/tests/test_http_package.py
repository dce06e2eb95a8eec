"""The thor-http distribution as installed: its version and its place in the stack."""

from __future__ import annotations

import importlib.metadata

import thor.http


def test_version_matches_the_distribution_metadata() -> None:
    assert thor.http.__version__ == importlib.metadata.version("thor-http")


def test_requires_thor_net_in_the_declared_range() -> None:
    requires = importlib.metadata.requires("thor-http") or []
    thor_net = [r.replace(" ", "") for r in requires if r.startswith("thor-net")]
    assert len(thor_net) == 1, requires
    assert set(thor_net[0].removeprefix("thor-net").split(",")) == {">=0.1", "<0.2"}
