"""A local stand-in for the Slack Web API that records every call it answers.

It is a real threaded HTTP server on 127.0.0.1, so the bot talks to it through
slack_sdk exactly as it talks to Slack (`AsyncWebClient(base_url=f"{url}/api/")`).
It answers the methods the bot uses, takes file uploads and `response_url` posts,
and lets tests wait, without sleeping, for what the bot sends after it has acked.
"""

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

from bot.standins.serving import LoopbackServer, StandIn

TEAM_ID = "T0STANDIN"
BOT_USER_ID = "U0USAGEBOT"
BOT_ID = "B0USAGEBOT"
RESPONSE_URL_METHOD = "response_url"
UPLOAD_METHOD = "upload"

# Slack's message timestamps are strings; a fixed second and a counter keep them
# increasing and predictable in tests.
_TS_SECOND = 1_700_000_000

Answer = dict[str, Any]


@dataclass(frozen=True)
class SlackCall:
    """One request the stand-in received, as it arrived."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    token: str | None
    path: str
    at: datetime


@dataclass
class SlackUpload:
    """A file announced by files.getUploadURLExternal and what followed for it."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    completed: bool = False
    title: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


class SlackFailure(Exception):
    """Raised inside a handler to answer `{"ok": false, "error": ...}`."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _ScriptedFailure:
    error: str
    status: int
    retry_after: int | None


@dataclass
class _State:
    calls: list[SlackCall] = field(default_factory=list)
    uploads: dict[str, SlackUpload] = field(default_factory=dict)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, list[_ScriptedFailure]] = field(default_factory=dict)
    counter: int = 0


class SlackApiStandIn(StandIn):
    """The Slack Web API on a free local port; use as a context manager."""

    def __init__(
        self,
        *,
        token: str | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        usergroups: Mapping[str, list[str]] | None = None,
        app_token: str | None = None,
        socket_url: str | None = None,
    ) -> None:
        self._token = token
        # Socket Mode: apps.connections.open takes the app-level token instead and
        # answers with the WebSocket URL of a `SocketModeStandIn`.
        self._app_token = app_token
        self.socket_url = socket_url
        self._users = {key: dict(value) for key, value in (users or {}).items()}
        self.usergroups = {
            key: list(value) for key, value in (usergroups or {}).items()
        }
        self._changed = threading.Condition()
        self._state = _State()
        self._http = LoopbackServer("Slack API stand-in", _Handler, self, _Server)
        self._methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "conversations.info": self._conversation,
            "conversations.join": self._conversation,
            "users.info": self._user,
            "usergroups.users.list": self._usergroup_members,
            "views.open": self._open_view,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread."""
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._http.stop()

    @property
    def url(self) -> str:
        """Where the stand-in listens, such as `http://127.0.0.1:40123`."""
        return self._http.url

    @property
    def token(self) -> str | None:
        """The bearer token callers must send, if one was configured."""
        return self._token

    @property
    def api_url(self) -> str:
        """The `base_url` to give slack_sdk's clients."""
        return f"{self.url}/api/"

    @property
    def calls(self) -> list[SlackCall]:
        """Every call so far, oldest first."""
        with self._changed:
            return list(self._state.calls)

    @property
    def uploads(self) -> dict[str, SlackUpload]:
        """Announced files by file ID, with their bytes once uploaded."""
        with self._changed:
            return dict(self._state.uploads)

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """The messages posted in `channel`, oldest first, as they now stand."""
        with self._changed:
            found = [
                dict(message)
                for (where, _), message in self._state.messages.items()
                if where == channel
            ]
        return sorted(found, key=lambda message: message["ts"])

    def calls_to(self, method: str) -> list[SlackCall]:
        """Calls to one method (`chat.postMessage`, `upload`, `response_url`...)."""
        return [call for call in self.calls if call.method == method]

    def response_url(self, response_id: str) -> str:
        """A `response_url` for a slash command; posts to it are recorded."""
        return f"{self.url}/response/{response_id}"

    def responses_to(self, response_id: str) -> list[SlackCall]:
        """What was posted to one `response_url`."""
        path = f"/response/{response_id}"
        return [c for c in self.calls_to(RESPONSE_URL_METHOD) if c.path == path]

    def fail_next(
        self,
        method: str,
        error: str,
        *,
        status: int = HTTPStatus.OK,
        retry_after: int | None = None,
    ) -> None:
        """Make the next call to `method` answer `error` (and HTTP `status`)."""
        with self._changed:
            queue = self._state.failures.setdefault(method, [])
            queue.append(_ScriptedFailure(error, status, retry_after))

    def reset(self) -> None:
        """Forget every call, upload, message and scripted failure."""
        with self._changed:
            self._state = _State()
            self._changed.notify_all()

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 5.0
    ) -> list[SlackCall]:
        """Block until `count` calls to `method` have arrived; return them all."""
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: self._count(method) >= count, timeout=timeout
            )
            calls = [c for c in self._state.calls if c.method == method]
            seen = [c.method for c in self._state.calls]
        if not arrived:
            raise TimeoutError(
                f"expected {count} call(s) to {method} within {timeout}s; "
                f"got {len(calls)}; all calls: {seen}"
            )
        return calls

    async def wait_for_async(
        self,
        method: str,
        count: int = 1,
        # The timeout must reach the worker thread; asyncio.timeout cannot end it.
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[SlackCall]:
        """`wait_for` for a test whose bot runs on the same event loop."""
        # Waiting on the condition in the loop's thread would stall the bot we
        # are waiting for, so the wait happens in a worker thread.
        return await asyncio.to_thread(self.wait_for, method, count, timeout)

    def _count(self, method: str) -> int:
        return sum(1 for call in self._state.calls if call.method == method)

    def _record(self, call: SlackCall) -> None:
        with self._changed:
            self._state.calls.append(call)
            self._changed.notify_all()

    def _next_number(self) -> int:
        with self._changed:
            self._state.counter += 1
            return self._state.counter

    def _scripted_failure(self, method: str) -> _ScriptedFailure | None:
        with self._changed:
            queue = self._state.failures.get(method)
            return queue.pop(0) if queue else None

    def _check_token(self, token: str | None, method: str = "") -> None:
        expected = self._app_token if method == "apps.connections.open" else self._token
        if expected is None:
            return
        if not token:
            raise SlackFailure("not_authed")
        if token != expected:
            raise SlackFailure("invalid_auth")

    def _answer(self, method: str, params: dict[str, Any]) -> Answer:
        handler = self._methods.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        try:
            return handler(params)
        except SlackFailure as failure:
            return {"ok": False, "error": failure.error}

    def _auth_test(self, params: dict[str, Any]) -> Answer:
        return {
            "ok": True,
            "url": f"{self.url}/",
            "team": "Stand-in",
            "user": "usage-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _connections_open(self, params: dict[str, Any]) -> Answer:
        if self.socket_url is None:
            raise SlackFailure("not_allowed_token_type")
        return {"ok": True, "url": self.socket_url}

    def _post_message(self, params: dict[str, Any]) -> Answer:
        channel = _required(params, "channel", "channel_not_found")
        if not any(params.get(k) for k in ("text", "blocks", "attachments")):
            raise SlackFailure("no_text")

        ts = f"{_TS_SECOND}.{self._next_number():06d}"
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": params.get("text", ""),
            "ts": ts,
        }
        for key in ("thread_ts", "blocks"):
            if params.get(key):
                message[key] = params[key]
        with self._changed:
            self._state.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, params: dict[str, Any]) -> Answer:
        channel = _required(params, "channel", "channel_not_found")
        ts = _required(params, "ts", "message_not_found")
        with self._changed:
            message = self._state.messages.get((channel, ts))
            if message is None:
                raise SlackFailure("message_not_found")
            for key in ("text", "blocks"):
                if key in params:
                    message[key] = params[key]
            answer = dict(message)
        return {"ok": True, "channel": channel, "ts": ts, "text": answer["text"]}

    def _post_ephemeral(self, params: dict[str, Any]) -> Answer:
        _required(params, "channel", "channel_not_found")
        _required(params, "user", "user_not_in_channel")
        return {"ok": True, "message_ts": f"{_TS_SECOND}.{self._next_number():06d}"}

    def _permalink(self, params: dict[str, Any]) -> Answer:
        channel = _required(params, "channel", "channel_not_found")
        ts = _required(params, "message_ts", "message_not_found")
        link = f"{self.url}/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _conversation(self, params: dict[str, Any]) -> Answer:
        channel = _required(params, "channel", "channel_not_found")
        info = {
            "id": channel,
            "name": channel.lower(),
            "is_channel": True,
            "is_member": True,
        }
        return {"ok": True, "channel": info}

    def _user(self, params: dict[str, Any]) -> Answer:
        user_id = _required(params, "user", "user_not_found")
        default = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": user_id.lower(),
            "real_name": f"User {user_id}",
            "tz": "UTC",
            "is_bot": False,
            "is_admin": False,
        }
        return {"ok": True, "user": {**default, **self._users.get(user_id, {})}}

    def _open_view(self, params: dict[str, Any]) -> Answer:
        _required(params, "trigger_id", "invalid_trigger_id")
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise SlackFailure("invalid_arguments")
        # Numbered apart from messages, so opening a dialog moves no message ts.
        view_id = f"V{len(self.calls_to('views.open')):010d}"
        return {"ok": True, "view": {**view, "id": view_id}}

    def _usergroup_members(self, params: dict[str, Any]) -> Answer:
        group = _required(params, "usergroup", "invalid_arguments")
        with self._changed:
            members = self.usergroups.get(group)
        if members is None:
            raise SlackFailure("no_such_subteam")
        return {"ok": True, "users": list(members)}

    def _upload_url(self, params: dict[str, Any]) -> Answer:
        filename = _required(params, "filename", "invalid_arguments")
        length = str(params.get("length", ""))
        if not length.isdigit():
            raise SlackFailure("invalid_arguments")

        file_id = f"F{self._next_number():010d}"
        with self._changed:
            upload = SlackUpload(file_id=file_id, filename=filename, length=int(length))
            self._state.uploads[file_id] = upload
        return {
            "ok": True,
            "upload_url": f"{self.url}/upload/{file_id}",
            "file_id": file_id,
        }

    def _receive_upload(self, file_id: str, content: bytes) -> bool:
        with self._changed:
            upload = self._state.uploads.get(file_id)
            if upload is None:
                return False
            upload.content = content
            return True

    def _complete_upload(self, params: dict[str, Any]) -> Answer:
        files = params.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        if not isinstance(files, list) or not files:
            raise SlackFailure("invalid_arguments")

        done = []
        with self._changed:
            for item in files:
                upload = self._state.uploads.get(str(item.get("id")))
                if upload is None or upload.content is None:
                    raise SlackFailure("file_not_found")
                upload.completed = True
                upload.title = item.get("title") or upload.filename
                upload.channel_id = params.get("channel_id")
                upload.thread_ts = params.get("thread_ts")
                upload.initial_comment = params.get("initial_comment")
                done.append(self._file_info(upload))
        return {"ok": True, "files": done}

    def _file_info(self, upload: SlackUpload) -> Answer:
        channels = [upload.channel_id] if upload.channel_id else []
        return {
            "id": upload.file_id,
            "name": upload.filename,
            "title": upload.title,
            "size": len(upload.content or b""),
            "channels": channels,
            "permalink": f"{self.url}/files/{BOT_USER_ID}/{upload.file_id}",
        }


def _required(params: dict[str, Any], name: str, error: str) -> str:
    value = params.get(name)
    if not value:
        raise SlackFailure(error)
    return str(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: SlackApiStandIn


class _Handler(BaseHTTPRequestHandler):
    """Routes `/api/<method>`, `/upload/<file_id>` and `/response/<id>`."""

    server_version = "SlackStandIn/1"

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read the recorded calls, not a request log."""

    @property
    def _standin(self) -> SlackApiStandIn:
        return cast(_Server, self.server).standin

    def _route(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        kind, _, name = path.strip("/").partition("/")
        if kind == "api" and name:
            self._api(name, path, body)
        elif kind == "upload" and name:
            self._upload(name, path, body)
        elif kind == "response" and name:
            self._response(path, body)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def _api(self, method: str, path: str, body: bytes) -> None:
        params = self._params(body)
        token = _bearer(self.headers.get("Authorization")) or params.get("token")
        self._standin._record(self._call(method, params, token, path))

        failure = self._standin._scripted_failure(method)
        if failure is not None:
            extra = {}
            if failure.retry_after is not None:
                extra["Retry-After"] = str(failure.retry_after)
            answer: Answer = {"ok": False, "error": failure.error}
            self._send_json(failure.status, answer, extra)
            return
        try:
            self._standin._check_token(token, method)
        except SlackFailure as refused:
            self._send_json(HTTPStatus.OK, {"ok": False, "error": refused.error})
            return
        self._send_json(HTTPStatus.OK, self._standin._answer(method, params))

    def _upload(self, file_id: str, path: str, body: bytes) -> None:
        params = {"file_id": file_id, "length": len(body)}
        self._standin._record(self._call(UPLOAD_METHOD, params, None, path))
        if self._standin._receive_upload(file_id, body):
            self._send(HTTPStatus.OK, f"OK - {len(body)}".encode(), "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"unknown upload", "text/plain")

    def _response(self, path: str, body: bytes) -> None:
        params = self._params(body)
        self._standin._record(self._call(RESPONSE_URL_METHOD, params, None, path))
        self._send(HTTPStatus.OK, b"ok", "text/plain")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _params(self, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = _flat(parse_qs(urlsplit(self.path).query))
        content_type = self.headers.get_content_type()
        if content_type == "application/json" and body:
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                params.update(loaded)
        elif content_type == "application/x-www-form-urlencoded":
            text = body.decode("utf-8")
            params.update(_flat(parse_qs(text, keep_blank_values=True)))
        return params

    def _call(
        self, method: str, params: dict[str, Any], token: str | None, path: str
    ) -> SlackCall:
        return SlackCall(
            method=method,
            params=params,
            headers=dict(self.headers.items()),
            token=token,
            path=path,
            at=datetime.now(UTC),
        )

    def _send_json(
        self, status: int, answer: Answer, extra: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(answer).encode()
        self._send(status, data, "application/json; charset=utf-8", extra)

    def _send(
        self,
        status: int,
        data: bytes,
        content_type: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return None


def _flat(parsed: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
