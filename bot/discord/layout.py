"""Model cards and job results as Components V2 cards (discord.py's `LayoutView`): one
container with the title and text in a section (its first button beside them), the metrics,
the loss plot in a media gallery, and the remaining buttons in a row.

Buttons carry their command text (`gptstore:deploy NAME`); a click runs it for the person who
clicked, with that person's permissions (StoreClient.on_interaction), so the card keeps no
state and works after a restart. Everything stays within the V2 limits (bot/discord/limits.py):
40 components and 4,000 characters of text per message.
"""

from __future__ import annotations

import discord

from bot.core.reply import Button, Reply
from bot.discord.limits import CUSTOM_ID_LIMIT, V2_TEXT_LIMIT

BUTTON_PREFIX = "gptstore:"
STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}
PLOT_TEXT = " Loss plot: "  # final_reply names the plot's file for plain-text platforms
MAX_BUTTONS = 5  # one beside the title, four in the row below


def card_view(reply: Reply, colour: int, image_name: str | None) -> discord.ui.LayoutView:
    """The card; `image_name` is the attached file the gallery shows (attachment://NAME)."""
    view = discord.ui.LayoutView(timeout=None)
    container = discord.ui.Container(accent_colour=colour)
    buttons = [command_button(b) for b in reply.buttons[:MAX_BUTTONS]]
    title = _cut(f"## {reply.title or 'Store'}", 300)
    text = _cut((reply.text or "").split(PLOT_TEXT)[0], 1500)
    heading = [discord.ui.TextDisplay(title)] + ([discord.ui.TextDisplay(text)] if text else [])
    if buttons:
        container.add_item(discord.ui.Section(*heading, accessory=buttons[0]))
    else:
        for item in heading:
            container.add_item(item)
    budget = V2_TEXT_LIMIT - sum(len(t.content) for t in heading)
    rows = _cut("\n".join(f"**{name}**: {value}" for name, value in reply.fields), budget)
    if rows:
        container.add_item(discord.ui.Separator())
        container.add_item(discord.ui.TextDisplay(rows))
    if image_name:
        container.add_item(discord.ui.MediaGallery(discord.MediaGalleryItem(
            f"attachment://{image_name}", description=f"{reply.title}: loss per epoch"[:256])))
    if len(buttons) > 1:
        container.add_item(discord.ui.ActionRow(*buttons[1:]))
    view.add_item(container)
    view.stop()  # clicks are answered by custom_id, not by this object (see above)
    return view


def command_button(button: Button) -> discord.ui.Button:
    return discord.ui.Button(label=button.label[:80],
                             custom_id=(BUTTON_PREFIX + button.command)[:CUSTOM_ID_LIMIT],
                             style=STYLES.get(button.style, discord.ButtonStyle.secondary))


def card_text(message: discord.Message | dict) -> str:
    """The text of a posted card (for checking whether a result already reached a channel)."""
    def walk(components: list) -> list[str]:
        out = []
        for c in components:
            if c.get("content"):
                out.append(c["content"])
            out += walk(c.get("components") or [])
        return out
    data = message if isinstance(message, dict) else {}
    return "\n".join(walk(data.get("components") or []))


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    if limit <= 1:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
