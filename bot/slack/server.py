"""Serving the Slack app: HTTP on PORT at /slack/events, or Socket Mode."""

import asyncio
import contextlib
import logging
import socket

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.config import Settings
from bot.services import Services, build_services
from bot.slack.app import build_app
from bot.watch.runner import start_in_background

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


async def start_http(app: AsyncApp, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen for Slack's requests; port 0 picks a free one, which is returned."""
    sock = socket.create_server((host, port))
    bound = sock.getsockname()[1]
    runner = web.AppRunner(app.web_app(path=EVENTS_PATH))
    await runner.setup()
    await web.SockSite(runner, sock).start()
    log.info("listening", extra={"host": host, "port": bound, "path": EVENTS_PATH})
    return runner, int(bound)


async def serve(
    settings: Settings,
    app: AsyncApp | None = None,
    services: Services | None = None,
    host: str = "0.0.0.0",  # noqa: S104
) -> None:
    """Run until cancelled: Socket Mode when SLACK_APP_TOKEN is set, else HTTP.

    With WATCH_IN_SERVE the watcher runs as a task of the same loop, sharing the
    app's Slack client and the services.
    """
    services = services or build_services(settings)
    app = app or build_app(settings, services)
    watch = (
        start_in_background(app.client, services) if settings.watch_in_serve else None
    )
    try:
        if settings.slack_app_token is not None:
            handler = AsyncSocketModeHandler(
                app, settings.slack_app_token.get_secret_value()
            )
            # Bolt's Socket Mode handler carries no type hints.
            await handler.start_async()  # type: ignore[no-untyped-call]
            return

        runner, _ = await start_http(app, host, settings.port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await services.close()
