"""Text every adapter shares: the one "something went wrong" reply, message splitting, and the
lines under a chat answer."""

from __future__ import annotations

import logging
import uuid

from bot.core.reply import Reply


def unexpected_reply(log: logging.Logger, what: str, exc: BaseException) -> Reply:
    """Log an unexpected error with a fresh reference id and return the reply the user sees:
    the id and where the operator finds it, never the error's own text (it may hold secrets
    or internals)."""
    ref = uuid.uuid4().hex[:6]
    log.error("unexpected error in %s (ref %s)", what, ref, exc_info=exc)
    return Reply(text=f"Something went wrong (ref {ref}). The store's operator can find the "
                      "details in the log under that reference.", kind="error", ephemeral=True)


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at the last paragraph break, line break or
    space in the second half of the window (mid-word only when there is none). Never empty:
    empty text is one empty piece."""
    pieces: list[str] = []
    rest = text or ""
    while len(rest) > limit:
        window = rest[:limit]
        cut = window.rfind("\n\n")
        if cut < limit // 2:
            cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            pieces.append(window)
            rest = rest[limit:]
            continue
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def footer_lines(reply: Reply) -> list[str]:
    """What follows a chat answer: the entries it came from, and which model answered."""
    lines = [f"from {s.ref}: {s.question}" if s.question else f"from {s.ref}"
             for s in reply.sources]
    if reply.note:
        lines.append(reply.note)
    return lines
