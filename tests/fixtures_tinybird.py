"""Fixtures: the Tinybird stand-in over real HTTP, and a client that talks to it."""

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from bot.sources.tinybird import TinybirdClient
from bot.standins.tinybird import TinybirdStandIn


class RecordedSleeps(list[float]):
    """An injected `sleep` that notes each wait instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="session")
def tinybird_server() -> Iterator[TinybirdStandIn]:
    """One stand-in per test session: chDB allows one embedded server per process."""
    with TinybirdStandIn() as standin:
        yield standin


@pytest.fixture
def tinybird(tinybird_server: TinybirdStandIn) -> Iterator[TinybirdStandIn]:
    """The shared stand-in, emptied and healthy for each test."""
    tinybird_server.reset()
    tinybird_server.quote_64bit = True
    yield tinybird_server
    tinybird_server.reset()


@pytest.fixture
def tinybird_sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
async def tinybird_client(
    tinybird: TinybirdStandIn, tinybird_sleeps: RecordedSleeps
) -> AsyncIterator[TinybirdClient]:
    """A real client for the stand-in, with a short timeout and recorded sleeps."""
    client = TinybirdClient(
        tinybird.url, SecretStr(tinybird.token), timeout=2.0, sleep=tinybird_sleeps
    )
    async with client:
        yield client
