"""The journal parser: exact tallies from known lines, odd lines counted, not fatal."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.sources.journal import (
    CACHE_LIMIT,
    ChunkedLines,
    JournalTally,
    normalise_ip,
    tally_lines,
)
from bot.sources.records import Counts

PREFIX = "2026-12-03T21:00:05+0000 enter-services node[812]: "
MODEL = "anthropic.claude-sonnet-4-v1:0"


def test_token_usage_lines_sum_per_model() -> None:
    """Each TOKEN-USAGE line is one invocation; tokens add up per provider model ID."""
    lines = [
        f"{PREFIX}[TOKEN-USAGE] model={MODEL} input=100 output=20\n",
        f"{PREFIX}[TOKEN-USAGE] model={MODEL} input_tokens=5 output_tokens=1",
        f"{PREFIX}[TOKEN-USAGE] model=amazon.nova-micro-v1:0 input=7 output=0",
    ]

    tally = tally_lines(lines)

    assert tally.models == {
        MODEL: Counts(invocations=2, input_tokens=105, output_tokens=21),
        "amazon.nova-micro-v1:0": Counts(invocations=1, input_tokens=7),
    }
    assert (tally.lines, tally.unparsed) == (3, 0)


@pytest.mark.parametrize(
    ("message", "unparsed"),
    [
        ("server listening on :16385", 0),
        ("GET /health 200", 0),
        ("[TOKEN-USAGE] model= input=1 output=2", 1),
        ("[TOKEN-USAGE] model=m input=many output=2", 1),
        ("[TOKEN-USAGE] model=m input=-3 output=2", 1),
        ("[TOKEN-USAGE] model=m input=3", 1),
        ("[IP-LOG] no time here", 1),
        ("[IP-LOG] [yesterday] [text] IP=1.2.3.4 path=/ model=m", 1),
        ("[IP-LOG] [2026-12-03T21:00:05Z] [text] IP=999.1.1.1 path=/ model=m", 1),
        ("[IP-LOG] [2026-12-03T21:00:05Z] [text] IP=1.2.3.4 model=m", 1),
        ("[IP-LOG] [2026-12-03T21:00:05Z] [text] IP=1.2.3.4 path=/", 1),
        ("[TOKEN-USAGE] model=m input=\u00b2 output=2", 1),
        (
            "[IP-LOG] [2026-12-03T21:00:05Z] [text] IP=::ffff:1.2.3.\u00b2 "
            "path=/ model=m",
            1,
        ),
    ],
    ids=[
        "other-line",
        "access-line",
        "empty-model",
        "word-count",
        "negative-count",
        "missing-output",
        "ip-no-time",
        "ip-bad-time",
        "ip-bad-address",
        "ip-no-path",
        "ip-no-model",
        "superscript-count",
        "superscript-octet",
    ],
)
def test_odd_lines_are_counted_not_fatal(message: str, unparsed: int) -> None:
    """Lines of ours that do not parse count as unparsed; others are passed over."""
    tally = tally_lines([PREFIX + message])

    assert (tally.lines, tally.unparsed) == (1, unparsed)
    assert tally.models == {}
    assert tally.ips.by_ip == {}


def test_ip_log_lines_tally_per_ip() -> None:
    """IP-LOG lines give per-IP requests, models, paths, token prefixes and times."""
    lines = [
        f"{PREFIX}[IP-LOG] [2026-12-03T21:00:05.120Z] [text] IP=::ffff:172.69.59.125 "
        "path=/openai model=claude token=sk_abcdef",
        f"{PREFIX}[IP-LOG] [2026-12-03T21:03:00.000Z] [text] IP=::ffff:172.69.59.125 "
        "path=/openai model=openai token=none",
        f"{PREFIX}[IP-LOG] [2026-12-03T20:59:00.000Z] [text] IP=172.69.59.125 "
        "path=/v1/models model=claude",
    ]

    activity = tally_lines(lines).ips.by_ip["172.69.59.125"]

    assert activity.requests == 3
    assert activity.models == {"claude": 2, "openai": 1}
    assert activity.paths == {"/openai": 2, "/v1/models": 1}
    assert activity.token_prefixes == {"sk_a": 1, "none": 1}
    assert activity.first_seen == datetime(2026, 12, 3, 20, 59, tzinfo=UTC)
    assert activity.last_seen == datetime(2026, 12, 3, 21, 3, tzinfo=UTC)
    minute = int(datetime(2026, 12, 3, 21, 0, tzinfo=UTC).timestamp()) // 60
    assert activity.per_minute == {minute - 1: 1, minute: 1, minute + 3: 1}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("::ffff:172.69.59.125", "172.69.59.125"),
        ("203.0.113.9", "203.0.113.9"),
        ("2606:4700:0:0::1", "2606:4700::1"),
        ("not-an-ip", None),
        ("", None),
    ],
    ids=["mapped-v4", "plain-v4", "v6-compressed", "garbage", "empty"],
)
def test_peer_addresses_are_normalised(raw: str, shown: str | None) -> None:
    """IPv4-mapped IPv6 peers read as plain IPv4; garbage is None."""
    assert normalise_ip(raw) == shown


def test_tallies_merge_across_hosts() -> None:
    """Merging two hosts adds counts, lines and per-IP activity."""
    line = f"{PREFIX}[TOKEN-USAGE] model={MODEL} input=10 output=2"
    ip_line = (
        f"{PREFIX}[IP-LOG] [2026-12-03T21:00:05Z] [text] IP=1.2.3.4 path=/ model=m"
    )
    first = tally_lines([line, ip_line, f"{PREFIX}[IP-LOG] broken"])
    second = tally_lines([line, ip_line])

    first.merge(second)

    assert first.models == {MODEL: Counts(2, 20, 4)}
    assert first.ips.by_ip["1.2.3.4"].requests == 2
    assert (first.lines, first.unparsed) == (5, 1)


def test_no_entries_marker_is_noted() -> None:
    """journalctl's empty-result marker is remembered, not counted as unparsed."""
    tally = JournalTally().feed_all(["-- No entries --\n"])

    assert (tally.no_entries, tally.lines, tally.unparsed) == (True, 1, 0)


def test_caches_stay_bounded() -> None:
    """Many distinct peers and times do not grow the parser's caches without end."""
    tally = JournalTally()
    start = datetime(2026, 12, 3, tzinfo=UTC)

    for n in range(CACHE_LIMIT + 100):
        when = (start + timedelta(seconds=n)).isoformat()
        tally.feed(f"{PREFIX}[IP-LOG] [{when}] [text] IP=peer-{n} path=/ model=m")

    assert tally.unparsed == CACHE_LIMIT + 100
    assert 0 < len(tally._peers) <= CACHE_LIMIT
    assert 0 < len(tally._times) <= CACHE_LIMIT


STREAM = (
    f"{PREFIX}[TOKEN-USAGE] model={MODEL} input=100 output=20\n"
    f"{PREFIX}[IP-LOG] [2026-12-03T21:00:05Z] [text] IP=::ffff:1.2.3.4 "
    "path=/é model=m token=sk_a\n"
    f"{PREFIX}other line with ünïcode\n"
    f"{PREFIX}[TOKEN-USAGE] model={MODEL} input=5 output=1"
).encode()


def _streamed(chunks: list[bytes], max_line_bytes: int = 1024) -> JournalTally:
    tally = JournalTally()
    lines = ChunkedLines(tally, max_line_bytes)
    for chunk in chunks:
        lines.feed(chunk)
    lines.close()
    return tally


def test_stream_cut_anywhere_gives_the_same_tally() -> None:
    """Lines and UTF-8 characters cut across chunks, at every byte, read whole."""
    for cut in range(1, len(STREAM)):
        tally = _streamed([STREAM[:cut], STREAM[cut:]])

        assert tally.models == {MODEL: Counts(2, 105, 21)}, cut
        assert tally.ips.by_ip["1.2.3.4"].paths == {"/é": 1}, cut
        assert (tally.lines, tally.unparsed) == (4, 0), cut


def test_stream_in_one_byte_chunks() -> None:
    """The smallest chunks the channel could hand over still give every line."""
    tally = _streamed([STREAM[at : at + 1] for at in range(len(STREAM))])

    assert tally.models == {MODEL: Counts(2, 105, 21)}
    assert (tally.lines, tally.unparsed) == (4, 0)


def test_an_overlong_line_is_one_unparsed_line_and_the_next_reads() -> None:
    """A line past the limit is dropped as it streams, counted once, and skipped."""
    usage = f"{PREFIX}[TOKEN-USAGE] model={MODEL} input=1 output=1\n".encode()
    chunks = [usage, b"[TOKEN-USAGE] " + b"x" * 300, b"y" * 900, b"z\n" + usage]

    tally = _streamed(chunks, max_line_bytes=1000)

    assert tally.models == {MODEL: Counts(2, 2, 2)}
    assert (tally.lines, tally.unparsed) == (3, 1)


def test_fields_in_another_order_or_with_extras_still_read() -> None:
    """Beyond the usual layout, fields are found by name wherever they stand."""
    lines = [
        f"{PREFIX}[TOKEN-USAGE] model={MODEL} cached=3 input=10 output=2",
        f"{PREFIX}[TOKEN-USAGE] output_tokens=1 input_tokens=4 model={MODEL}",
        f"{PREFIX}[IP-LOG] [2026-12-03T21:00:05Z] [text] model=m path=/x "
        "IP=::ffff:1.2.3.4 token=sk_abcdef region=eu",
    ]

    tally = tally_lines(lines)

    assert tally.models == {MODEL: Counts(2, 14, 3)}
    activity = tally.ips.by_ip["1.2.3.4"]
    assert (activity.models, activity.paths, activity.token_prefixes) == (
        {"m": 1},
        {"/x": 1},
        {"sk_a": 1},
    )
    assert (tally.lines, tally.unparsed) == (3, 0)


def _odd_line(rng: random.Random) -> str:
    tag = rng.choice(
        ["[TOKEN-USAGE] ", "[IP-LOG] [2026-12-03T21:00:05.1Z] [text] ", ""]
    )
    keys = ["model", "input", "output_tokens", "IP", "path", "token", ""]
    values = ["\u00b2", "\u0663", "-1", "", "1" * 30, "::ffff:1.2.3.\u00b2", "é", "="]
    values += ["::ffff:1.2.3.4", "10", "[", "]", "\udcff", "-- No entries --"]
    fields = [
        f"{rng.choice(keys)}={rng.choice(values)}" for _ in range(rng.randrange(6))
    ]
    return PREFIX + tag + rng.choice([" ", "\t", "  "]).join(fields)


def test_arbitrary_lines_never_raise() -> None:
    """Whatever a host sends, the stream is counted, never a crash mid-collection."""
    rng = random.Random(4)
    lines = [_odd_line(rng) for _ in range(5000)]
    data = "\n".join(lines).encode("utf-8", "surrogateescape") + b"\xff\n"

    tally = _streamed([data[at : at + 777] for at in range(0, len(data), 777)])

    assert tally.lines == 5000
    assert 0 < tally.unparsed < tally.lines
