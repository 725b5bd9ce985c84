"""ipcheck, ingress ranges and the journal-vs-gateway comparison, as pure functions."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.analysis.ingress import ingress_networks, is_expected_ingress
from bot.analysis.ipcheck import (
    ActivityPoint,
    IpcheckReport,
    IpSummary,
    ip_activity_series,
    parse_ip_argument,
    summarise_ips,
)
from bot.analysis.logs_coverage import (
    LogsComparison,
    LogsVerdict,
    compare_logs_with_gateway,
)
from bot.errors import ConfigError, InputError
from bot.render.tables import ipcheck_table
from bot.sources.journal import IpLog, tally_lines
from bot.sources.records import Counts
from bot.sources.ssh import HostReport
from bot.standins.ssh import format_ip_log
from bot.windows import Window

T0 = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
EDGE = "::ffff:172.69.59.125"
STRAY = "203.0.113.9"


def _log() -> IpLog:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    return tally_lines(
        [
            format_ip_log(at(1), EDGE, "/openai", "claude", "sk_abcdef"),
            format_ip_log(at(2), EDGE, "/openai", "openai", "sk_a"),
            format_ip_log(at(14), EDGE, "/v1/models", "claude", "none"),
            format_ip_log(at(3), STRAY, "/openai", "claude", "pk_9"),
            format_ip_log(at(40), STRAY, "/openai", "claude", None),
            format_ip_log(at(41), STRAY, "/openai", "claude", "pk_9"),
            format_ip_log(at(59), STRAY, "/openai", "mistral", "pk_9"),
            format_ip_log(at(75), STRAY, "/openai", "claude", "pk_9"),
        ]
    ).ips


def test_ips_are_summarised_busiest_first() -> None:
    """Per IP: requests, models, token prefixes, paths, first/last seen and ingress."""
    summaries = summarise_ips(_log(), ingress_networks())

    assert summaries == [
        IpSummary(
            ip=STRAY,
            requests=5,
            models=[("claude", 4), ("mistral", 1)],
            token_prefixes=[("pk_9", 4)],
            paths=[("/openai", 5)],
            first_seen=T0 + timedelta(minutes=3),
            last_seen=T0 + timedelta(minutes=75),
            expected_ingress=False,
        ),
        IpSummary(
            ip="172.69.59.125",
            requests=3,
            models=[("claude", 2), ("openai", 1)],
            token_prefixes=[("sk_a", 2), ("none", 1)],
            paths=[("/openai", 2), ("/v1/models", 1)],
            first_seen=T0 + timedelta(minutes=1),
            last_seen=T0 + timedelta(minutes=14),
            expected_ingress=True,
        ),
    ]


def test_activity_series_buckets_one_ip_per_period() -> None:
    """One IP's requests per 15-minute period of a 1h window, zeros kept, rest left."""
    window = Window(start=T0, end=T0 + timedelta(hours=1), period=900, label="1h")

    series = ip_activity_series(_log(), STRAY, window)

    assert series == [
        ActivityPoint(T0, 1),
        ActivityPoint(T0 + timedelta(minutes=15), 0),
        ActivityPoint(T0 + timedelta(minutes=30), 2),
        ActivityPoint(T0 + timedelta(minutes=45), 1),
    ]


def test_activity_series_of_unseen_ip_is_all_zeros() -> None:
    """An IP the journal never saw gives a flat series."""
    window = Window(start=T0, end=T0 + timedelta(hours=1), period=1800, label="1h")

    series = ip_activity_series(_log(), "198.51.100.1", window)

    assert [point.requests for point in series] == [0, 0]


@pytest.mark.parametrize(
    ("typed", "ip"),
    [
        (" 203.0.113.9 ", "203.0.113.9"),
        ("::ffff:172.69.59.125", "172.69.59.125"),
        ("2606:4700::1", "2606:4700::1"),
    ],
    ids=["v4-padded", "mapped", "v6"],
)
def test_ip_argument_is_normalised(typed: str, ip: str) -> None:
    """A typed IP reads as the journal shows it."""
    assert parse_ip_argument(typed) == ip


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("1.1.1.1; rm -rf /", "'1.1.1.1; rm -rf /'"),
        ("$(id)", "'$(id)'"),
        ("300.1.1.1", "'300.1.1.1'"),
        ("a" * 10_000, "10000 characters (not repeated: it may be a secret)"),
    ],
    ids=["shell-tail", "substitution", "out-of-range", "huge"],
)
def test_bad_ip_argument_is_one_clear_line(typed: str, shown: str) -> None:
    """Anything but an address is refused with the accepted form and what came."""
    with pytest.raises(InputError) as caught:
        parse_ip_argument(typed)

    assert str(caught.value) == (
        f"IP must be an IPv4 or IPv6 address like 203.0.113.9; got {shown}"
    )


@pytest.mark.parametrize(
    ("ip", "inside"),
    [
        ("172.69.59.125", True),
        ("104.16.0.1", True),
        ("2606:4700::6810:84e5", True),
        ("203.0.113.9", False),
        ("2001:db8::1", False),
    ],
    ids=["cf-v4-172", "cf-v4-104", "cf-v6", "doc-v4", "doc-v6"],
)
def test_cloudflare_ranges_are_the_default_ingress(ip: str, inside: bool) -> None:
    """Without configured CIDRs, Cloudflare's published ranges are expected."""
    assert is_expected_ingress(ip, ingress_networks()) is inside


def test_configured_cidrs_replace_the_defaults() -> None:
    """INGRESS_CIDRS replaces Cloudflare's list; a bad entry is a ConfigError."""
    networks = ingress_networks(["203.0.113.0/24"])

    assert is_expected_ingress("203.0.113.9", networks)
    assert not is_expected_ingress("172.69.59.125", networks)
    with pytest.raises(ConfigError) as caught:
        ingress_networks(["10.0.0.0/33"])
    assert str(caught.value) == (
        "INGRESS_CIDRS entries must be CIDRs like 173.245.48.0/20; got '10.0.0.0/33'"
    )


def test_logs_and_gateway_are_compared_per_model() -> None:
    """Within 5% is consistent; short is missing events; over is extra events."""
    logs = {
        "a": Counts(100, 10_000, 500),
        "b": Counts(100, 10_000, 500),
        "c": Counts(100, 10_000, 500),
        "d": Counts(100, 10_000, 500),
    }
    gateway = {
        "a": Counts(96, 10_400, 1),
        "b": Counts(94, 10_000, 500),
        "c": Counts(100, 10_600, 500),
        "e": Counts(3, 30, 3),
    }

    found = compare_logs_with_gateway(logs, gateway, tolerance=0.05)

    assert [(c.model_id, c.ratio, c.verdict) for c in found] == [
        ("a", 0.96, LogsVerdict.CONSISTENT),
        ("b", 0.94, LogsVerdict.GATEWAY_MISSING_EVENTS),
        ("c", 1.0, LogsVerdict.GATEWAY_EXTRA_EVENTS),
        ("d", 0.0, LogsVerdict.GATEWAY_MISSING_EVENTS),
        ("e", None, LogsVerdict.GATEWAY_EXTRA_EVENTS),
    ]
    assert found[3] == LogsComparison(
        "d", Counts(100, 10_000, 500), Counts(), 0.0, LogsVerdict.GATEWAY_MISSING_EVENTS
    )


def test_nothing_on_either_side_is_consistent() -> None:
    """A model with no calls in logs nor gateway is consistent."""
    found = compare_logs_with_gateway({"a": Counts()}, {})

    assert found[0].verdict is LogsVerdict.CONSISTENT


def test_ipcheck_for_one_ip_is_a_table_per_period() -> None:
    """With an IP, the answer lists its requests per period and what it asked for."""
    window = Window(start=T0, end=T0 + timedelta(hours=1), period=900, label="1h")
    networks = ingress_networks()
    summaries = [s for s in summarise_ips(_log(), networks) if s.ip == STRAY]
    series = ip_activity_series(_log(), STRAY, window)
    hosts = [HostReport("enter-services", 9, 1, 900)]
    report = IpcheckReport(window, STRAY, summaries, series, hosts)

    table = ipcheck_table(report, "UTC", limit=25)

    assert table.title == f"Requests from {STRAY} per 15 min, last 1h"
    assert table.all_rows() == [
        ["12-03 21:00", "1"],
        ["12-03 21:15", "0"],
        ["12-03 21:30", "2"],
        ["12-03 21:45", "1"],
        ["total", "4"],
    ]
    assert table.notes == [
        f"{STRAY}: OUTSIDE the expected ingress ranges; first seen 12-03 21:03, "
        "last seen 12-03 22:15.",
        "models: claude (4), mistral (1); tokens: pk_9 (4); paths: /openai (5)",
        "enter-services: 9 lines, 1 unparsed",
    ]


def test_ipcheck_for_an_unseen_ip_says_so() -> None:
    """An IP the journal never saw gets zeros and one plain sentence."""
    window = Window(start=T0, end=T0 + timedelta(hours=1), period=1800, label="1h")
    series = ip_activity_series(_log(), "198.51.100.1", window)
    report = IpcheckReport(window, "198.51.100.1", [], series, [])

    table = ipcheck_table(report, "UTC", limit=25)

    assert table.total == ["total", "0"]
    assert table.notes == ["198.51.100.1 is not in the service logs of this window."]
