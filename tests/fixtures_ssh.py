"""A known journal and SSH stand-ins serving it, for the journal collector's tests."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.sources.ssh import JournalTarget, SshOptions
from bot.standins.ssh import (
    FakeFile,
    SshStandin,
    format_ip_log,
    format_other,
    format_token_usage,
    write_journal,
)

UNIT = "text-pollinations.service"
T0 = datetime(2026, 12, 3, 21, 0, 0, tzinfo=UTC)
SONNET = "anthropic.claude-sonnet-4-v1:0"
HAIKU = "anthropic.claude-3-5-haiku-v1:0"
ENV_FILE = "/opt/text/.env"
ENV_MTIME = int((T0 + timedelta(minutes=30)).timestamp())


def at(minutes: int) -> datetime:
    """A time `minutes` after T0."""
    return T0 + timedelta(minutes=minutes)


def known_journal() -> list[str]:
    """Lines whose tallies the tests know: most in 21:00-21:50, a few outside."""
    peer = "::ffff:172.69.59.125"
    return [
        format_token_usage(at(-5), SONNET, 999, 999),
        format_other(at(0), "server listening on :16385"),
        format_token_usage(at(1), SONNET, 100, 20),
        format_ip_log(at(1), peer, "/v1/chat/completions", "openai", "sk_abcdef"),
        format_token_usage(at(2), SONNET, 300, 40),
        format_ip_log(at(2), peer, "/openai", "claude", "sk_a"),
        format_token_usage(at(3), HAIKU, 50, 5),
        format_ip_log(at(3), "203.0.113.9", "/openai", "claude", None),
        format_other(at(4), "[TOKEN-USAGE] model=broken input=lots output=3"),
        format_other(
            at(5), f"[TOKEN-USAGE] model={HAIKU} input_tokens=7 output_tokens=1"
        ),
        format_other(at(6), "[IP-LOG] [not a time] [text] IP=1.2.3.4 path=/ model=x"),
        format_ip_log(at(7), "203.0.113.9", "/openai", "claude", "none"),
        format_token_usage(at(50), SONNET, 1, 1),
        format_token_usage(at(70), SONNET, 999, 999),
    ]


def options_for(standin: SshStandin, **overrides: object) -> SshOptions:
    """Options that trust `standin` and log in with its client key."""
    values: dict[str, object] = {
        "known_hosts": standin.known_hosts_path,
        "client_key": standin.client_key_path,
        "unit": UNIT,
        "connect_timeout": 5.0,
        "command_timeout": 5.0,
    }
    values.update(overrides)
    return SshOptions(**values)  # type: ignore[arg-type]


def target_of(standin: SshStandin) -> JournalTarget:
    """The collector's target for `standin`."""
    return JournalTarget.parse(standin.target)


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    """The known journal written to disk."""
    return write_journal(tmp_path / "journal.log", known_journal())


@pytest.fixture
async def ssh_standin(tmp_path: Path, journal_file: Path) -> AsyncIterator[SshStandin]:
    """A running SSH stand-in replaying the known journal."""
    files = {ENV_FILE: FakeFile(mtime=ENV_MTIME, mode=0o600)}
    async with SshStandin(tmp_path / "a", {UNIT: journal_file}, files) as standin:
        yield standin


@pytest.fixture
async def second_standin(
    tmp_path: Path, journal_file: Path
) -> AsyncIterator[SshStandin]:
    """Another stand-in with the same journal, for tests across hosts."""
    async with SshStandin(tmp_path / "b", {UNIT: journal_file}) as standin:
        yield standin
