"""Running the watcher (filled in by the watch work)."""

from bot.config import Settings


async def run_watch(settings: Settings, once: bool = False) -> int:
    """Evaluate every WATCH_INTERVAL, or once."""
    raise NotImplementedError
