"""Configuration: one settings object, read once at start-up and passed down.

Deployment values come from the environment (names below are part of the interface);
the model catalog, thresholds and runbooks may also come from the TOML file named by
`BOT_CONFIG`. Nothing else in the bot reads `os.environ`.
"""

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.catalog import Catalog
from bot.errors import ConfigError

CommaList = Annotated[list[str], NoDecode]
_USERGROUP_ID = re.compile(r"S[A-Z0-9]{2,}")


class CoverageThresholds(BaseModel):
    """When coverage turns from acceptable into a verdict worth a person's time."""

    unauthorized_below: float = 0.50
    baseline_tolerance: float = 0.10
    # The gateway may log a little more than was billed (retries, clock skew).
    gateway_excess_ratio: float = 1.10
    logs_tolerance: float = 0.05
    environment: str = "production"


# The checks a runbook step may name; bot.rotation.checks runs them.
RunbookCheck = Literal["github_secret", "remote_env_file", "ip_logs_prefix"]


class RunbookStep(BaseModel):
    """One step of a token's runbook, and the check the bot can run for it."""

    title: str = Field(min_length=1)
    detail: str = ""
    check: RunbookCheck | None = None


class Settings(BaseSettings):
    """Everything the bot can be told, with the defaults it runs on."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = 3000
    bot_admins: CommaList = []
    # A Slack user group ID (S...) whose members are admins too.
    admin_usergroup: str | None = None

    # AWS: credentials, endpoint and retries stay with boto3's own chain.
    aws_region: str = Field(
        "us-east-1", validation_alias=AliasChoices("aws_region", "aws_default_region")
    )
    aws_timeout_seconds: float = 10.0
    aws_max_attempts: int = 4

    # Tinybird
    tb_host: str = "https://api.tinybird.co"
    tb_token: SecretStr | None = None
    tb_timeout_seconds: float = 20.0

    # Service journal over SSH
    journal_hosts: CommaList = []
    journal_unit: str = "text-pollinations.service"
    ssh_key_path: Path | None = None
    ssh_known_hosts: Path | None = None
    journal_sudo: bool = False
    ssh_timeout_seconds: float = 10.0
    ingress_cidrs: CommaList = []

    # Token rotation: where the service's .env lives, checked over SSH (step 5).
    rotation_env_file: str = "/home/ubuntu/text.pollinations.ai/.env"
    rotation_env_host: str | None = None  # default: the first of JOURNAL_HOSTS

    # Store, GitHub, watch
    database_url: str = "sqlite:///usage-bot.db"
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_repository: str | None = None
    alert_channel: str | None = None
    watch_interval: int = 300
    watch_window: str = "1h"
    watch_cost_alert_usd: float = 5.0
    watch_renotify: int = 3600
    watch_recovery_checks: int = 2
    watch_in_serve: bool = False
    digest_at: str | None = None
    timezone: str = "UTC"

    bot_config: Path | None = None
    catalog: Catalog = Field(default_factory=Catalog)
    coverage: CoverageThresholds = Field(default_factory=CoverageThresholds)
    runbooks: dict[str, list[RunbookStep]] = {}

    @field_validator("admin_usergroup")
    @classmethod
    def _usergroup_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if _USERGROUP_ID.fullmatch(value.strip()) is None:
            raise ValueError(
                f"ADMIN_USERGROUP must be a user group ID such as S0123ABCD "
                f"but got {value!r}"
            )
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # Checked at start, so a typo fails the deployment, not a chart later.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"TIMEZONE must be an IANA name such as Europe/Berlin or UTC; "
                f"got {value!r}"
            ) from None
        return value

    @field_validator("bot_admins", "journal_hosts", "ingress_cidrs", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, then the TOML file it names, once."""
    settings = Settings(**overrides)
    if settings.bot_config is None:
        return settings

    try:
        data = tomllib.loads(settings.bot_config.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"BOT_CONFIG {settings.bot_config}: {exc}") from exc
    if "models" in data:
        data["catalog"] = {"models": data.pop("models")}
    return Settings(**{**data, **overrides})
