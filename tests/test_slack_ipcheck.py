"""`/ipcheck` and `/coverage logs` in Slack: who may ask, what is logged and said."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.standins.slack_api import SlackApiStandIn
from bot.standins.ssh import SshStandin, write_journal
from bot.standins.tinybird import TinybirdStandIn
from tests.slackbot import ADMIN, BOT_TOKEN, CHANNEL, RunningBot, running_bot
from tests.test_service_logs import ATTACKER, UNIT, journal

INTRUDER = "UINTRUDER"


@pytest.fixture
def slack() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(token=BOT_TOKEN) as standin:
        yield standin


@pytest.fixture
async def bot(
    tmp_path: Path, slack: SlackApiStandIn, tinybird: TinybirdStandIn
) -> AsyncIterator[RunningBot]:
    path = write_journal(tmp_path / "journal.log", journal())
    async with (
        SshStandin(tmp_path / "ssh", {UNIT: path}) as host,
        running_bot(
            slack,
            journal_unit=UNIT,
            tb_host=tinybird.url,
            tb_token=tinybird.token,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            **host.settings_values(),
        ) as running,
    ):
        yield running


def cells(blocks: list[dict]) -> list[list[str]]:
    (table,) = [b for b in blocks if b["type"] == "table"]
    return [[cell["text"] for cell in row] for row in table["rows"]]


async def test_ipcheck_is_refused_to_non_admins_and_audited(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    response = await bot.command("ipcheck", "1h", user=INTRUDER)

    assert response.json() == {
        "response_type": "ephemeral",
        "text": "Only the bot's admins (BOT_ADMINS) can do this; the attempt was "
        "logged.",
    }
    store = await bot.services.store()
    (entry,) = await store.audit_entries()
    assert (entry.actor, entry.action, entry.target, entry.outcome) == (
        INTRUDER,
        "/ipcheck",
        "1h",
        "denied",
    )
    assert slack.calls_to("chat.postMessage") == []


async def test_ipcheck_for_an_admin_names_the_attacker_first(
    bot: RunningBot, slack: SlackApiStandIn
) -> None:
    await bot.command("ipcheck", "1h")

    (post,) = await slack.wait_for_async("chat.postMessage")
    rows = cells(post.params["blocks"])
    assert rows[1][:3] == [ATTACKER, "30", "NO"]
    assert rows[1][4] == "pk7Q (30)"
    assert rows[-1][:2] == ["total", "60"]
    store = await bot.services.store()
    (entry,) = await store.audit_entries()
    assert (entry.actor, entry.outcome) == (ADMIN, "allowed")
    assert post.params["channel"] == CHANNEL


async def test_coverage_logs_in_slack(
    bot: RunningBot, slack: SlackApiStandIn, tinybird: TinybirdStandIn
) -> None:
    """The gateway logged nothing here: every model is missing events."""
    await bot.command("coverage", "logs 1h")

    (post,) = await slack.wait_for_async("chat.postMessage")
    rows = cells(post.params["blocks"])
    assert rows[1] == [
        "claude-large", "50", "0", "0.0%", "290.0k", "0", "gateway-missing-events",
    ]  # fmt: skip
    text = str(post.params["blocks"])
    assert (
        "ingestion is failing, or calls reach the service without the gateway" in text
    )
