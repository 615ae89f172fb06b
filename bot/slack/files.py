"""Slack files -> Attachment: download `url_private` with the bot token, spot the sign-in page.

Without the `files:read` scope Slack answers a download with status 200 and an HTML
sign-in page instead of the file; that is reported as a missing scope, never parsed as data.
The token only travels in the Authorization header, only over https to Slack's own file
hosts (or the configured SLACK_API_URL host, which is how tests and proxies are reached),
and never on a redirect: a redirect is followed without it, and only to such a host.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.command import Attachment
from engine.errors import InvalidInput

MISSING_SCOPE = ("I couldn't read the file: the app lacks the files:read scope. "
                 "Reinstall it with files:read.")


def _looks_like_html(data: bytes, content_type: str) -> bool:
    head = data[:512].lstrip().lower()
    return "text/html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html"))


SLACK_FILE_HOSTS = ("files.slack.com", "slack-files.com")
SLACK_FILE_DOMAINS = (".slack.com", ".slack-edge.com", ".slack-files.com")
MAX_REDIRECTS = 3
NOT_SLACK = ("That file link does not point to Slack's file servers, so I did not download "
             "it; upload the file to Slack itself.")


@dataclass(frozen=True)
class FileRules:
    """Where a Slack file may be downloaded from: https on Slack's file hosts, or the
    configured API host (scheme and port as configured)."""

    api_origin: tuple[str, str, int | None] = ("", "", None)  # (scheme, host, port)

    @classmethod
    def for_api(cls, api_url: str) -> "FileRules":
        parts = urlsplit(api_url)
        host = (parts.hostname or "").lower()
        if host == "slack.com":  # the default API host serves no files itself
            return cls()
        return cls((parts.scheme, host, parts.port))

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if self.api_origin[1] and (parts.scheme, host, parts.port) == self.api_origin:
            return True
        return parts.scheme == "https" and (
            host in SLACK_FILE_HOSTS or host.endswith(SLACK_FILE_DOMAINS))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib would copy the Authorization header to the new host


_OPENER = urllib.request.build_opener(_NoRedirect)


def _fetch(url: str, token: str, *, rules: FileRules, max_bytes: int,
           timeout: float) -> tuple[bytes, str]:
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(MAX_REDIRECTS + 1):
        if not rules.allows(url):
            raise InvalidInput(NOT_SLACK)
        try:
            with _OPENER.open(urllib.request.Request(url, headers=headers),
                              timeout=timeout) as response:
                return response.read(max_bytes + 1), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if 300 <= exc.code < 400 else None
            if not location:
                raise
            url, headers = urljoin(url, location), {}  # the token stays behind
    raise InvalidInput("I couldn't download the file from Slack (too many redirects); "
                       "try uploading it again.")


def download(url: str, token: str, *, max_bytes: int, timeout: float = 30.0,
             rules: FileRules | None = None) -> bytes:
    """The file's bytes; InvalidInput for a sign-in page, a file too large, a host that is not
    Slack's or a failed download."""
    try:
        data, content_type = _fetch(url, token, rules=rules or FileRules(), max_bytes=max_bytes,
                                    timeout=timeout)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        raise InvalidInput(f"I couldn't download the file from Slack ({reason}); "
                           "try uploading it again.") from None
    if _looks_like_html(data, content_type):
        raise InvalidInput(MISSING_SCOPE)
    if len(data) > max_bytes:
        raise InvalidInput(f"The file is larger than {max_bytes // (1024 * 1024)} MB; "
                           "split it or raise GPTSTORE_MAX_UPLOAD_MB.")
    return data


def file_info(client: WebClient, file: dict[str, Any]) -> dict[str, Any]:
    """The file's full description (files.info) when the event carried only its id."""
    if file.get("url_private_download") or file.get("url_private"):
        return file
    try:
        return dict(client.files_info(file=file["id"])["file"])
    except SlackApiError as exc:
        if exc.response.get("error") == "missing_scope":
            raise InvalidInput(MISSING_SCOPE) from None
        raise InvalidInput(f"I couldn't find the file in Slack ({exc.response.get('error')}); "
                           "try uploading it again.") from None


def attachment(client: WebClient, file: dict[str, Any], *, max_bytes: int,
               rules: FileRules | None = None) -> Attachment:
    """Download one Slack file as an Attachment (its name kept for format detection)."""
    info = file_info(client, file)
    if int(info.get("size") or 0) > max_bytes:
        raise InvalidInput(f"{info.get('name', 'The file')} is larger than "
                           f"{max_bytes // (1024 * 1024)} MB; split it or raise GPTSTORE_MAX_UPLOAD_MB.")
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise InvalidInput(MISSING_SCOPE)
    data = download(url, client.token or "", max_bytes=max_bytes,
                    rules=rules or FileRules.for_api(client.base_url))
    return Attachment(filename=info.get("name") or info.get("title") or "upload", data=data)
