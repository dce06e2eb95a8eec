"""thor.tls (thor-net): TLS clients, servers and connections on the thor loop.

    import thor.loop
    from thor.tls import TlsClient

    def connected(conn):
        conn.on("data", print)
        conn.pause(False)
        conn.write(b"GET / HTTP/1.1\\r\\nHost: example.com\\r\\nConnection: close\\r\\n\\r\\n")

    client = TlsClient(alpn_protocols=["http/1.1"])
    client.on("connect", connected)
    client.on("connect_error", lambda *err: print("failed:", err))
    client.connect(b"example.com", 443, connect_timeout=10)
    thor.loop.run()

The same API and events as thor.tcp (TlsClient is a TcpClient, TlsServer a TcpServer,
TlsConnection a TcpConnection), plus TLS: certificates and host names are **verified by
default** (``verify=False`` or ``TlsClient.verify_certificates = False`` restore thor 0.17's
accept-anything behaviour, loudly), SNI, ALPN, a server with per-name certificates, and
handshakes that never block the loop.
"""

from thor.tcp import __version__

from ._client import TlsClient
from ._connection import TlsConnection
from ._server import TlsServer

__all__ = ["TlsClient", "TlsConnection", "TlsServer", "__version__"]
