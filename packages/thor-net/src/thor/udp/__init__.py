"""thor.udp: UDP datagrams on the thor loop.

    import thor.loop
    from thor.udp import UdpEndpoint

    server = UdpEndpoint()
    server.bind(b"127.0.0.1", 0)

    def echo(data: bytes, host: str, port: int) -> None:
        server.send(data, host, port)

    server.on("datagram", echo)
    server.pause(False)  # endpoints start paused

    client = UdpEndpoint()
    client.on("datagram", lambda data, host, port: thor.loop.stop())
    client.pause(False)
    client.send(b"ping", b"127.0.0.1", server.port)
    thor.loop.run()

``UdpEndpoint`` binds IPv4, IPv6 or every address (``bind(b"", port)``: dual-stack), receives
whole datagrams up to the 64 KiB UDP limit, refuses to send one over ``max_dgram``, resolves
names without blocking (``thor.dns``), and reports ICMP errors (e.g. "connection refused" from
a closed port) as ``'socket_error'`` events without closing itself. See ``_endpoint`` for the
theory of operation and ``_errqueue`` for the ICMP error reporting.
"""

from ._endpoint import MAX_DGRAM_IPV4, MAX_DGRAM_IPV6, UdpEndpoint

__all__ = ["MAX_DGRAM_IPV4", "MAX_DGRAM_IPV6", "UdpEndpoint"]
