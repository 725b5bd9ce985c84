"""Rotation checks backed by the bot's own collectors: SSH, the IP log, coverage."""

import asyncio
from collections import Counter
from datetime import datetime

from bot.analysis.coverage import ModelCoverage, Verdict
from bot.commands.coverage import CoverageRequest, run_coverage
from bot.config import Settings
from bot.errors import BotError, ConfigError, InputError, SourceError
from bot.render import numbers
from bot.rotation.checks import CheckResult, CheckStatus
from bot.services import Services
from bot.sources.ssh import (
    JournalTarget,
    QueryKind,
    SshOptions,
    read_journal_from_settings,
    stat_remote_file,
)
from bot.windows import resolve_window

# The models whose stolen use costs most; their coverage tells whether the leak
# stopped once the old token is rejected.
EXPENSIVE_MODELS = ("claude-large", "claude")
COVERAGE_WINDOW = "1h"


class SshRemoteFiles:
    """`RemoteFiles` over SSH: `stat` on one host of the journal collector."""

    def __init__(self, target: JournalTarget, options: SshOptions) -> None:
        self._target = target
        self._options = options

    @classmethod
    def from_settings(cls, settings: Settings) -> "SshRemoteFiles | None":
        """ROTATION_ENV_HOST, else the first of JOURNAL_HOSTS; None without SSH."""
        host = settings.rotation_env_host or next(iter(settings.journal_hosts), None)
        if host is None or settings.ssh_known_hosts is None:
            return None
        try:
            target = JournalTarget.parse(host)
        except InputError as exc:
            raise ConfigError(f"ROTATION_ENV_HOST or JOURNAL_HOSTS: {exc}") from None
        return cls(target, SshOptions.from_settings(settings))

    async def stat(self, path: str) -> tuple[datetime, int]:
        """The file's modification time and mode bits; `SourceError` if unreadable."""
        try:
            found = await stat_remote_file(self._target, path, self._options)
        except InputError as exc:
            raise SourceError(self._target.name, str(exc)) from None
        return found.mtime, found.mode


class JournalPrefixLog:
    """`TokenPrefixLog` over the `[IP-LOG]` lines of every journal host."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> "JournalPrefixLog | None":
        """A log over JOURNAL_HOSTS, or None when no host is configured."""
        if not settings.journal_hosts or settings.ssh_known_hosts is None:
            return None
        return cls(settings)

    async def token_prefixes(self, since: datetime, until: datetime) -> dict[str, int]:
        """Requests per token prefix on all hosts; any silent host is a failure."""
        try:
            result = await read_journal_from_settings(
                self._settings, since, until, QueryKind.IPS
            )
        except BotError as exc:
            raise SourceError("journal", str(exc)) from None
        # A host that did not answer may be the one still taking the old token.
        if result.errors:
            raise result.errors[0]

        counts: Counter[str] = Counter()
        for activity in result.tally.ips.by_ip.values():
            counts.update(activity.token_prefixes)
        return dict(counts)


async def check_coverage_baseline(
    services: Services,
    now: datetime,
    model_names: tuple[str, ...] = EXPENSIVE_MODELS,
) -> CheckResult:
    """Pass when each expensive model's coverage over the last hour is `ok`."""
    name = "coverage_baseline"
    catalog = services.settings.catalog
    window = resolve_window(COVERAGE_WINDOW, now)
    try:
        specs = [catalog.resolve(model) for model in model_names]
    except InputError as exc:
        return CheckResult(name, CheckStatus.CANNOT_CHECK, f"cannot check: {exc}")
    reports = await asyncio.gather(
        *(
            run_coverage(CoverageRequest(spec, window, spec.provider), services)
            for spec in specs
        )
    )

    found: list[ModelCoverage] = []
    failures: list[str] = []
    for spec, report in zip(specs, reports, strict=True):
        failures += [f"{e.source}: {e.message}" for e in report.errors]
        found += [m for m in report.models if m.model_id in spec.provider_model_ids]
    if failures:
        reason = "; ".join(dict.fromkeys(failures))
        return CheckResult(name, CheckStatus.CANNOT_CHECK, f"cannot check: {reason}")

    evidence = f"coverage {COVERAGE_WINDOW}: " + ", ".join(
        f"{m.name} {numbers.share(m.invocation_coverage)} {m.verdict.value}"
        for m in found
    )
    verdicts = {m.verdict for m in found}
    if verdicts - {Verdict.OK, Verdict.NO_TRAFFIC}:
        return CheckResult(name, CheckStatus.FAILED, evidence)
    if Verdict.NO_TRAFFIC in verdicts:
        return CheckResult(
            name, CheckStatus.CANNOT_CHECK, f"cannot check: no traffic; {evidence}"
        )
    return CheckResult(name, CheckStatus.PASSED, evidence)


def combine(check: str, results: list[CheckResult]) -> CheckResult:
    """One verdict from several: any failure fails, any gap cannot pass."""
    statuses = {result.status for result in results}
    evidence = "; ".join(result.evidence for result in results)
    if CheckStatus.FAILED in statuses:
        return CheckResult(check, CheckStatus.FAILED, evidence)
    if CheckStatus.CANNOT_CHECK in statuses:
        return CheckResult(check, CheckStatus.CANNOT_CHECK, evidence)
    return CheckResult(check, CheckStatus.PASSED, evidence)
