"""Running the watcher: once, on a schedule as its own process, or inside `serve`."""

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import ConfigError
from bot.services import Services, build_services
from bot.watch.watcher import Watcher, slack_client

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


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
            # Run from cron every few minutes, --once is also what posts the digest.
            if await watcher.evaluate() is not None:
                await watcher.send_digest()
        else:
            await until_terminated(watch_forever(watcher, settings.watch_interval))
    finally:
        await watcher.close()
        await services.close()
    return 0


async def until_terminated(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends or SIGTERM arrives (a dyno or a unit stopping).

    Stopping this way lets the caller give the lease up, so that another process
    takes over at its next interval instead of waiting for the lease to lapse.
    """
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we were cancelled ourselves (Ctrl-C), not by SIGTERM
        log.info("watch stopped", extra={"signal": "SIGTERM"})
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def watch_forever(
    watcher: Watcher,
    interval: float,
    sleep: Sleep = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Evaluate, then wait out the rest of the interval, until cancelled."""
    while True:
        started = monotonic()
        try:
            if await watcher.evaluate() is not None:
                await watcher.send_digest()
        except Exception:
            # One failed evaluation (a database restart, a bug on odd data) must
            # not end the watch; the next interval tries again.
            log.exception("watch evaluation failed")
        await sleep(max(0.0, interval - (monotonic() - started)))


def start_in_background(
    client: AsyncWebClient, services: Services
) -> asyncio.Task[None]:
    """The watch as a task of the running `serve` loop (WATCH_IN_SERVE)."""
    watcher = Watcher(services, client)

    async def run() -> None:
        try:
            await watch_forever(watcher, services.settings.watch_interval)
        finally:
            await watcher.close()

    return asyncio.create_task(run(), name="watch")
