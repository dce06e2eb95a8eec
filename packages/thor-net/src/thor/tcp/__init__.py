"""thor.tcp (thor-net): TCP (and Unix domain) stream connections on the thor loop.

import thor.loop
from thor.tcp import TcpClient, TcpServer

server = TcpServer(b"127.0.0.1", 0)
server.on("connect", lambda conn: (conn.on("data", conn.write), conn.pause(False)))
...
"""

from ._client import TcpClient
from ._connection import TcpConnection
from ._listen import server_listen, server_listen_unix
from ._server import TcpServer
from ._version import __version__

__all__ = [
    "TcpClient",
    "TcpConnection",
    "TcpServer",
    "__version__",
    "server_listen",
    "server_listen_unix",
]
