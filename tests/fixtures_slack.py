"""The Slack Web API stand-in for the tests: one server per session, emptied per test.

Register with `pytest_plugins = ["tests.fixtures_slack"]`.
"""

from collections.abc import Iterator

import pytest

from bot.standins.slack_api import SlackApiStandIn

SLACK_TOKEN = "xoxb-standin-token"


@pytest.fixture(scope="session")
def slack_api_server() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(token=SLACK_TOKEN) as server:
        yield server


@pytest.fixture
def slack_api(
    slack_api_server: SlackApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> SlackApiStandIn:
    """The stand-in with no calls yet; the bot's settings point at it."""
    slack_api_server.reset()
    monkeypatch.setenv("SLACK_API_URL", slack_api_server.api_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    return slack_api_server
