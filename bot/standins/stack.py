"""Every stand-in at once, filled from one synthetic incident: the demo's world."""

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bot.config import Settings
from bot.services import Services, build_services
from bot.sources.cloudwatch import CloudWatchMetrics
from bot.standins.cloudwatch import CREDENTIALS, CloudWatchStandin
from bot.standins.scenario import Scenario, incident
from bot.standins.ssh import SshStandin
from bot.standins.tinybird import TinybirdStandIn

JOURNAL_UNIT = "text-pollinations.service"


@dataclass
class Stack:
    """CloudWatch (moto), Tinybird (chDB) and an SSH host on loopback."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    scenario: Scenario | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp("-usage-bot")))
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cloudwatch = CloudWatchStandin()
        self.tinybird = TinybirdStandIn()
        self.ssh = SshStandin(
            self.workdir / "ssh", journal={JOURNAL_UNIT: self.workdir / "journal.log"}
        )

    async def __aenter__(self) -> Self:
        started = time.monotonic()
        self.scenario = self.scenario or incident(self.now)
        await asyncio.gather(asyncio.to_thread(self._start_threaded), self._start_ssh())
        self.timings["start_and_load_s"] = time.monotonic() - started
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.ssh.stop()
        await asyncio.to_thread(self._stop_threaded)

    def _start_threaded(self) -> None:
        assert self.scenario is not None
        self.cloudwatch.start()
        self.cloudwatch.put_counts(self.scenario.billed())
        self.tinybird.start()
        self.tinybird.insert_events(self.scenario.gateway_events())

    def _stop_threaded(self) -> None:
        self.cloudwatch.stop()
        self.tinybird.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def _start_ssh(self) -> None:
        assert self.scenario is not None
        lines = self.scenario.journal()
        path = self.workdir / "journal.log"
        await asyncio.to_thread(path.write_text, "\n".join(lines) + "\n")
        await self.ssh.start()

    def settings(self, **overrides: Any) -> Settings:
        """Settings that point every source at the stand-ins."""
        values: dict[str, Any] = {
            "tb_host": self.tinybird.url,
            "tb_token": self.tinybird.token,
            "journal_hosts": [self.ssh.target],
            "journal_unit": JOURNAL_UNIT,
            "ssh_key_path": self.ssh.client_key_path,
            "ssh_known_hosts": self.ssh.known_hosts_path,
            "database_url": f"sqlite:///{self.workdir / 'usage-bot.db'}",
        }
        return Settings(**{**values, **overrides})

    def services(self, settings: Settings) -> Services:
        """The bot's services, with CloudWatch reached at the stand-in."""
        metrics = CloudWatchMetrics(
            settings,
            endpoint_url=self.cloudwatch.url,
            credentials=(
                CREDENTIALS["aws_access_key_id"],
                CREDENTIALS["aws_secret_access_key"],
            ),
        )
        return build_services(settings, providers={"bedrock": metrics})
