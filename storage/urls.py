"""URLs shown to people with their passwords masked: settings reprs, log lines, error messages.

Kept at the bottom layer (standard library only) so storage's own error messages and the
engine's settings and logs mask the same way.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@host ... (the password is everything between ':' and the last '@'
# before the host; a password may itself contain '@' or ':' when the URL is hand-written)
_IN_TEXT = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s/]*)@")


def mask_url(url: str | None) -> str | None:
    """`url` with its password replaced by ***; None stays None; text that is not a URL is
    returned with any embedded user:password@ masked all the same."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_urls(url)
    if parts.password is None:
        return mask_urls(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    user = parts.username or ""
    netloc = f"{user}:{MASK}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def mask_urls(text: str) -> str:
    """Every `scheme://user:password@` in `text` with the password masked."""
    return _IN_TEXT.sub(lambda m: f"{m.group('head')}{MASK}@", text)


class MaskingFormatter(logging.Formatter):
    """A log formatter whose every line (tracebacks included) has URL passwords masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_urls(super().format(record))
