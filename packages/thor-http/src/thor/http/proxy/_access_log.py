"""The proxy's access record: one per request that reached the proxy, emitted as ``'access'``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccessRecord"]


@dataclass(slots=True)
class AccessRecord:
    """What happened to one proxied (or locally answered) request.

    Times are in seconds, measured on the loop's clock from when the request head arrived;
    None when that step did not happen (no upstream was used, or it never answered).

    Attributes:
        client: the client's address ``(host, port)`` as the proxy believes it (the PROXY
            protocol header's source when that is enabled).
        method, target: the request line's method and request target (bytes, as received).
        version: the request's HTTP version (b"1.1" or b"1.0").
        status: the status code sent to the client (int; 0 when no response was sent).
        bytes_in: request body bytes received from the client.
        bytes_out: response body bytes sent to the client.
        upstream: ``"host:port"`` of the upstream used, or None (answered locally, refused).
        connect_time: until the upstream connection was ready (None: none was used).
        first_byte_time: until the upstream's response head arrived.
        total_time: until the response to the client was done (or the exchange failed).
        error: a short reason when the exchange failed (``"upstream timeout"``), else None.
        started: the wall-clock time (``time.time()``) when the request head arrived.
    """

    client: tuple[str, int]
    method: bytes
    target: bytes
    version: bytes
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    upstream: str | None = None
    connect_time: float | None = None
    first_byte_time: float | None = None
    total_time: float | None = None
    error: str | None = None
    started: float = 0.0
