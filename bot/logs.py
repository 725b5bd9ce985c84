"""Structured log lines on stderr: one per command and per backend call."""

import logging
import sys
from typing import Any

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class KeyValueFormatter(logging.Formatter):
    """`time level logger event key=value ...`, easy to grep and to parse."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        fields = " ".join(f"{k}={_value(v)}" for k, v in sorted(extras.items()))
        line = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname}"
            f" {record.name} {record.getMessage()} {fields}"
        ).rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _value(value: Any) -> str:
    text = str(value)
    return repr(text) if " " in text else text


def configure(verbose: bool = False) -> None:
    """Send the bot's logs to stderr so that stdout stays the answer."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("werkzeug", "botocore", "urllib3", "asyncssh", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
