"""How figures are written for people: counts, money, shares."""


def count(value: int) -> str:
    return f"{value:,}"


def usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}"


def share(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%"


def compact(value: int) -> str:
    """Large token counts as 12.3M, 4.5k: what fits in a narrow Slack column."""
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return str(value)
