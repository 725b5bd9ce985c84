"""Who calls the service: per-IP activity from the journal's `[IP-LOG]` lines."""

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.analysis.ingress import Network, is_expected_ingress
from bot.errors import InputError, echo
from bot.sources.journal import TOKEN_PREFIX_CHARS, IpActivity, IpLog
from bot.sources.records import SourceFailure
from bot.sources.ssh import HostReport
from bot.windows import Window


@dataclass(frozen=True)
class IpSummary:
    """What one IP asked for, and whether it came through the expected ingress."""

    ip: str
    requests: int
    models: list[tuple[str, int]]
    token_prefixes: list[tuple[str, int]]
    paths: list[tuple[str, int]]
    first_seen: datetime | None
    last_seen: datetime | None
    expected_ingress: bool


@dataclass(frozen=True)
class ActivityPoint:
    """Requests from one IP in the period starting at `start`."""

    start: datetime
    requests: int


def parse_ip_argument(text: str) -> str:
    """A typed IP as the journal shows it; raise `InputError` when it is not one."""
    candidate = text.strip()
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        raise InputError(
            f"IP must be an IPv4 or IPv6 address like 203.0.113.9; got {echo(text)}"
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def summarise_ips(ips: IpLog, networks: Sequence[Network]) -> list[IpSummary]:
    """One summary per IP, busiest first (ties by address)."""
    summaries = [_summary(activity, networks) for activity in ips.by_ip.values()]
    return sorted(summaries, key=lambda summary: (-summary.requests, summary.ip))


def ip_activity_series(ips: IpLog, ip: str, window: Window) -> list[ActivityPoint]:
    """Requests from `ip` per period of `window`, zeros included."""
    starts = []
    moment = window.start
    while moment < window.end:
        starts.append(moment)
        moment += timedelta(seconds=window.period)
    totals = [0] * len(starts)

    activity = ips.by_ip.get(ip)
    origin = int(window.start.timestamp())
    for minute, requests in (activity.per_minute if activity else Counter()).items():
        offset = minute * 60 - origin
        if 0 <= offset < window.seconds:
            totals[offset // window.period] += requests
    return [ActivityPoint(start, n) for start, n in zip(starts, totals, strict=True)]


def _summary(activity: IpActivity, networks: Sequence[Network]) -> IpSummary:
    prefixes: Counter[str] = Counter()
    for token, requests in activity.token_prefixes.items():
        prefixes[token[:TOKEN_PREFIX_CHARS]] += requests
    return IpSummary(
        ip=activity.ip,
        requests=activity.requests,
        models=_ranked(activity.models),
        token_prefixes=_ranked(prefixes),
        paths=_ranked(activity.paths),
        first_seen=activity.first_seen,
        last_seen=activity.last_seen,
        expected_ingress=is_expected_ingress(activity.ip, networks),
    )


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@dataclass
class IpcheckReport:
    window: Window
    ip: str | None
    ips: list[IpSummary]
    series: list[ActivityPoint]
    hosts: list[HostReport]
    errors: list[SourceFailure] = field(default_factory=list)

    @property
    def total_requests(self) -> int:
        return sum(summary.requests for summary in self.ips)

    @property
    def outside(self) -> list[IpSummary]:
        return [summary for summary in self.ips if not summary.expected_ingress]
