"""Who may run the security commands: BOT_ADMINS, and ADMIN_USERGROUP's members."""

import logging
import time
from collections.abc import Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

log = logging.getLogger(__name__)

# usergroups.users.list is a Tier 2 method (about 20 calls a minute); a minute's
# cache keeps a burst of clicks within it while a removal still takes effect soon.
MEMBERS_TTL_SECONDS = 60.0


def is_admin(user: str, settings: Settings) -> bool:
    """Whether Slack user ID `user` is one of BOT_ADMINS."""
    return user in settings.bot_admins


class Admins:
    """Decides who is an admin: BOT_ADMINS, then the Slack user group, if named.

    The group's members are read with usergroups.users.list and kept for
    `ttl` seconds. When Slack cannot say, only BOT_ADMINS are admins: a
    failure never grants access.
    """

    def __init__(
        self,
        settings: Settings,
        client: AsyncWebClient | None = None,
        *,
        ttl: float = MEMBERS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._members: frozenset[str] = frozenset()
        self._read_at: float | None = None

    async def allows(self, user: str) -> bool:
        """Whether `user` may start rotations and run the security commands."""
        if is_admin(user, self._settings):
            return True
        if not user or self._settings.admin_usergroup is None or self._client is None:
            return False
        return user in await self._group_members(self._settings.admin_usergroup)

    async def _group_members(self, usergroup: str) -> frozenset[str]:
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._ttl:
            return self._members

        assert self._client is not None
        started = time.monotonic()
        try:
            answer = await self._client.usergroups_users_list(usergroup=usergroup)
        except SlackApiError as exc:
            log.warning(
                "admin usergroup unreadable",
                extra={"usergroup": usergroup, "error": exc.response.get("error")},
            )
            return frozenset()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "admin usergroup unreadable",
                extra={"usergroup": usergroup, "error": type(exc).__name__},
            )
            return frozenset()
        self._members = frozenset(str(user) for user in answer.get("users") or [])
        self._read_at = now
        log.info(
            "admin usergroup read",
            extra={
                "usergroup": usergroup,
                "members": len(self._members),
                "ms": round((time.monotonic() - started) * 1000),
            },
        )
        return self._members
