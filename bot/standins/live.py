"""Traffic added while the stand-ins run: normal calls and a live gateway bypass.

The watch demo, its tests and the detection-delay benchmark feed the running
stand-ins period by period, the way production sources fill up; each call lands
in every source the way the synthetic incident's calls do.
"""

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bot.standins.cloudwatch import CloudWatchStandin
from bot.standins.scenario import (
    ATTACKER_IP,
    CLOUDFLARE_PEERS,
    NORMAL_TRAFFIC,
    OPUS,
    TOKEN_PREFIX,
    Call,
    Scenario,
    Traffic,
)
from bot.standins.tinybird import TinybirdStandIn

# The incident's bypass: large Opus prompts with a leaked token, about 460 an hour.
ATTACK_PER_HOUR = 460
ATTACK_INPUT_TOKENS = (8_000, 30_000)
ATTACK_OUTPUT_TOKENS = (300, 2_500)


@dataclass
class LiveSources:
    """The running stand-ins that live calls are added to."""

    cloudwatch: CloudWatchStandin
    tinybird: TinybirdStandIn
    journal: Path

    def add(self, calls: list[Call]) -> None:
        """Bill, log and journal `calls` (blocking: call it off the event loop).

        CloudWatch sums data points that share a timestamp, so calls added to a
        period that already has some are counted on top of them.
        """
        if not calls:
            return
        ordered = sorted(calls, key=lambda call: call.at)
        feed = Scenario(
            now=ordered[-1].at,
            start=ordered[0].at,
            attack_start=ordered[0].at,
            attack_end=ordered[0].at,
            calls=ordered,
        )
        self.cloudwatch.put_counts(feed.billed(fine_since=ordered[0].at))
        self.tinybird.insert_events(feed.gateway_events())
        with self.journal.open("a", encoding="utf-8") as handle:
            handle.writelines(f"{line}\n" for line in feed.journal())


def normal_calls(
    start: datetime,
    end: datetime,
    rng: random.Random,
    traffic: Iterable[Traffic] = NORMAL_TRAFFIC,
) -> list[Call]:
    """Every catalogued model's usual traffic in [start, end), all via the gateway."""
    calls = []
    for usual in traffic:
        for at in arrivals(start, end, usual.per_hour, rng):
            calls.append(
                Call(
                    at=at,
                    model_id=usual.model_id,
                    requested=usual.name,
                    input_tokens=rng.randint(*usual.input_tokens),
                    output_tokens=rng.randint(*usual.output_tokens),
                    via_gateway=True,
                    ip=rng.choice(CLOUDFLARE_PEERS),
                    token_prefix=TOKEN_PREFIX,
                )
            )
    return calls


def attack_calls(
    start: datetime,
    end: datetime,
    rng: random.Random,
    per_hour: int = ATTACK_PER_HOUR,
) -> list[Call]:
    """Opus called directly with the leaked token from the attacker's address."""
    return [
        Call(
            at=at,
            model_id=OPUS,
            requested="claude-large",
            input_tokens=rng.randint(*ATTACK_INPUT_TOKENS),
            output_tokens=rng.randint(*ATTACK_OUTPUT_TOKENS),
            via_gateway=False,
            ip=ATTACKER_IP,
            token_prefix=TOKEN_PREFIX,
        )
        for at in arrivals(start, end, per_hour, rng)
    ]


def arrivals(
    start: datetime, end: datetime, per_hour: int, rng: random.Random
) -> Iterator[datetime]:
    """`per_hour` calls an hour at uniform random times in [start, end), sorted."""
    seconds = (end - start).total_seconds()
    count = round(per_hour * seconds / 3600)
    offsets = sorted(rng.uniform(0, seconds) for _ in range(count))
    for offset in offsets:
        at = (start + timedelta(seconds=offset)).replace(microsecond=0)
        if start <= at < end:
            yield at
