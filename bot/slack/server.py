"""Serving the Slack app: HTTP on PORT at /slack/events, or Socket Mode."""

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.commands.charts import draw_in_processes, stop_drawing_processes
from bot.config import Settings
from bot.services import Services, build_services
from bot.slack.app import SLACK_TIMEOUT_SECONDS, build_app
from bot.watch.runner import start_in_background

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# How long a stopping server waits for the watcher's evaluation under way.
WATCH_STOP_SECONDS = 20.0


@contextlib.asynccontextmanager
async def shared_session(app: AsyncApp) -> AsyncIterator[None]:
    """One keep-alive HTTP session for every Web API call the app makes.

    Without one, slack_sdk opens and closes a session, so a new TCP and TLS
    connection, for each call: four for an answer with a chart.
    """
    timeout = aiohttp.ClientTimeout(total=SLACK_TIMEOUT_SECONDS)
    session = aiohttp.ClientSession(timeout=timeout)
    # Bolt hands this session to the client it makes for each request.
    app.client.session = session
    try:
        yield
    finally:
        app.client.session = None
        await session.close()


async def start_http(app: AsyncApp, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen for Slack's requests; port 0 picks a free one, which is returned."""
    sock = socket.create_server((host, port))
    bound = sock.getsockname()[1]
    web_app = app.web_app(path=EVENTS_PATH)

    async def session_while_serving(_: web.Application) -> AsyncIterator[None]:
        async with shared_session(app):
            yield

    web_app.cleanup_ctx.append(session_while_serving)
    runner = web.AppRunner(web_app)
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
    """Run until SIGTERM or cancelled: Socket Mode when SLACK_APP_TOKEN is set,
    else HTTP.

    With WATCH_IN_SERVE the watcher runs as a task of the same loop, sharing the
    app's Slack client and the services.
    """
    services = services or build_services(settings)
    app = app or build_app(settings, services)
    draw_in_processes()
    # Everything loaded so far (Bolt, botocore's models, SQLAlchemy) lives as long
    # as the process. Left to the collector, each full collection walks it all and
    # stalled the event loop for over 100 ms, acks included.
    gc.freeze()
    stop = asyncio.Event()
    watch = (
        start_in_background(app.client, services, stop)
        if settings.watch_in_serve
        else None
    )
    try:
        with stop_on_sigterm(stop):
            if settings.slack_app_token is not None:
                await _serve_socket_mode(app, settings.slack_app_token, stop)
            else:
                await _serve_http(app, host, settings.port, stop)
    finally:
        if watch is not None:
            await stop_watch(watch, stop)
        stop_drawing_processes()
        gc.unfreeze()
        await services.close()
    log.info("serve stopped", extra={"signal": "SIGTERM"})


async def _serve_http(app: AsyncApp, host: str, port: int, stop: asyncio.Event) -> None:
    runner, _ = await start_http(app, host, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _serve_socket_mode(
    app: AsyncApp, app_token: SecretStr, stop: asyncio.Event
) -> None:
    handler = AsyncSocketModeHandler(app, app_token.get_secret_value())
    async with shared_session(app):
        try:
            # Bolt's Socket Mode handler carries no type hints.
            await handler.connect_async()  # type: ignore[no-untyped-call]
            await stop.wait()
        finally:
            # Cancelled or not, the WebSocket and its tasks must close.
            await handler.close_async()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def stop_on_sigterm(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM (a dyno or a unit stopping) sets `stop`, so that serve() ends
    through its clean-up: connections closed, the watcher's lease given up."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):
        # Signals reach only the main thread's loop; tests serve in others.
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def stop_watch(watch: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Let an evaluation under way finish (its posts saved), then the task ends."""
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(watch), WATCH_STOP_SECONDS)
    except TimeoutError:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
