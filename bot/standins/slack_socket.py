"""A Socket Mode stand-in: the WebSocket that Slack pushes events and commands down.

The bot connects as it connects to Slack, through slack_sdk's Socket Mode client:
`apps.connections.open` on the Web API stand-in hands out this server's URL. A
test then sends a slash command as an envelope and reads the bot's ack back, the
way Slack would, on 127.0.0.1 and a free port.
"""

import asyncio
import itertools
import json
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web

SOCKET_PATH = "/link"


class SocketModeStandIn:
    """One WebSocket endpoint on the running event loop; use with `async with`."""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get(SOCKET_PATH, self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}{SOCKET_PATH}"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def connected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has opened its WebSocket and been greeted."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def slash_command(
        self,
        form: dict[str, str],
        timeout: float = 3.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Push a slash command; return the ack's payload, within Slack's 3 s."""
        if self._socket is None:
            raise RuntimeError("the bot has not connected")
        envelope_id = f"envelope-{next(self._ids)}"
        ack = self._acks[envelope_id] = asyncio.get_running_loop().create_future()
        envelope = {
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "payload": form,
            "accepts_response_payload": True,
        }
        await self._socket.send_str(json.dumps(envelope))
        return await asyncio.wait_for(ack, timeout)

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        hello = {"type": "hello", "num_connections": 1,
                 "connection_info": {"app_id": "A0STANDIN"}}  # fmt: skip
        await socket.send_str(json.dumps(hello))
        self._connected.set()

        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            answer = json.loads(message.data)
            waiting = self._acks.pop(answer.get("envelope_id", ""), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(answer.get("payload") or {})
        return socket
