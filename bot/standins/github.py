"""A stand-in for GitHub's Actions secrets API, served over real HTTP on 127.0.0.1."""

import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

from bot.standins.serving import LoopbackServer, StandIn

_SECRET_PATH = re.compile(r"/repos/([^/]+/[^/]+)/actions/secrets/([^/]+)")


class GitHubStandIn(StandIn):
    """Serves `GET /repos/{owner}/{repo}/actions/secrets/{name}` for one token."""

    def __init__(self, token: str, repository: str = "pollinations/pollinations"):
        self.token = token
        self.repository = repository
        self.requests: list[str] = []
        self._secrets: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._http = LoopbackServer("GitHub stand-in", self._handler(), self)

    @property
    def url(self) -> str:
        """The base URL to use as GITHUB_API_URL."""
        return self._http.url

    def set_secret(self, name: str, updated_at: datetime) -> None:
        """Create secret `name`, or change when GitHub says it was last updated."""
        with self._lock:
            self._secrets[name] = updated_at.astimezone(UTC)

    def remove_secret(self, name: str) -> None:
        """Forget secret `name`, so it answers 404."""
        with self._lock:
            self._secrets.pop(name, None)

    def start(self) -> str:
        """Listen on a free port of 127.0.0.1 and return the base URL."""
        return self._http.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._http.stop()

    def answer(
        self, path: str, authorization: str | None
    ) -> tuple[int, dict[str, str]]:
        """The status and JSON body GitHub would give for one request."""
        with self._lock:
            self.requests.append(path)
            secrets = dict(self._secrets)
        if authorization != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        match = _SECRET_PATH.fullmatch(path)
        if match is None or match.group(1) != self.repository:
            return 404, {"message": "Not Found"}
        updated_at = secrets.get(match.group(2))
        if updated_at is None:
            return 404, {"message": "Not Found"}
        stamp = updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, {"name": match.group(2), "created_at": stamp, "updated_at": stamp}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = standin.answer(
                    self.path, self.headers.get("Authorization")
                )
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                # Request lines may carry secret names; the test output stays quiet.
                return

        return Handler
