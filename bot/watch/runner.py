"""Running the watcher: once, on a schedule as its own process, or inside `serve`."""

import asyncio
import contextlib
import logging
import signal
import sys
import time

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import ConfigError
from bot.services import Services, build_services
from bot.watch.watcher import Watcher, slack_client

log = logging.getLogger(__name__)


async def run_watch(settings: Settings, once: bool = False) -> int:
    """Evaluate every WATCH_INTERVAL, or once; 2 when the settings cannot work."""
    if settings.slack_bot_token is None:
        print("watch: SLACK_BOT_TOKEN must be set to post alerts", file=sys.stderr)
        return 2
    services = build_services(settings)
    client = slack_client(
        settings.slack_bot_token.get_secret_value(), settings.slack_api_url
    )
    try:
        watcher = Watcher(services, client)
    except ConfigError as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return 2

    try:
        if once:
            # Cron runs --once every few minutes, so --once also posts the digest.
            if await watcher.evaluate() is not None:
                await watcher.send_digest()
        else:
            await until_terminated(watcher, settings.watch_interval)
    finally:
        await watcher.close()
        await services.close()
    return 0


async def until_terminated(watcher: Watcher, interval: float) -> None:
    """Watch until SIGTERM arrives (a dyno or a unit stopping).

    The evaluation under way is let finish, so that no post is left unsaved, and
    the caller then gives the lease up: another process takes over at its next
    interval instead of waiting for the lease to lapse.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await watch_forever(watcher, interval, stop)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    log.info("watch stopped", extra={"signal": "SIGTERM"})


async def watch_forever(
    watcher: Watcher, interval: float, stop: asyncio.Event | None = None
) -> None:
    """Evaluate, then wait out the rest of the interval, until stopped or cancelled."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        started = time.monotonic()
        try:
            if await watcher.evaluate() is not None:
                await watcher.send_digest()
        except Exception:
            # One failed evaluation (a database restart, a bug on odd data) must
            # not end the watch; the next interval tries again.
            log.exception("watch evaluation failed")
        rest = max(0.0, interval - (time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rest)


def start_in_background(
    client: AsyncWebClient, services: Services, stop: asyncio.Event | None = None
) -> asyncio.Task[None]:
    """The watch as a task of the running `serve` loop (WATCH_IN_SERVE), until
    `stop` is set or the task is cancelled; either way the lease is given up."""
    watcher = Watcher(services, client)

    async def run() -> None:
        try:
            await watch_forever(watcher, services.settings.watch_interval, stop)
        finally:
            await watcher.close()

    return asyncio.create_task(run(), name="watch")
