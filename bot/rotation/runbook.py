"""Runbooks: the ordered steps that rotate each token, as data."""

from bot.config import RunbookStep, Settings
from bot.errors import InputError

PLN_ENTER_TOKEN_STEPS = [
    RunbookStep(
        title="Generate the new token locally",
        detail=(
            "`openssl rand -base64 32 | tr -d '/+=' | cut -c1-43`. "
            "Never paste it into Slack."
        ),
    ),
    RunbookStep(
        title="Update the SOPS files",
        detail="`enter.pollinations.ai/secrets/*.vars.json`.",
    ),
    RunbookStep(
        title="Update the GitHub Actions secret",
        detail="`PLN_ENTER_TOKEN`.",
        check="github_secret",
    ),
    RunbookStep(
        title="Update the Cloudflare Worker secret",
        detail="`wrangler secret put PLN_ENTER_TOKEN`.",
    ),
    RunbookStep(
        title="Update the EC2 service",
        detail="On `enter-services`, edit `.env`, restart the service.",
        check="remote_env_file",
    ),
    RunbookStep(
        title="Update Modal",
        detail="Redeploy `flux-klein` and `flux-klein-9b`.",
    ),
    RunbookStep(
        title="Update the io.net instances",
        detail="Set the new token in the zimage and flux environments.",
    ),
    RunbookStep(
        title="Verify",
        detail=(
            "The IP logs show only the new token prefix, and the old token is rejected."
        ),
        check="ip_logs_prefix",
    ),
]

DEFAULT_RUNBOOKS: dict[str, list[RunbookStep]] = {
    "PLN_ENTER_TOKEN": PLN_ENTER_TOKEN_STEPS,
}


def runbook_for(token_name: str, settings: Settings) -> list[RunbookStep]:
    """The steps for `token_name`: the configured runbook, else the built-in one."""
    runbooks = {**DEFAULT_RUNBOOKS, **settings.runbooks}
    steps = runbooks.get(token_name)
    if not steps:
        known = ", ".join(sorted(name for name, steps in runbooks.items() if steps))
        raise InputError(
            f"token must be one with a runbook ({known}) but got {token_name!r}"
        )
    return steps
