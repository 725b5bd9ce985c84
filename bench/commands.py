"""Round trips and wall time of `/usage` and `/coverage`, and the Slack ack time.

Run by hand with `.venv/bin/python bench/commands.py`; it is not part of CI. It
loads the demo's 48 hours into the stand-ins on 127.0.0.1 and adds a delay to
every backend request, as a real network would, then measures side by side:

1. `/usage all 48h`: our one GetMetricData request against the manual way, one
   GetMetricStatistics call per model and metric, in sequence.
2. `/coverage all 48h`: both sources at once against one after the other, with
   and without the added delay.
3. The ack time of 50 slash commands sent at once to the running Bolt app.
"""

import asyncio
import os
import socket
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.commands.coverage import parse_coverage, run_coverage
from bot.commands.usage import parse_usage, run_usage
from bot.services import Services
from bot.sources.cloudwatch import METRICS, NAMESPACE
from bot.standins.slack_api import SlackApiStandIn
from bot.standins.stack import Stack
from tests.slackbot import BOT_TOKEN, SIGNING_SECRET, RunningBot

DELAY = 0.100  # seconds added to every backend request
CONCURRENT_COMMANDS = 50
ACK_TEXT = os.environ.get("ACK_TEXT", "opus 1h")


async def usage_ours(stack: Stack, services: Services) -> tuple[int, float, int]:
    stack.cloudwatch.requests = 0
    started = time.perf_counter()
    report = await run_usage(parse_usage("all 48h", services.settings), services)
    return (
        stack.cloudwatch.requests,
        time.perf_counter() - started,
        report.total.invocations,
    )


def usage_by_hand(stack: Stack, services: Services) -> tuple[int, float, int]:
    """What a person pastes: one get-metric-statistics per model and metric."""
    client = stack.cloudwatch.client()
    window = parse_usage("all 48h", services.settings).window
    model_ids = services.settings.catalog.provider_ids(services.settings.catalog.models)
    stack.cloudwatch.requests = 0
    started = time.perf_counter()
    invocations = 0
    for model_id in model_ids:
        for metric in METRICS:
            answer = client.get_metric_statistics(
                Namespace=NAMESPACE,
                MetricName=metric,
                Dimensions=[{"Name": "ModelId", "Value": model_id}],
                StartTime=window.start,
                EndTime=window.end,
                Period=window.period,
                Statistics=["Sum"],
            )
            if metric == "Invocations":
                invocations += int(sum(p["Sum"] for p in answer["Datapoints"]))
    return stack.cloudwatch.requests, time.perf_counter() - started, invocations


async def coverage_time(services: Services, sequential: bool) -> float:
    request = parse_coverage("all 48h", services.settings)
    started = time.perf_counter()
    if sequential:
        # The slow way, for comparison: one source, then the other.
        provider = services.providers["bedrock"]
        ids = services.settings.catalog.provider_ids(services.settings.catalog.models)
        active = await provider.active_model_ids(request.window)
        await provider.usage(request.window, sorted(set(ids) | set(active)))
        assert services.gateway is not None
        await services.gateway.usage(request.window, ids)
    else:
        await run_coverage(request, services)
    return time.perf_counter() - started


async def ack_times(stack: Stack) -> list[float]:
    """`usage-bot serve` in its own process, as deployed; the stand-ins stay here."""
    port = free_port()
    with SlackApiStandIn(token=BOT_TOKEN) as slack:
        env = {
            "PATH": os.environ["PATH"],
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "PORT": str(port),
            "AWS_ENDPOINT_URL": stack.cloudwatch.url,
            "AWS_ACCESS_KEY_ID": "standin",
            "AWS_SECRET_ACCESS_KEY": "standin",
            "TB_HOST": stack.tinybird.url,
            "TB_TOKEN": stack.tinybird.token,
            "DATABASE_URL": "sqlite://",
        }
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/slack/events"
            async with httpx.AsyncClient(timeout=30) as http:
                await wait_until_listening(http, url)
                bot = RunningBot(url, slack, None, http)  # type: ignore[arg-type]

                async def one(index: int) -> float:
                    started = time.perf_counter()
                    response = await bot.command(
                        "usage", "opus 1h", response_id=str(index)
                    )
                    assert response.status_code == 200, response.text
                    return time.perf_counter() - started

                await one(-1)  # the first request also verifies the token: not an ack
                times = await asyncio.gather(
                    *(one(i) for i in range(CONCURRENT_COMMANDS))
                )
                await slack.wait_for_async(
                    "chat.postMessage", CONCURRENT_COMMANDS + 1, 120
                )
                return list(times)
        finally:
            server.terminate()
            await server.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_listening(http: httpx.AsyncClient, url: str) -> None:
    for _ in range(200):
        try:
            await http.post(url, content=b"")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"usage-bot serve did not listen on {url}")


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


async def main() -> None:
    async with Stack(now=datetime.now(UTC)) as stack:
        settings = stack.settings()
        services = stack.services(settings)
        print(
            f"machine: loopback, {DELAY * 1000:.0f} ms added to every backend request\n"
        )

        stack.cloudwatch.delay_seconds = DELAY
        # Best of three: the first call also creates boto3's client and connection.
        ours = min([await usage_ours(stack, services) for _ in range(3)],
                   key=lambda figures: figures[1])  # fmt: skip
        by_hand = await asyncio.to_thread(usage_by_hand, stack, services)
        print(row("/usage all 48h", "CloudWatch requests", "wall time", "invocations"))
        print(row("---", "---", "---", "---"))
        print(
            row(
                "usage-bot (GetMetricData)", ours[0], f"{ours[1]:.2f} s", f"{ours[2]:,}"
            )
        )
        print(
            row(
                "by hand (GetMetricStatistics, sequential)",
                by_hand[0],
                f"{by_hand[1]:.2f} s",
                f"{by_hand[2]:,}",
            )
        )
        print(
            f"speed-up: {by_hand[1] / ours[1]:.1f}x; the manual way misses "
            f"{ours[2] - by_hand[2]:,} calls to models the catalog does not know\n"
        )

        figures = {}
        for delay in (0.0, DELAY):
            stack.cloudwatch.delay_seconds = delay
            stack.tinybird.latency = delay
            for sequential in (False, True):
                best = min(
                    [await coverage_time(services, sequential) for _ in range(3)]
                )
                figures[(delay, sequential)] = best
        print(
            row(
                "/coverage all 48h",
                "no delay",
                f"{DELAY * 1000:.0f} ms a request",
                "added",
            )
        )
        print(row("---", "---", "---", "---"))
        for sequential, name in (
            (False, "concurrent (usage-bot)"),
            (True, "sequential"),
        ):
            plain, slow = figures[(0.0, sequential)], figures[(DELAY, sequential)]
            print(
                row(
                    name,
                    f"{plain:.2f} s",
                    f"{slow:.2f} s",
                    f"{slow - plain:.2f} s = {(slow - plain) / DELAY:.1f} round trips",
                )
            )
        print()

        stack.cloudwatch.delay_seconds = 0.0
        stack.tinybird.latency = 0.0
        times = sorted(await ack_times(stack))
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            row(f"{CONCURRENT_COMMANDS} concurrent /usage", "p50 ack", "p99 ack", "max")
        )
        print(row("---", "---", "---", "---"))
        print(row("signed HTTP to `usage-bot serve`", f"{p50 * 1000:.0f} ms",
                  f"{p99 * 1000:.0f} ms", f"{times[-1] * 1000:.0f} ms"))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
