"""`usage-bot demo`: the tour in a terminal, and `--slack` serving the stand-ins."""

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from bot.standins.slack_api import SlackApiStandIn
from tests.slackbot import BOT_TOKEN, SIGNING_SECRET, RunningBot


def demo_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **extra}


async def test_demo_tour_shows_the_incident(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--out", str(tmp_path),
        env=demo_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)

    text = out.decode()
    assert process.returncode == 0
    assert "$ usage-bot coverage opus 1h" in text
    assert "likely-unauthorized" in text
    assert "gateway-missing-events" in text
    assert "203.0.113.77" in text
    assert "1 IP calls the service from outside the expected ingress ranges" in text
    charts = sorted(await asyncio.to_thread(os.listdir, tmp_path))
    assert charts == [
        "coverage-all-48h-1.png",
        "coverage-opus-1h-1.png",
        "usage-opus-48h-1.png",
    ]


async def test_demo_slack_serves_the_stand_ins() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with SlackApiStandIn(token=BOT_TOKEN) as slack:
        env = demo_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            PORT=str(port),
            BOT_ADMINS="UADMIN",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "demo", "--slack", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/slack/events"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(600):
                    try:
                        await http.post(url, content=b"")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                bot = RunningBot(url, slack, None, http)  # type: ignore[arg-type]
                await bot.command("coverage", "opus 1h")
                (post,) = await slack.wait_for_async("chat.postMessage", timeout=30)
        finally:
            process.terminate()
            await process.wait()

    assert post.params["text"].startswith(":rotating_light: *claude-large*: ")
    assert "(likely-unauthorized)" in post.params["text"]


@pytest.mark.parametrize("missing", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"])
async def test_demo_slack_without_tokens_says_what_is_missing(missing: str) -> None:
    env = demo_env(SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s")
    del env[missing]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--slack", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 2
    assert (
        err.decode()
        .strip()
        .endswith(
            "demo --slack: SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must both be set"
        )
    )
