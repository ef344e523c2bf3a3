"""Running the application under uvicorn: in the foreground (``cmrm serve``) or in a background
thread on a socket bound before start-up (tests, benchmarks)."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from ..base.errors import CmrmError


def check_port(host: str, port: int) -> None:
    """Refuse, before any model is loaded, a ``host:port`` that cannot be listened on: in use
    (another server, an earlier ``cmrm serve``), not this machine's address, or privileged.

    Binds and closes a socket the way uvicorn will (``SO_REUSEADDR``), so that a port in
    ``TIME_WAIT`` passes and a listening one does not.

    Raises:
        CmrmError: one line naming host and port, what the system said and the fix.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise CmrmError(
            f"cannot listen on {host}:{port}: the host does not resolve ({err.strerror}); pass "
            "an address of this machine with --host, e.g. --host 127.0.0.1"
        ) from err
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise CmrmError(
                    f"port {port} on {host} is already in use (another server, or an earlier "
                    f"`cmrm serve` still running); pick a free one with --port, e.g. --port "
                    f"{_free_port(host)}"
                ) from err
            raise CmrmError(
                f"cannot listen on {host}:{port}: {err.strerror or err}; pass another --port "
                "(1024 or above needs no privileges) or an address of this machine with --host"
            ) from err


def _free_port(host: str) -> int:
    """A port free on ``host`` right now (the system's pick)."""
    family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_forever(app: Any, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM shut it down cleanly)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


@contextmanager
def running_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 60.0
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields the base URL (``http://host:port``).

    ``port=0`` takes a free port. On exit the server stops accepting requests, finishes the
    ones in flight, runs the app's shutdown and the thread ends.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="cmrm-serve-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise CmrmError(f"the server did not start on {host}:{bound}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
