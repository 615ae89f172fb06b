"""Slack tokens kept out of logs, including slack-sdk's own debug lines.

slack-sdk redacts the Authorization header but logs response bodies at DEBUG, and the
OAuth exchange (oauth.v2.access) answers with the workspace's bot token in its body. A filter
on the loggers that write bodies rewrites every token-looking string before any handler
sees the record.
"""

from __future__ import annotations

import logging
import re

TOKEN = re.compile(r"\b(xox[abeoprs]|xapp)-[A-Za-z0-9-]+")
BODY_LOGGERS = ("slack_sdk.web.base_client", "slack_sdk.web.legacy_base_client",
                "slack_sdk.oauth", "slack_bolt", "gptstore.slack")


def redact(text: str) -> str:
    return TOKEN.sub(lambda m: f"{m.group(1)}-(redacted)", text)


class TokenFilter(logging.Filter):
    """Rewrites the record's message with tokens redacted (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if TOKEN.search(message):
            record.msg, record.args = redact(message), None
        return True


def keep_tokens_out_of_logs() -> None:
    """Install the filter once on each logger that may write a token (idempotent)."""
    for name in BODY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenFilter) for f in logger.filters):
            logger.addFilter(TokenFilter())
