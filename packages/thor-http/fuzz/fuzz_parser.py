"""Fuzz target for thor.http's HTTP/1.1 parser (atheris; hypothesis when atheris is missing).

Each input is one byte of configuration followed by the bytes a peer sends:

    bit 0 (0x01)  parse responses (a client) instead of requests (a server)
    bit 1 (0x02)  lenient_bare_lf
    bit 2 (0x04)  lenient_obs_fold
    bit 3 (0x08)  small limits (request line 24, field section 96, 4 fields, chunk line 8,
                  body 64): the limit checks are reached by short inputs
    bit 4 (0x10)  call eof() after the last byte
    bit 5 (0x20)  responses answer a HEAD request (no bodies)

so ``@GET / HTTP/1.1...`` is a request stream, ``A`` + ``HTTP/1.1 200 OK...`` a response stream
(see corpus/). The input is parsed whole, cut at points drawn from its hash, and one byte at a
time (when short). The target fails on: any exception that is not an ``HttpError``; events out
of order (a body or end outside a message, anything after a 101, a body longer than its
Content-Length); a parser not dead after an error or not silent when fed after it; and cuts that
change the outcome (other events, or another error class).

Run (from the repository root, in the hatch environment):

    python packages/thor-http/fuzz/fuzz_parser.py --seconds 60          # atheris if installed
    python packages/thor-http/fuzz/fuzz_parser.py --hypothesis --seconds 60
    python packages/thor-http/fuzz/fuzz_parser.py NEW_DIR packages/thor-http/fuzz/corpus \\
        -max_total_time=60                                                # plain libFuzzer flags

With ``--seconds`` and no corpus directory, atheris reads the seed corpus and writes what it
finds to a temporary directory, so the seeds in the repository stay as they are.
"""

from __future__ import annotations

import itertools
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

try:  # atheris instruments what is imported inside this block (coverage-guided fuzzing)
    import atheris
except ImportError:  # pragma: no cover - depends on the machine
    atheris = None

if __name__ == "__main__" and atheris is not None and "--hypothesis" not in sys.argv:
    with atheris.instrument_imports(include=["thor.http"]):
        from thor.http._parser import COUNTED, NO_BODY, Head, HttpParser
        from thor.http.error import HttpError
else:
    from thor.http._parser import COUNTED, NO_BODY, Head, HttpParser
    from thor.http.error import HttpError

SMALL_LIMITS = {
    "max_request_line": 24,
    "max_field_section": 96,
    "max_fields": 4,
    "max_chunk_line": 8,
    "max_body_size": 64,
}


class Owner:
    """Records events; frames responses as a client does (HEAD, 204, 304: no body)."""

    def __init__(self, requests: bool, head_request: bool) -> None:
        self.requests = requests
        self.head_request = head_request
        self.events: list[tuple[str, Any]] = []

    def input_start(self, head: Head) -> int:
        self.events.append(("head", head))
        if self.requests:
            return head.framing
        if self.head_request or head.status in (b"204", b"304"):
            return NO_BODY
        return head.framing

    def input_body(self, chunk: bytes) -> None:
        if not isinstance(chunk, bytes) or not chunk:
            raise AssertionError(f"empty or non-bytes body chunk {chunk!r}")
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + chunk)
        else:
            self.events.append(("body", chunk))

    def input_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.events.append(("end", trailers))


def _facts(head: Head) -> tuple[Any, ...]:
    return tuple(getattr(head, name) for name in Head.ATTRIBUTES)


def _parse(config: int, pieces: list[bytes]) -> tuple[list[Any], type | None]:
    requests = not config & 0x01
    owner = Owner(requests, bool(config & 0x20))
    parser = HttpParser(owner, requests)
    parser.lenient_bare_lf = bool(config & 0x02)
    parser.lenient_obs_fold = bool(config & 0x04)
    if config & 0x08:
        for name, value in SMALL_LIMITS.items():
            setattr(parser, name, value)
    error: HttpError | None = None
    try:
        for piece in pieces:
            parser.feed(piece)
        if config & 0x10:
            parser.eof()
    except HttpError as exc:  # the only exception allowed out of the parser
        error = exc
    _check_order(owner.events, requests)
    if error is not None:
        if not parser.dead:
            raise AssertionError(f"parser not dead after {error!r}")
        seen = len(owner.events)
        parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        parser.eof()
        if len(owner.events) != seen:
            raise AssertionError("events after an error")
    elif parser.dead:
        raise AssertionError("parser dead without an error")
    events = [(kind, _facts(value) if kind == "head" else value) for kind, value in owner.events]
    return events, type(error) if error is not None else None


def _check_order(events: list[tuple[str, Any]], requests: bool) -> None:
    in_message = stopped = False
    length: int | None = None
    for kind, value in events:
        if stopped:
            raise AssertionError("an event after a 101 response")
        if kind == "head":
            if in_message:
                raise AssertionError("a head inside a message")
            if not requests and value.status[:1] == b"1":
                stopped = value.status == b"101"
                continue
            in_message = True
            length = value.content_length if value.framing == COUNTED else None
        elif kind == "body":
            if not in_message:
                raise AssertionError("a body outside a message")
            if length is not None and len(value) > length:
                raise AssertionError(f"{len(value)} body bytes for Content-Length {length}")
        else:
            if not in_message:
                raise AssertionError("an end outside a message")
            in_message = False


def test_one_input(data: bytes) -> None:
    """The fuzz target: parse, cut several ways, check (raises on a finding)."""
    if not data:
        return
    config, stream = data[0], data[1:]
    rng = random.Random(zlib.crc32(data))
    points = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(1, 6)))
    edges = [0, *points, len(stream)]
    cuts = [[stream], [stream[a:b] for a, b in itertools.pairwise(edges)]]
    if len(stream) <= 2048:
        cuts.append([stream[i : i + 1] for i in range(len(stream))])
    first = _parse(config, cuts[0])
    for pieces in cuts[1:]:
        other = _parse(config, pieces)
        if other != first:
            raise AssertionError(
                f"the outcome depends on how the input is cut: {first[1]} vs {other[1]} "
                f"(cuts at {[len(p) for p in pieces]})\nwhole: {first[0]}\ncut:   {other[0]}"
            )


# -- drivers ---------------------------------------------------------------------------------------


def _seconds(argv: list[str]) -> float | None:
    if "--seconds" in argv:
        return float(argv[argv.index("--seconds") + 1])
    return None


def _seeds() -> list[bytes]:
    return [path.read_bytes() for path in sorted(CORPUS.iterdir()) if path.is_file()]


def run_atheris(argv: list[str]) -> None:
    args = list(argv)
    if "--seconds" in args:
        index = args.index("--seconds")
        args[index : index + 2] = [f"-max_total_time={int(float(args[index + 1]))}"]
    if not any(not arg.startswith("-") for arg in args[1:]):  # no corpus directory given
        scratch = tempfile.mkdtemp(prefix="thor-http-fuzz-")
        args[1:1] = [scratch, str(CORPUS)]
        print(f"new inputs go to {scratch}", file=sys.stderr)
        if not any(arg.startswith("-artifact_prefix=") for arg in args):
            args.append(f"-artifact_prefix={scratch}/")  # crash files: not in the work tree
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


def run_hypothesis(argv: list[str]) -> None:
    """Random and mutated inputs (hypothesis) until the time is up; seeds run first."""
    seconds = _seconds(argv) or 60.0
    seeds = _seeds()
    for seed in seeds:
        test_one_input(seed)

    @st.composite
    def mutant(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 8))):
            where = draw(st.integers(0, len(data)))
            action = draw(st.sampled_from(["insert", "delete", "replace", "splice", "config"]))
            if action == "insert":
                data[where:where] = draw(st.binary(min_size=1, max_size=4))
            elif action == "delete" and where < len(data):
                del data[where : where + draw(st.integers(1, 8))]
            elif action == "replace" and where < len(data):
                data[where] = draw(st.sampled_from(b'\r\n\t :;,0aAfF-+\x00\x0b\x0c\x7f\xa0"/1'))
            elif action == "splice":
                other = draw(st.sampled_from(seeds))[1:]
                start = draw(st.integers(0, len(other)))
                data[where:where] = other[start : start + draw(st.integers(1, 64))]
            elif action == "config" and data:
                data[0] = draw(st.integers(0, 63))
        return bytes(data)

    inputs = st.one_of(mutant(), st.binary(max_size=512))
    runs = 0

    @settings(
        max_examples=500,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs)
    def batch(data: bytes) -> None:
        nonlocal runs
        runs += 1
        try:
            test_one_input(data)
        except BaseException:
            print(f"finding (config 0x{data[:1].hex()}): {data!r}", file=sys.stderr)
            raise

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        batch()
    print(f"hypothesis fuzzing: {runs} inputs in {time.monotonic() - started:.0f} s, no finding")


def main() -> None:
    argv = list(sys.argv)
    if atheris is not None and "--hypothesis" not in argv:
        run_atheris(argv)
    else:
        if "--hypothesis" not in argv:
            print("atheris is not installed: fuzzing with hypothesis", file=sys.stderr)
        run_hypothesis(argv)


if __name__ == "__main__":
    main()
