"""`/coverage logs`: the service's own journal against the gateway's events."""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from bot.analysis.logs_coverage import LogsReport, compare_logs_with_gateway
from bot.commands.args import split_words
from bot.config import Settings
from bot.errors import BotError, InputError, SourceError, echo
from bot.services import Services
from bot.sources.gateway import GatewayEvents
from bot.sources.records import Counts, SourceFailure, totals_by_model
from bot.sources.ssh import HostReport, QueryKind, read_journal_from_settings
from bot.windows import Window, resolve_window

DEFAULT_LOGS_WINDOW = "10m"
# Model IDs come from the remote journal: a bounded number join the gateway query.
MAX_UNCATALOGUED = 50


@dataclass(frozen=True)
class LogsRequest:
    window: Window


def parse_logs(
    words: list[str], settings: Settings, now: datetime | None = None
) -> LogsRequest:
    """`logs [WINDOW]`: the words after `logs`."""
    if len(words) > 1:
        raise InputError(f"unexpected argument {echo(words[1])}")
    return LogsRequest(resolve_window(words[0] if words else DEFAULT_LOGS_WINDOW, now))


def is_logs_request(text: str) -> bool:
    words = split_words(text)
    return bool(words) and words[0].lower() == "logs"


async def run_logs(request: LogsRequest, services: Services) -> LogsReport:
    """Journal and gateway at once; each host and the gateway may fail alone."""
    settings = services.settings
    window = request.window
    model_ids = settings.catalog.provider_ids(settings.catalog.models)
    failures: list[SourceFailure] = []

    async def journal() -> tuple[dict[str, Counts] | None, list[HostReport]]:
        try:
            result = await read_journal_from_settings(
                settings, window.start, window.end, QueryKind.TOKENS
            )
        except BotError as exc:
            failures.append(SourceFailure("journal", str(exc)))
            return None, []
        failures.extend(SourceFailure(e.source, e.message) for e in result.errors)
        answered = [h for h in result.hosts if h.host not in _failed(result.errors)]
        return (result.models if answered else None), result.hosts

    async def gateway() -> dict[str, Counts] | None:
        if services.gateway is None:
            failures.append(SourceFailure("tinybird", "TB_TOKEN is not set"))
            return None
        try:
            return totals_by_model(await services.gateway.usage(window, model_ids))
        except SourceError as exc:
            failures.append(SourceFailure(exc.source, exc.message))
            return None

    (logs, hosts), logged = await asyncio.gather(journal(), gateway())
    if logs is not None and logged is not None and services.gateway is not None:
        await _add_uncatalogued(
            logs, logged, model_ids, services.gateway, window, failures
        )
    comparisons = compare_logs_with_gateway(
        logs, logged, settings.coverage.logs_tolerance
    )
    return LogsReport(
        window=window,
        models=comparisons,
        hosts=hosts,
        errors=failures,
        logs_known=logs is not None,
        gateway_known=logged is not None,
    )


async def _add_uncatalogued(
    logs: dict[str, Counts],
    logged: dict[str, Counts],
    model_ids: list[str],
    gateway: GatewayEvents,
    window: Window,
    failures: list[SourceFailure],
) -> None:
    """Ask the gateway about models the journal names and the catalog does not.

    Without this, such a model would read as missing from the gateway only because
    the gateway was never asked about it.
    """
    extra = sorted(logs.keys() - set(model_ids))[:MAX_UNCATALOGUED]
    if not extra:
        return
    try:
        found = totals_by_model(await gateway.usage(window, extra))
    except SourceError as exc:
        failures.append(SourceFailure(exc.source, exc.message))
        return
    logged.update(found)


def _failed(errors: list[SourceError]) -> set[str]:
    return {error.source for error in errors}
