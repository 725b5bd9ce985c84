"""The text service's journal lines, read one at a time and tallied as they stream.

Two kinds of line matter, each after journald's `-o short-iso` prefix:

    [TOKEN-USAGE] model=<provider model id> input=<n> output=<n>
    [IP-LOG] [<ISO time>] [text] IP=<peer> path=<p> model=<m> token=<first 4 chars>

Everything else the unit writes is passed over. Memory grows with the number of
distinct models, IPs and minutes seen, never with the number of lines.
"""

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.sources.records import Counts

USAGE_TAG = "[TOKEN-USAGE] "
IP_LOG_TAG = "[IP-LOG] "
NO_ENTRIES = "-- No entries --"
TOKEN_PREFIX_CHARS = 4

# Caches for values that repeat across lines (peers, timestamps); cleared when full
# so a long journal cannot grow them without bound.
CACHE_LIMIT = 65536
# A line longer than this is not one of ours; it is dropped and counted unparsed.
MAX_LINE_BYTES = 1024 * 1024


@dataclass
class IpActivity:
    """What one client IP asked the service for."""

    ip: str
    requests: int = 0
    models: Counter[str] = field(default_factory=Counter)
    token_prefixes: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    # Requests per minute since the Unix epoch; analysis buckets these per period.
    per_minute: Counter[int] = field(default_factory=Counter)

    def add(
        self, seen: datetime, minute: int, path: str, model: str, token: str | None
    ) -> None:
        """Count one request."""
        self.requests += 1
        self.models[model] += 1
        self.paths[path] += 1
        if token is not None:
            self.token_prefixes[token] += 1
        self.per_minute[minute] += 1
        if self.first_seen is None or seen < self.first_seen:
            self.first_seen = seen
        if self.last_seen is None or seen > self.last_seen:
            self.last_seen = seen

    def merge(self, other: "IpActivity") -> None:
        """Fold another tally of the same IP into this one."""
        self.requests += other.requests
        self.models.update(other.models)
        self.token_prefixes.update(other.token_prefixes)
        self.paths.update(other.paths)
        self.per_minute.update(other.per_minute)
        for seen in (other.first_seen, other.last_seen):
            if seen is None:
                continue
            if self.first_seen is None or seen < self.first_seen:
                self.first_seen = seen
            if self.last_seen is None or seen > self.last_seen:
                self.last_seen = seen


@dataclass
class IpLog:
    """Per-IP activity from `[IP-LOG]` lines, keyed by the normalised IP."""

    by_ip: dict[str, IpActivity] = field(default_factory=dict)

    def activity(self, ip: str) -> IpActivity:
        """The tally for `ip`, created empty on first use."""
        found = self.by_ip.get(ip)
        if found is None:
            found = self.by_ip[ip] = IpActivity(ip)
        return found

    def merge(self, other: "IpLog") -> None:
        """Fold another host's IP tallies into this one."""
        for ip, activity in other.by_ip.items():
            self.activity(ip).merge(activity)


@dataclass
class JournalTally:
    """Running totals for the lines of one journal (or several, merged)."""

    ips: IpLog = field(default_factory=IpLog)
    lines: int = 0
    unparsed: int = 0
    no_entries: bool = False
    # Per model: [invocations, input tokens, output tokens]; lists add up faster
    # than rebuilding a frozen Counts on every line.
    _usage: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _peers: dict[str, str | None] = field(default_factory=dict, repr=False)
    _times: dict[str, tuple[datetime, int] | None] = field(
        default_factory=dict, repr=False
    )

    @property
    def models(self) -> dict[str, Counts]:
        """Counts per provider model ID from the `[TOKEN-USAGE]` lines so far."""
        return {model: Counts(*sums) for model, sums in self._usage.items()}

    def feed(self, line: str) -> None:
        """Read one line of journal output (with or without its newline)."""
        self.lines += 1
        at = line.find(USAGE_TAG)
        if at >= 0:
            if not self._token_usage(line[at + len(USAGE_TAG) :]):
                self.unparsed += 1
            return

        at = line.find(IP_LOG_TAG)
        if at >= 0:
            if not self._ip_log(line[at + len(IP_LOG_TAG) :]):
                self.unparsed += 1
            return

        if line.startswith(NO_ENTRIES):
            self.no_entries = True

    def feed_lines(self, lines: list[str]) -> None:
        """`feed` for a run of lines, with the per-line lookups made once."""
        token_usage, ip_log = self._token_usage, self._ip_log
        usage_skip, ip_skip = len(USAGE_TAG), len(IP_LOG_TAG)
        unparsed = 0
        for line in lines:
            at = line.find(USAGE_TAG)
            if at >= 0:
                if not token_usage(line[at + usage_skip :]):
                    unparsed += 1
                continue
            at = line.find(IP_LOG_TAG)
            if at >= 0:
                if not ip_log(line[at + ip_skip :]):
                    unparsed += 1
                continue
            if line.startswith(NO_ENTRIES):
                self.no_entries = True
        self.lines += len(lines)
        self.unparsed += unparsed

    def feed_all(self, lines: Iterable[str]) -> "JournalTally":
        """Read every line of `lines`; returns self for chaining."""
        for line in lines:
            self.feed(line)
        return self

    def merge(self, other: "JournalTally") -> None:
        """Fold another tally (another host's) into this one."""
        for model, sums in other._usage.items():
            mine = self._usage.setdefault(model, [0, 0, 0])
            for at, value in enumerate(sums):
                mine[at] += value
        self.ips.merge(other.ips)
        self.lines += other.lines
        self.unparsed += other.unparsed
        self.no_entries = self.no_entries or other.no_entries

    def _token_usage(self, rest: str) -> bool:
        parts = rest.split()
        model: str | None
        # The usual line, `model=M input=N output=N`, read without a loop.
        if (
            len(parts) == 3
            and parts[0][:6] == "model="
            and parts[1][:6] == "input="
            and parts[2][:7] == "output="
        ):
            model = parts[0][6:]
            tokens_in = _count(parts[1][6:])
            tokens_out = _count(parts[2][7:])
        else:
            model, tokens_in, tokens_out = _token_fields(parts)
        if not model or tokens_in < 0 or tokens_out < 0:
            return False

        sums = self._usage.get(model)
        if sums is None:
            self._usage[model] = [1, tokens_in, tokens_out]
        else:
            sums[0] += 1
            sums[1] += tokens_in
            sums[2] += tokens_out
        return True

    def _ip_log(self, rest: str) -> bool:
        if not rest.startswith("["):
            return False
        close = rest.find("]")
        when = self._time(rest[1:close]) if close > 0 else None
        if when is None:
            return False

        parts = rest[close + 1 :].split()
        count = len(parts)
        path: str | None
        model: str | None
        # The usual line, `[text] IP=A path=P model=M [token=T]`, read without a loop.
        if (
            (count == 4 or (count == 5 and parts[4][:6] == "token="))
            and parts[1][:3] == "IP="
            and parts[2][:5] == "path="
            and parts[3][:6] == "model="
        ):
            raw_ip, path, model = parts[1][3:], parts[2][5:], parts[3][6:]
            token = parts[4][6:] if count == 5 else None
        else:
            fields = dict(part.split("=", 1) for part in parts if "=" in part)
            raw_ip = fields.get("IP", "")
            path, model, token = (fields.get(k) for k in ("path", "model", "token"))
        ip = self._peer(raw_ip)
        if ip is None or path is None or model is None:
            return False

        if token is not None:
            token = token[:TOKEN_PREFIX_CHARS]
        self.ips.activity(ip).add(when[0], when[1], path, model, token)
        return True

    def _peer(self, raw: str) -> str | None:
        try:
            return self._peers[raw]
        except KeyError:
            pass
        if len(self._peers) >= CACHE_LIMIT:
            self._peers.clear()
        self._peers[raw] = found = normalise_ip(raw)
        return found

    def _time(self, raw: str) -> tuple[datetime, int] | None:
        # Seconds are precise enough for first/last seen, and keying the cache on
        # them makes nearly every line a hit.
        if raw[19:20] == ".":
            tail = raw[20:]
            raw = raw[:19] + tail.lstrip("0123456789")
        try:
            return self._times[raw]
        except KeyError:
            pass
        if len(self._times) >= CACHE_LIMIT:
            self._times.clear()
        when = parse_utc(raw)
        found = None if when is None else (when, int(when.timestamp()) // 60)
        self._times[raw] = found
        return found


class ChunkedLines:
    """Bytes as they come off the wire, cut into whole lines and fed to a tally.

    Only the unfinished last line is kept between chunks. Each run of whole lines
    is decoded at once: a newline byte never falls inside a UTF-8 sequence.
    """

    def __init__(self, tally: JournalTally, max_line_bytes: int = MAX_LINE_BYTES):
        self.tally = tally
        self.max_line_bytes = max_line_bytes
        self._carry = b""
        # Inside a line already counted as too long: drop bytes up to its newline.
        self._skipping = False

    def feed(self, chunk: bytes) -> None:
        """Read the next bytes of the stream."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._hold(chunk)
            return

        head, self._carry = self._carry + chunk[: end + 1], b""
        if self._skipping:
            head = head[head.find(b"\n") + 1 :]
            self._skipping = False
        lines = head.decode("utf-8", "replace").split("\n")
        lines.pop()  # the empty string after the last newline
        self.tally.feed_lines(lines)
        self._hold(chunk[end + 1 :])

    def close(self) -> None:
        """The stream ended: a last line without its newline still counts."""
        if self._carry and not self._skipping:
            self.tally.feed(self._carry.decode("utf-8", "replace"))
        self._carry = b""

    def _hold(self, tail: bytes) -> None:
        if self._skipping:
            return
        self._carry += tail
        if len(self._carry) > self.max_line_bytes:
            self.tally.lines += 1
            self.tally.unparsed += 1
            self._carry = b""
            self._skipping = True


def _token_fields(parts: list[str]) -> tuple[str | None, int, int]:
    """Model and token counts from `key=value` parts whose keys carry suffixes."""
    model = None
    tokens_in = tokens_out = -1
    for part in parts:
        key, _, value = part.partition("=")
        if key == "model":
            model = value
        elif key.startswith("input"):
            tokens_in = _count(value)
        elif key.startswith("output"):
            tokens_out = _count(value)
    return model, tokens_in, tokens_out


def _count(text: str) -> int:
    # isdigit alone admits characters such as '²' that int() refuses.
    return int(text) if text.isascii() and text.isdigit() else -1


def normalise_ip(raw: str) -> str | None:
    """A peer address as people write it (`::ffff:1.2.3.4` -> `1.2.3.4`), or None."""
    if raw.startswith("::ffff:") and _is_dotted_quad(raw[7:]):
        return raw[7:]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _is_dotted_quad(text: str) -> bool:
    octets = text.split(".")
    return len(octets) == 4 and all(
        (
            octet.isascii()
            and octet.isdigit()
            and len(octet) <= 3
            and int(octet) < 256
            and octet[0] != "0"
        )
        or octet == "0"
        for octet in octets
    )


def parse_utc(text: str) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive means UTC), or None."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def tally_lines(lines: Iterable[str]) -> JournalTally:
    """Tally an iterable of journal lines (a file, a list) in one pass."""
    return JournalTally().feed_all(lines)
