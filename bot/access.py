"""Who may run the security commands: the Slack user IDs in BOT_ADMINS."""

from bot.config import Settings


def is_admin(user: str, settings: Settings) -> bool:
    """Whether Slack user ID `user` is one of BOT_ADMINS."""
    return user in settings.bot_admins
