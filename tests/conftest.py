"""Fixtures shared by the whole suite: a clean environment and the stand-ins."""

from collections.abc import Iterator

import pytest

from bot.config import Settings
from bot.standins.cloudwatch import CloudWatchStandin

pytest_plugins = [
    "tests.fixtures_slack",
    "tests.fixtures_tinybird",
    "tests.fixtures_pg",
    "tests.fixtures_ssh",
]

# Every variable the bot reads, so a developer's shell cannot leak into a test.
_BOT_ENV = [name.upper() for name in Settings.model_fields] + [
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CLOUDWATCH",
    "AWS_SESSION_TOKEN",
]
# A closed port on loopback: a test that forgets to point a client somewhere fails
# at once instead of reaching a real service.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _BOT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL", NOWHERE)
    monkeypatch.setenv("TB_HOST", NOWHERE)
    monkeypatch.setenv("SLACK_API_URL", NOWHERE + "/api/")
    monkeypatch.setenv("DATABASE_URL", "sqlite://")


@pytest.fixture(scope="session")
def cloudwatch_server() -> Iterator[CloudWatchStandin]:
    with CloudWatchStandin() as server:
        yield server


@pytest.fixture
def cloudwatch(
    cloudwatch_server: CloudWatchStandin, monkeypatch: pytest.MonkeyPatch
) -> CloudWatchStandin:
    """moto's CloudWatch, emptied, with boto3's standard endpoint variable set."""
    cloudwatch_server.reset()
    cloudwatch_server.delay_seconds = 0.0
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloudwatch_server.url)
    return cloudwatch_server
