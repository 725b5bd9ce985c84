"""The daily digest: usage, cost and coverage per model over the last 24 hours.

Posted once a day at DIGEST_AT (a local time in TIMEZONE) by whichever watcher
holds the lease; the audit log's unique request ID makes "once" hold across
processes and restarts.
"""

import asyncio
import logging
import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient

from bot.analysis.coverage import CoverageReport
from bot.analysis.usage import UsageReport
from bot.commands.coverage import CoverageRequest, run_coverage
from bot.commands.usage import UsageRequest, run_usage
from bot.errors import ConfigError
from bot.render import blocks, numbers
from bot.render.tables import Column, Table
from bot.services import Services
from bot.windows import resolve_window

log = logging.getLogger(__name__)

DIGEST_WINDOW = "24h"
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def digest_time(text: str) -> time:
    """`DIGEST_AT` as a time of day; a ConfigError names the expected form."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"DIGEST_AT must be a local time like 09:00; got {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def digest_day(now: datetime, at: time, tz: str) -> date | None:
    """The local day whose digest is due at `now`, or None before today's time."""
    local = now.astimezone(ZoneInfo(tz))
    return local.date() if local.time() >= at else None


def digest_table(usage: UsageReport, coverage: CoverageReport) -> Table:
    """One row per model that billed or logged anything, busiest cost first."""
    judged = {m.model_id: m for m in coverage.models}
    rows = []
    for row in usage.rows:
        model = judged.get(row.model_id)
        logged = model.gateway.invocations if model and model.gateway else 0
        if not row.counts.invocations and not logged:
            continue
        rows.append(
            [
                row.name or f"unknown: {row.model_id}",
                numbers.count(row.counts.invocations),
                numbers.compact(row.counts.input_tokens),
                numbers.compact(row.counts.output_tokens),
                numbers.usd(row.cost_usd),
                numbers.share(model.invocation_coverage if model else None),
                model.verdict.value if model else "n/a",
            ]
        )
    return Table(
        title=f"Daily digest: the last {DIGEST_WINDOW}",
        columns=[
            Column("model", "left"),
            Column("invocations"),
            Column("input tok"),
            Column("output tok"),
            Column("cost"),
            Column("coverage"),
            Column("verdict", "left"),
        ],
        rows=rows,
        total=[
            "total",
            numbers.count(usage.total.invocations),
            numbers.compact(usage.total.input_tokens),
            numbers.compact(usage.total.output_tokens),
            numbers.usd(usage.total_cost_usd),
            "",
            f"uncovered {numbers.usd(coverage.uncovered_cost_usd)}",
        ],
    )


async def send_digest(
    services: Services, slack: AsyncWebClient, channel: str, now: datetime
) -> str | None:
    """Post today's digest if it is due and nobody has; the message's ts, or None."""
    settings = services.settings
    if settings.digest_at is None:
        return None
    day = digest_day(now, digest_time(settings.digest_at), settings.timezone)
    if day is None:
        return None

    store = await services.store()
    claimed = await store.audit(
        at=now,
        actor="watch",
        action="digest",
        target=channel,
        outcome="posted",
        request_id=f"digest:{day.isoformat()}",
        trigger="schedule",
    )
    if not claimed:
        return None

    window = resolve_window(DIGEST_WINDOW, now)
    usage, coverage = await asyncio.gather(
        run_usage(UsageRequest(None, window, hourly=False), services),
        run_coverage(CoverageRequest(None, window, "bedrock"), services),
    )
    text, body = blocks.report_message(
        digest_table(usage, coverage),
        list(dict.fromkeys(usage.errors + coverage.errors)),
    )
    posted = await slack.chat_postMessage(channel=channel, text=text, blocks=body)
    log.info("digest posted", extra={"day": day.isoformat(), "channel": channel})
    return str(posted["ts"])
