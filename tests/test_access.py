"""Who is an admin: BOT_ADMINS, and the Slack user group read through the stand-in."""

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import MEMBERS_TTL_SECONDS, Admins
from bot.config import Settings
from bot.standins.slack_api import SlackApiStandIn

TOKEN = "xoxb-access-test"
GROUP = "SONCALL01"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slack() -> Iterator[SlackApiStandIn]:
    with SlackApiStandIn(token=TOKEN, usergroups={GROUP: ["UGROUPIE"]}) as standin:
        yield standin


def admins(slack: SlackApiStandIn, clock: Ticks, **settings: object) -> Admins:
    values: dict[str, object] = {"bot_admins": ["ULISTED"], **settings}
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url, timeout=5)
    return Admins(Settings(**values), client, clock=clock)


async def test_bot_admins_and_group_members_are_admins(slack: SlackApiStandIn) -> None:
    """Listed users need no Slack call; the group is read once and cached."""
    clock = Ticks()
    check = admins(slack, clock, admin_usergroup=GROUP)

    allowed = [await check.allows(user) for user in ("ULISTED", "UGROUPIE", "UOTHER")]
    again = await check.allows("UGROUPIE")

    assert (allowed, again) == ([True, True, False], True)
    (call,) = slack.calls_to("usergroups.users.list")
    assert call.params["usergroup"] == GROUP


async def test_a_member_removed_from_the_group_loses_access_after_the_ttl(
    slack: SlackApiStandIn,
) -> None:
    """Within the TTL the cached list holds; past it Slack is asked again."""
    clock = Ticks()
    check = admins(slack, clock, admin_usergroup=GROUP)
    assert await check.allows("UGROUPIE")

    slack.usergroups[GROUP] = []
    clock.now += MEMBERS_TTL_SECONDS - 1
    cached = await check.allows("UGROUPIE")
    clock.now += 2
    fresh = await check.allows("UGROUPIE")

    assert (cached, fresh) == (True, False)
    assert len(slack.calls_to("usergroups.users.list")) == 2


async def test_an_unreadable_group_grants_nothing(slack: SlackApiStandIn) -> None:
    """A group Slack does not know leaves only BOT_ADMINS, and is asked again."""
    clock = Ticks()
    check = admins(slack, clock, admin_usergroup="SMISSING1")

    first = await check.allows("UGROUPIE")
    listed = await check.allows("ULISTED")
    second = await check.allows("UGROUPIE")

    assert (first, listed, second) == (False, True, False)
    assert len(slack.calls_to("usergroups.users.list")) == 2


async def test_without_a_group_slack_is_never_asked(slack: SlackApiStandIn) -> None:
    """No ADMIN_USERGROUP: only BOT_ADMINS, no Slack call."""
    check = admins(slack, Ticks())

    assert [await check.allows(u) for u in ("ULISTED", "UGROUPIE", "")] == [
        True,
        False,
        False,
    ]
    assert slack.calls_to("usergroups.users.list") == []


@pytest.mark.parametrize(
    "value", ["oncall", "@oncall", "s0123", "S"], ids=["name", "handle", "lower", "S"]
)
def test_admin_usergroup_must_be_an_id(value: str) -> None:
    """A handle instead of an ID is refused at start-up, naming the setting."""
    with pytest.raises(ValidationError) as caught:
        Settings(admin_usergroup=value)

    assert (
        f"ADMIN_USERGROUP must be a user group ID such as S0123ABCD but got {value!r}"
        in str(caught.value)
    )
