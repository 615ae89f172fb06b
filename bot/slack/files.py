"""Slack files -> Attachment: download `url_private` with the bot token, spot the sign-in page.

Without the `files:read` scope Slack answers a download with status 200 and an HTML
sign-in page instead of the file; that is reported as a missing scope, never parsed as data.
The token only travels in the Authorization header and never appears in a message.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.command import Attachment
from engine.errors import InvalidInput

MISSING_SCOPE = ("I couldn't read the file: the app lacks the files:read scope. "
                 "Reinstall it with files:read.")


def _looks_like_html(data: bytes, content_type: str) -> bool:
    head = data[:512].lstrip().lower()
    return "text/html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html"))


def download(url: str, token: str, *, max_bytes: int, timeout: float = 30.0) -> bytes:
    """The file's bytes; InvalidInput for a sign-in page, a file too large or a failed download."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            data = response.read(max_bytes + 1)
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


def attachment(client: WebClient, file: dict[str, Any], *, max_bytes: int) -> Attachment:
    """Download one Slack file as an Attachment (its name kept for format detection)."""
    info = file_info(client, file)
    if int(info.get("size") or 0) > max_bytes:
        raise InvalidInput(f"{info.get('name', 'The file')} is larger than "
                           f"{max_bytes // (1024 * 1024)} MB; split it or raise GPTSTORE_MAX_UPLOAD_MB.")
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise InvalidInput(MISSING_SCOPE)
    data = download(url, client.token or "", max_bytes=max_bytes)
    return Attachment(filename=info.get("name") or info.get("title") or "upload", data=data)
