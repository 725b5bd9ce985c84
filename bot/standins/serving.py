"""How the HTTP stand-ins listen: on 127.0.0.1, a free port, from a daemon thread.

The stand-ins differ in what they answer, not in how they listen, so the listening
lives here once.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackServer:
    """A threading HTTP server; its handler finds the stand-in as `server.standin`."""

    def __init__(
        self,
        name: str,
        handler: type[BaseHTTPRequestHandler],
        standin: object = None,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    ) -> None:
        self.name = name
        self._handler = handler
        self._standin = standin
        self._server_class = server_class
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Such as `http://127.0.0.1:40123`."""
        if self._server is None:
            raise RuntimeError(f"the {self.name} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Bind a free port of 127.0.0.1, serve, and return the base URL."""
        server = self._server_class(("127.0.0.1", 0), self._handler)
        server.daemon_threads = True
        server.standin = self._standin  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and free the port; stopping twice is harmless."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class StandIn:
    """`with` support for a stand-in that has `start()` and `stop()`."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
