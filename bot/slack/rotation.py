"""`/rotate-checklist` and its buttons (filled in by the rotation work)."""

from slack_bolt.async_app import AsyncApp

from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Add the rotation's command and button listeners to the app."""
