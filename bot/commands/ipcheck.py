"""`/ipcheck`: who calls the service, from its journal, and who does so directly."""

from dataclasses import dataclass
from datetime import datetime

from bot.analysis.ingress import ingress_networks
from bot.analysis.ipcheck import (
    IpcheckReport,
    ip_activity_series,
    parse_ip_argument,
    summarise_ips,
)
from bot.commands.args import split_words
from bot.config import Settings
from bot.errors import BotError, InputError, echo
from bot.services import Services
from bot.sources.records import SourceFailure
from bot.sources.ssh import QueryKind, read_journal_from_settings
from bot.windows import Window, looks_like_window, resolve_window

DEFAULT_IPCHECK_WINDOW = "1h"
# Slack and terminals alike: beyond this many rows, nobody reads on.
MAX_IPS = 25


@dataclass(frozen=True)
class IpcheckRequest:
    ip: str | None
    window: Window


def parse_ipcheck(
    text: str, settings: Settings, now: datetime | None = None
) -> IpcheckRequest:
    """`[IP] [WINDOW]` in either order; the IP is checked by `ipaddress`."""
    ingress_networks(settings.ingress_cidrs)  # a bad CIDR list fails here, not later
    ip: str | None = None
    window: str | None = None
    for word in split_words(text):
        if looks_like_window(word) and window is None:
            window = word
        elif ip is None:
            ip = parse_ip_argument(word)
        else:
            raise InputError(f"unexpected argument {echo(word)}")
    return IpcheckRequest(ip, resolve_window(window or DEFAULT_IPCHECK_WINDOW, now))


async def run_ipcheck(request: IpcheckRequest, services: Services) -> IpcheckReport:
    settings = services.settings
    window = request.window
    try:
        result = await read_journal_from_settings(
            settings, window.start, window.end, QueryKind.IPS
        )
    except BotError as exc:
        return IpcheckReport(
            window, request.ip, [], [], [], [SourceFailure("journal", str(exc))]
        )

    networks = ingress_networks(settings.ingress_cidrs)
    summaries = summarise_ips(result.tally.ips, networks)
    if request.ip is not None:
        summaries = [s for s in summaries if s.ip == request.ip]
    series = (
        ip_activity_series(result.tally.ips, request.ip, window)
        if request.ip is not None
        else []
    )
    return IpcheckReport(
        window=window,
        ip=request.ip,
        ips=summaries,
        series=series,
        hosts=result.hosts,
        errors=[SourceFailure(e.source, e.message) for e in result.errors],
    )
