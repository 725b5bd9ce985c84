"""Charts drawn by the server: in worker processes, byte for byte as in a thread."""

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.analysis.usage import summarize_usage
from bot.catalog import Catalog
from bot.commands import charts
from bot.sources.records import Counts, PeriodCounts
from bot.windows import resolve_window

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"


@pytest.fixture
def processes() -> Iterator[None]:
    charts.draw_in_processes(workers=1)
    yield
    charts.stop_drawing_processes()


async def test_the_server_draws_in_another_process(processes: None) -> None:
    """Matplotlib in the server's own process would hold the GIL the acks need."""
    drawer = await charts._draw(os.getpid)

    assert drawer != os.getpid()


async def test_a_chart_drawn_in_a_process_is_the_chart_drawn_in_a_thread() -> None:
    window = resolve_window("6h", now=NOW)
    points = [
        PeriodCounts(OPUS, window.start + timedelta(hours=h), Counts(10 * h + 1))
        for h in range(6)
    ]
    report = summarize_usage(window, "bedrock", Catalog(), [OPUS], points)
    in_thread = await charts.usage_png(report, "UTC")

    charts.draw_in_processes(workers=1)
    try:
        in_process = await charts.usage_png(report, "UTC")
    finally:
        charts.stop_drawing_processes()

    assert in_process.startswith(b"\x89PNG\r\n\x1a\n")
    assert in_process == in_thread
