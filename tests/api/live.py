"""A live API server for tests that need real HTTP (streams): uvicorn in a thread, port 0.

`serving(app)` binds 127.0.0.1 on a free port, runs the app (lifespan included) in a
daemon thread, yields its base URL once it accepts connections, and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import fastapi
import uvicorn

STARTUP_TIMEOUT_S = 30.0


@contextlib.contextmanager
def serving(app: fastapi.FastAPI) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yields `http://127.0.0.1:<port>`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="api-under-test", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the API under test did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
