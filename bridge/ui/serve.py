"""``bridge ui``'s server: uvicorn on a socket bound here, so a busy port is one error line."""

from __future__ import annotations

import socket
from typing import Any


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (0: a free port); OSError when it cannot.

    Listening already, so a client that connects once the address is printed
    waits in the backlog until uvicorn accepts it, rather than being refused.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM; the app's shutdown stops its passes.

    uvicorn shuts down gracefully on either, then raises the signal again:
    Ctrl-C ends here, quietly; SIGTERM ends the process by that signal, as a
    service manager expects.
    """
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
