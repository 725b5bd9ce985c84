"""A synthetic 48 hours of gateway traffic with a gateway-bypass incident in it.

One list of calls feeds every stand-in, so their answers agree the way production
sources would: CloudWatch bills every call that reached Bedrock, the gateway's
event store logs the calls that passed the gateway (plus cache hits, staging and
fallback-served events that must not count), and the service journal has a line
for every call the service made, with the caller's IP.
"""

import math
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bot.sources.records import Counts
from bot.standins.ssh import format_ip_log, format_other, format_token_usage
from bot.standins.tinybird import GatewayEvent

OPUS = "global.anthropic.claude-opus-4-5-20251101-v1:0"
UNCATALOGUED = "anthropic.claude-3-7-sonnet-20250219-v1:0"
VERTEX_OPUS = "claude-opus-4-5@20251101"

# Addresses from documentation ranges and Cloudflare's published ranges: data only,
# nothing ever connects to them.
ATTACKER_IP = "203.0.113.77"
CLOUDFLARE_PEERS = ["172.69.59.125", "162.158.90.14", "104.23.187.3", "172.71.22.9"]
TOKEN_PREFIX = "pk7Q"  # noqa: S105  the 4 characters a log shows, not a secret


@dataclass(frozen=True)
class Traffic:
    """Normal hourly gateway traffic for one model and its typical call size."""

    model_id: str
    name: str
    per_hour: int
    input_tokens: tuple[int, int]
    output_tokens: tuple[int, int]


NORMAL_TRAFFIC = [
    Traffic("amazon.nova-micro-v1:0", "nova-fast", 260, (300, 2_000), (50, 400)),
    Traffic(OPUS, "claude-large", 145, (1_500, 9_000), (200, 1_500)),
    Traffic("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude", 180,
            (1_000, 6_000), (150, 1_200)),
    Traffic("us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-fast", 220,
            (500, 3_000), (80, 600)),
    Traffic("us.anthropic.claude-3-5-haiku-20241022-v1:0", "chickytutor", 40,
            (400, 1_500), (100, 500)),
]  # fmt: skip


@dataclass(frozen=True)
class Call:
    """One call that reached Bedrock through the text service."""

    at: datetime
    model_id: str
    requested: str
    input_tokens: int
    output_tokens: int
    via_gateway: bool
    ip: str
    token_prefix: str


@dataclass
class Scenario:
    """The calls of a window, and what each source therefore holds."""

    now: datetime
    start: datetime
    attack_start: datetime
    attack_end: datetime
    calls: list[Call] = field(default_factory=list)
    gateway_only: list[GatewayEvent] = field(default_factory=list)
    throttles: dict[tuple[str, datetime], int] = field(default_factory=dict)

    def gateway_events(self) -> list[GatewayEvent]:
        """What the gateway logged: its own calls and the events that must not count."""
        served = [
            GatewayEvent(
                start_time=call.at,
                model_used=call.model_id,
                model_requested=call.requested,
                token_count_prompt_text=call.input_tokens,
                token_count_completion_text=call.output_tokens,
                ip=call.ip,
            )
            for call in self.calls
            if call.via_gateway
        ]
        return served + self.gateway_only

    def billed(
        self, fine_since: datetime | None = None
    ) -> list[tuple[str, datetime, Counts]]:
        """CloudWatch's view: per 5 minutes since `fine_since`, per hour before it.

        Coarse points keep moto's linear scans short for 48-hour questions; the
        recent 5-minute points match the periods of 1-hour questions.
        """
        fine = fine_since or _floor(self.now - timedelta(hours=2), 3600)
        buckets: dict[tuple[str, datetime], Counts] = defaultdict(Counts)
        for call in self.calls:
            stamp = _floor(call.at, 300 if call.at >= fine else 3600)
            buckets[(call.model_id, stamp)] += Counts(
                1, call.input_tokens, call.output_tokens
            )
        for (model_id, hour), count in self.throttles.items():
            buckets[(model_id, hour)] += Counts(throttles=count)
        return [(m, stamp, c) for (m, stamp), c in sorted(buckets.items())]

    def journal(self) -> Iterator[str]:
        """The service's journal lines in time order, as `journalctl` prints them."""
        for index, call in enumerate(sorted(self.calls, key=lambda c: c.at)):
            yield format_ip_log(
                call.at, f"::ffff:{call.ip}", "/openai", call.requested,
                call.token_prefix,
            )  # fmt: skip
            yield format_token_usage(
                call.at, call.model_id, call.input_tokens, call.output_tokens
            )
            if index % 500 == 0:
                yield format_other(call.at, "[INFO] health check ok")

    def attack_calls(self) -> list[Call]:
        return [call for call in self.calls if not call.via_gateway]


def incident(
    now: datetime,
    hours: int = 48,
    attack_hours: float = 28.0,
    attack_ends_before_now: timedelta = timedelta(0),
    seed: int = 7,
) -> Scenario:
    """Normal traffic for `hours`, and someone calling Opus directly for a while."""
    rng = random.Random(seed)  # noqa: S311  reproducible data, not secrets
    now = now.astimezone(UTC).replace(microsecond=0)
    attack_end = now - attack_ends_before_now
    scenario = Scenario(
        now=now,
        start=now - timedelta(hours=hours),
        attack_start=attack_end - timedelta(hours=attack_hours),
        attack_end=attack_end,
    )
    for traffic in NORMAL_TRAFFIC:
        _normal(scenario, traffic, rng)
    _attack(scenario, rng)
    scenario.calls.sort(key=lambda call: call.at)
    return scenario


def _normal(scenario: Scenario, traffic: Traffic, rng: random.Random) -> None:
    for at in _arrivals(scenario.start, scenario.now, traffic.per_hour, rng):
        call = Call(
            at=at,
            model_id=traffic.model_id,
            requested=traffic.name,
            input_tokens=rng.randint(*traffic.input_tokens),
            output_tokens=rng.randint(*traffic.output_tokens),
            via_gateway=True,
            ip=rng.choice(CLOUDFLARE_PEERS),
            token_prefix=TOKEN_PREFIX,
        )
        scenario.calls.append(call)
        _gateway_noise(scenario, call, rng)

    if traffic.name == "claude-large":
        hour = _floor(scenario.start, 3600)
        while hour < scenario.now:
            scenario.throttles[(traffic.model_id, hour)] = rng.randint(0, 4)
            hour += timedelta(hours=1)


def _gateway_noise(scenario: Scenario, call: Call, rng: random.Random) -> None:
    """Events the gateway logs that the provider never bills for Bedrock."""
    roll = rng.random()
    base = GatewayEvent(
        start_time=call.at,
        model_used=call.model_id,
        model_requested=call.requested,
        token_count_prompt_text=call.input_tokens,
        token_count_completion_text=call.output_tokens,
        ip=call.ip,
    )
    if roll < 0.05:
        scenario.gateway_only.append(replace(base, cache_hit=True))
    elif roll < 0.08:
        scenario.gateway_only.append(replace(base, environment="staging"))
    elif roll < 0.10 and call.model_id == OPUS:
        scenario.gateway_only.append(
            replace(base, model_used=VERTEX_OPUS, model_provider_used="vertex-ai")
        )


def _attack(scenario: Scenario, rng: random.Random) -> None:
    """Calls with the leaked token: big Opus prompts, and a model we never use."""
    for model_id, per_hour, sizes in (
        (OPUS, 460, ((8_000, 30_000), (300, 2_500))),
        (UNCATALOGUED, 25, ((2_000, 8_000), (200, 900))),
    ):
        for at in _arrivals(scenario.attack_start, scenario.attack_end, per_hour, rng):
            scenario.calls.append(
                Call(
                    at=at,
                    model_id=model_id,
                    requested="claude-large" if model_id == OPUS else model_id,
                    input_tokens=rng.randint(*sizes[0]),
                    output_tokens=rng.randint(*sizes[1]),
                    via_gateway=False,
                    ip=ATTACKER_IP,
                    token_prefix=TOKEN_PREFIX,
                )
            )


def _arrivals(
    start: datetime, end: datetime, per_hour: int, rng: random.Random
) -> Iterator[datetime]:
    """Call times with a daily rhythm: busier in the afternoon UTC, never zero."""
    hour = _floor(start, 3600)
    while hour < end:
        rhythm = 1.0 + 0.4 * math.sin((hour.hour - 9) / 24 * 2 * math.pi)
        for _ in range(round(per_hour * rhythm)):
            at = hour + timedelta(seconds=rng.uniform(0, 3600))
            if start <= at < end:
                yield at.replace(microsecond=0)
        hour += timedelta(hours=1)


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
