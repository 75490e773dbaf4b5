"""Running the API in-process with uvicorn, on one port, next to the scheduler.

The socket is bound before anything else starts, so a port in use is one line and exit
1, not a traceback after the scheduler already ran. uvicorn owns the main thread and its
signals: Ctrl-C (or SIGTERM) stops accepting, lets requests in flight finish (up to
``graceful_s``), and returns; ``serve`` then stops the scheduler.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from engine.errors import WorkflowError

KEEP_ALIVE_S = 5  # idle keep-alive connections are closed after this
GRACEFUL_S = 10  # on shutdown, requests in flight get this long to finish
MAX_CONNECTIONS = 512  # beyond this uvicorn answers 503 at once instead of queueing


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; WorkflowError in words if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WorkflowError(f"--host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise WorkflowError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class RedactLinks(logging.Filter):
    """An access-log line names the request path, and an action link's path is its token:
    whoever reads the log could use a link not yet used. Only the token's first 12
    characters are kept, as api/links.py logs them."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if path.startswith("/a/") and len(path) > 15:
                record.args = (*args[:2], path[:15] + "...", *args[3:])
        return True


_REDACT = RedactLinks()


def server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    access = logging.getLogger("uvicorn.access")
    if _REDACT not in access.filters:
        access.addFilter(_REDACT)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # through the root logger: stamped in the display zone like ticks
        log_level="info",
        access_log=True,
        proxy_headers=False,  # behind a proxy, pass --forwarded-allow-ips to uvicorn yourself
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_S,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
    )
    return uvicorn.Server(config)


class _Stopped(Exception):
    """The signal uvicorn passes on after its graceful shutdown."""


@contextmanager
def _stop_quietly() -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it once it has shut down (for the
    previous handler's sake); with the default handlers that is a KeyboardInterrupt
    ('Aborted!', exit 1) or death by SIGTERM before the scheduler is stopped. Handlers
    of our own make both an orderly return."""

    def stopped(_signum: int, _frame: FrameType | None) -> None:
        raise _Stopped

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGINT or SIGTERM; returns after a clean shutdown."""
    from service.scheduler import configure_logging

    configure_logging()
    host, port = sock.getsockname()[:2]
    with _stop_quietly():
        server(app, host, port).run(sockets=[sock])
