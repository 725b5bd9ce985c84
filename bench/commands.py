"""Round trips and wall time of `/usage` and `/coverage`, and the Slack ack time.

Run by hand with `.venv/bin/python bench/commands.py`; it is not part of CI. It
loads the demo's 48 hours into the stand-ins on 127.0.0.1 and adds a delay to
every backend request, as a real network would, then measures side by side:

1. `/usage all 48h`: our one GetMetricData request against the manual way, one
   GetMetricStatistics call per model and metric, in sequence.
2. `/coverage all 48h`: both sources at once against one after the other, with
   and without the added delay, and with the catalog padded to 200 models.
3. The ack time of 50 slash commands sent at once to the running Bolt app.
"""

import asyncio
import os
import socket
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.catalog import Catalog
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


async def coverage_time(
    stack: Stack, services: Services, sequential: bool
) -> tuple[float, int]:
    """Wall time of one `/coverage all 48h`, and its requests that ran in sequence."""
    request = parse_coverage("all 48h", services.settings)
    stack.cloudwatch.timeline.clear()
    stack.tinybird.requests.clear()
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
    elapsed = time.perf_counter() - started

    spans = [(begun, ended) for _, begun, ended in stack.cloudwatch.timeline]
    spans += [(r.received, r.answered) for r in stack.tinybird.requests]
    return elapsed, longest_chain(spans)


def longest_chain(spans: list[tuple[float, float]]) -> int:
    """The most requests of which each began after the one before had ended.

    That is the number of round trips a command waits for, one after the other,
    whatever else the machine is busy with.
    """
    ordered = sorted(spans)
    chain = [1] * len(ordered)
    for i, (begun, _) in enumerate(ordered):
        for j in range(i):
            if ordered[j][1] <= begun:
                chain[i] = max(chain[i], chain[j] + 1)
    return max(chain, default=0)


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


def big_catalog(catalog: Catalog, size: int = 200) -> Catalog:
    """The catalog padded with made-up models, to show the cost does not grow."""
    template = catalog.models[0]
    extra = [
        template.model_copy(
            update={
                "name": f"bench-model-{index}",
                "aliases": [],
                "provider_model_ids": [f"bench.model-{index}-v1:0"],
            }
        )
        for index in range(size - len(catalog.models))
    ]
    return Catalog(models=[*catalog.models, *extra])


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

        big = settings.model_copy(update={"catalog": big_catalog(settings.catalog)})
        setups = [
            ("concurrent (usage-bot)", services, False),
            ("concurrent (usage-bot)", stack.services(big), False),
            ("sequential", services, True),
        ]
        # Runs with and without the delay alternate, and the best of five counts:
        # on a shared machine, other load only ever adds time. The chain of
        # requests in sequence, with the delay, is read from the stand-ins'
        # clocks: it does not depend on the load.
        runs: dict[tuple[float, int], list[float]] = defaultdict(list)
        chains: dict[int, set[int]] = defaultdict(set)
        for _, setup, sequential in setups:
            # The first call also creates boto3's client and its connections.
            await coverage_time(stack, setup, sequential)
        for _ in range(5):
            for delay in (0.0, DELAY):
                stack.cloudwatch.delay_seconds = delay
                stack.tinybird.latency = delay
                for index, (_, setup, sequential) in enumerate(setups):
                    took, chain = await coverage_time(stack, setup, sequential)
                    runs[(delay, index)].append(took)
                    if delay:
                        # Without a delay, a quick answer can fall between two
                        # requests it does not wait for and look like a link.
                        chains[index].add(chain)
        figures = {key: min(times) for key, times in runs.items()}
        print(
            row(
                "/coverage all 48h",
                "models",
                "requests in sequence",
                "no delay",
                f"{DELAY * 1000:.0f} ms a request",
                "added",
            )
        )
        print(row("---", "---", "---", "---", "---", "---"))
        for index, (name, setup, _) in enumerate(setups):
            plain, slow = figures[(0.0, index)], figures[(DELAY, index)]
            print(
                row(
                    name,
                    len(setup.settings.catalog.models),
                    "/".join(str(c) for c in sorted(chains[index])),
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
