"""Reply values as Discord messages: plain text split at 2,000 characters, embeds, Components
V2 cards, files, buttons.

Chat answers and errors are plain text (so they read like a person's message and can be
copied); model cards and job results (`Reply.card`) become a Components V2 card
(bot/discord/layout.py) with the loss plot in a media gallery; anything else with fields
becomes one embed. A reply's image travels as an attached file shown inside the card or embed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import discord

from bot.core.reply import Button, Reply
from bot.core.text import footer_lines
from bot.core.text import split_text as split_pieces
from bot.discord.layout import BUTTON_PREFIX, card_view
from bot.discord.limits import (
    CUSTOM_ID_LIMIT,
    EMBED_DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    MAX_FIELDS,
    MESSAGE_LIMIT,
)

COLOURS = {"success": 0x2ECC71, "error": 0xE74C3C, "busy": 0xF1C40F, "info": 0x5865F2}


@dataclass
class Rendered:
    """What one message carries; `more` holds the text of any follow-on messages."""

    content: str | None = None
    embed: discord.Embed | None = None
    file_path: str | None = None
    buttons: tuple[Button, ...] = ()
    more: list[str] = field(default_factory=list)
    layout: discord.ui.LayoutView | None = None  # a Components V2 card: no content, no embeds

    def kwargs(self, *, edit: bool = False) -> dict[str, Any]:
        """Keyword arguments for send (or edit: files go in `attachments`); call per send,
        since a discord.File is read once."""
        out: dict[str, Any] = {} if self.layout is not None else {
            "content": self.content, "embeds": [self.embed] if self.embed else []}
        if self.file_path:
            files = [discord.File(self.file_path, filename=attachment_name(self.file_path))]
            out["attachments" if edit else "files"] = files
        view = self.layout or button_view(self.buttons)
        if view is not None:
            out["view"] = view
        return out


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters (Discord's 2,000 by default)."""
    return split_pieces(text, limit)


def render(reply: Reply) -> Rendered:
    """The Discord form of a Reply."""
    plain = (reply.kind in ("chat", "error", "busy")
             or not (reply.title or reply.fields or reply.image))
    if plain:
        text = answer_text(reply) if reply.kind == "chat" and reply.text else reply.text
        pieces = split_text(text or reply.title or "(empty)")
        return Rendered(content=pieces[0], buttons=reply.buttons, more=pieces[1:])
    colour = COLOURS.get(reply.kind, COLOURS["info"])
    path = str(reply.image) if reply.image else None
    if reply.card:
        name = attachment_name(path) if path else None
        return Rendered(layout=card_view(reply, colour, name), file_path=path)
    embed = discord.Embed(title=_cut(reply.title, 256) or None,
                          description=_cut(reply.text, EMBED_DESCRIPTION_LIMIT) or None,
                          colour=colour)
    budget = EMBED_TOTAL_LIMIT - len(embed.title or "") - len(embed.description or "")
    for i, (name, value) in enumerate(reply.fields[:MAX_FIELDS]):
        name, value = _cut(name, FIELD_NAME_LIMIT) or "-", _cut(value, FIELD_VALUE_LIMIT) or "-"
        budget -= len(name) + len(value)
        if budget < 40:  # Discord refuses an embed over 6,000 characters in all
            embed.add_field(name="\u2026", value=f"{len(reply.fields) - i} more not shown")
            break
        embed.add_field(name=name, value=value, inline=len(value) < 40)
    if path:
        embed.set_image(url=f"attachment://{attachment_name(path)}")
    return Rendered(embed=embed, file_path=path, buttons=reply.buttons)


def answer_text(reply: Reply) -> str:
    """A chat answer as posted: its text, then its sources and who answered as `-#` lines
    (Discord's small grey subtext)."""
    return reply.text + "".join(f"\n-# {line}" for line in footer_lines(reply))


def attachment_name(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "image.png"


def button_view(buttons: tuple[Button, ...]) -> discord.ui.View | None:
    """A view whose buttons carry their command text; the client runs it when pressed
    (`on_interaction`), so the view is stopped at once and never kept in discord.py's
    view store, which would otherwise grow by one view per posted reply."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    styles = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}
    for button in buttons[:25]:
        custom_id = (BUTTON_PREFIX + button.command)[:CUSTOM_ID_LIMIT]
        style = styles.get(button.style, discord.ButtonStyle.secondary)
        view.add_item(discord.ui.Button(label=button.label[:80], custom_id=custom_id, style=style))
    view.stop()
    return view


def button_command(custom_id: str) -> str | None:
    """The command text of one of our buttons, or None for someone else's component."""
    return custom_id[len(BUTTON_PREFIX):] if custom_id.startswith(BUTTON_PREFIX) else None


def format_bytes(n: int) -> str:
    """1048576 -> '1 MB', 1536 -> '1.5 KB'."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _cut(text: str, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
