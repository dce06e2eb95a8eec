"""The fuzz target (fuzz/fuzz_parser.py) over its seed corpus: the harness stays importable and
runnable, and no seed is a finding. The fuzzing itself runs for a bounded time from the command
line (see fuzz/README.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


def load_harness() -> ModuleType:
    name = "thor_http_fuzz_parser"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, FUZZ / "fuzz_parser.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


SEEDS = sorted((FUZZ / "corpus").iterdir())


def test_the_corpus_has_valid_and_hostile_streams_of_both_kinds() -> None:
    assert len(SEEDS) >= 12
    configs = {path.read_bytes()[0] for path in SEEDS}
    assert any(not c & 1 for c in configs) and any(c & 1 for c in configs)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda path: path.name)
def test_seed_is_no_finding(seed: Path) -> None:
    load_harness().test_one_input(seed.read_bytes())


def test_the_harness_reports_a_parser_that_depends_on_the_cuts() -> None:
    """The target's own check works: a parser whose events depend on the cuts is a finding."""
    harness = load_harness()
    parse = harness._parse
    calls = []

    def flaky(config: int, pieces: list[bytes]) -> tuple[list[object], type | None]:
        calls.append(pieces)
        events, error = parse(config, pieces)
        return ([*events, ("extra", len(calls))], error) if len(calls) > 1 else (events, error)

    harness._parse = flaky
    try:
        with pytest.raises(AssertionError, match="depends on how the input is cut"):
            harness.test_one_input(b"@GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        harness._parse = parse
