"""Round trips and wall time of `/usage` and `/coverage`, and the Slack ack time.

Run by hand with `.venv/bin/python bench/commands.py`; it is not part of CI. It
loads the demo's 48 hours into the stand-ins on 127.0.0.1 and adds a delay to
every backend request, as a real network would, then measures side by side:

1. `/usage all 48h`: our one GetMetricData request against the manual way, one
   GetMetricStatistics call per model and metric, in sequence.
2. `/coverage all 48h`: both sources at once against one after the other, with
   and without the added delay, and with the catalog padded to 200 models.
3. The ack time of 50 slash commands sent at once, in three bursts, to
   `usage-bot serve` running in its own process.
"""

import asyncio
import json
import os
import socket
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
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
BURSTS = 3
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
    """`usage-bot serve` in its own process, as deployed; the stand-ins stay here.

    The load comes from a third process (`bench/ack_load.py`), so that neither the
    stand-ins' work nor this process's garbage collector is timed as the bot's.
    """
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
                # The first command also verifies the token: answered, not timed.
                bot = RunningBot(url, slack, None, http)  # type: ignore[arg-type]
                await bot.command("usage", ACK_TEXT, response_id="first")
                await slack.wait_for_async("chat.postMessage", 1, 60)

            times: list[float] = []
            for burst in range(1, BURSTS + 1):
                times += await ack_burst(port, slack.response_url(f"b{burst}"))
                # Let the burst's answers go out before the next one arrives.
                posted = 1 + burst * CONCURRENT_COMMANDS
                await slack.wait_for_async("chat.postMessage", posted, 120)
            return times
        finally:
            server.terminate()
            await server.wait()


async def ack_burst(port: int, response_url: str) -> list[float]:
    """CONCURRENT_COMMANDS slash commands at once, from a process of their own."""
    load = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("ack_load.py")), str(port),
        str(CONCURRENT_COMMANDS), ACK_TEXT, SIGNING_SECRET, response_url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await load.communicate()
    if load.returncode:
        raise RuntimeError(f"bench/ack_load.py exited with {load.returncode}")
    return [float(t) for t in json.loads(out)]


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

        # Best of three each: the first call also creates boto3's client and
        # connection, and the machine is shared.
        ours, by_hand = {}, {}
        for delay in (0.0, DELAY):
            stack.cloudwatch.delay_seconds = delay
            ours[delay] = min([await usage_ours(stack, services) for _ in range(3)],
                              key=lambda figures: figures[1])  # fmt: skip
            by_hand[delay] = min(
                [await asyncio.to_thread(usage_by_hand, stack, services)
                 for _ in range(3)],
                key=lambda figures: figures[1],
            )  # fmt: skip
        print(
            row(
                "/usage all 48h",
                "CloudWatch requests",
                "no delay",
                f"{DELAY * 1000:.0f} ms a request",
                "invocations",
            )
        )
        print(row("---", "---", "---", "---", "---"))
        for name, figures in (
            ("usage-bot (ListMetrics, GetMetricData)", ours),
            ("by hand (GetMetricStatistics, sequential)", by_hand),
        ):
            plain, slow = figures[0.0], figures[DELAY]
            print(
                row(
                    name,
                    slow[0],
                    f"{plain[1]:.2f} s",
                    f"{slow[1]:.2f} s",
                    f"{slow[2]:,}",
                )
            )
        print(
            f"speed-up: {by_hand[DELAY][1] / ours[DELAY][1]:.1f}x with the delay; "
            f"the manual way misses {ours[DELAY][2] - by_hand[DELAY][2]:,} calls to "
            "models the catalog does not know\n"
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
            row(
                f"{BURSTS} x {CONCURRENT_COMMANDS} concurrent `/usage {ACK_TEXT}`",
                "p50 ack",
                "p99 ack",
                "max",
            )
        )
        print(row("---", "---", "---", "---"))
        print(row("signed HTTP to `usage-bot serve`", f"{p50 * 1000:.0f} ms",
                  f"{p99 * 1000:.0f} ms", f"{times[-1] * 1000:.0f} ms"))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
