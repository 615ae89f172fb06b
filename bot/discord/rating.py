"""👍 / 👎 buttons under an answer, stored as feedback exactly as the reactions are.

The buttons are discord.py dynamic items: their custom_id carries the rating and, when the
answer took several messages, the id of its first message (the one the store logged), so a
click is understood by any process at any time after a restart, with no view kept in memory.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.core.dispatch import Context
from bot.core.reply import Reply
from bot.discord.context import DiscordDeps, first_time, interaction_caller, origin_of

THUMBS = {"up": "\U0001F44D", "down": "\U0001F44E"}
NOT_AN_ANSWER = ("That message is not an answer the store logged (it may have been forgotten), "
                 "so the rating was not kept.")


class RatingButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=r"gptstore-rate:(?P<kind>up|down)(?::(?P<answer>[0-9]+))?"):
    def __init__(self, kind: str, answer_id: int | None = None) -> None:
        custom_id = f"gptstore-rate:{kind}" + (f":{answer_id}" if answer_id else "")
        super().__init__(discord.ui.Button(emoji=THUMBS[kind], custom_id=custom_id,
                                           style=discord.ButtonStyle.secondary))
        self.kind = kind
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> "RatingButton":
        answer = match["answer"]
        return cls(match["kind"], int(answer) if answer else None)

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        deps: DiscordDeps = interaction.client.deps  # type: ignore[attr-defined]
        if not await first_time(deps, f"discord:interaction:{interaction.id}"):
            return
        answer_id = self.answer_id or (interaction.message.id if interaction.message else 0)
        reply = await rate(deps, interaction, str(answer_id), self.kind)
        await interaction.response.send_message(reply.text, ephemeral=True)


async def rate(deps: DiscordDeps, interaction: discord.Interaction, answer_id: str,
               kind: str) -> Reply:
    caller = interaction_caller(interaction, deps.settings.discord_admin_role)
    ctx = Context(caller=caller, reply_ref=answer_id,
                  origin=origin_of(caller, interaction=str(interaction.id)))
    reply = await deps.off_loop(deps.dispatcher.feedback, ctx, answer_id, kind)
    return reply if reply is not None else Reply(text=NOT_AN_ANSWER, kind="error",
                                                 ephemeral=True)


def rating_view(first_message_id: int | None = None) -> Any:
    """The two buttons; stopped at once, since the dynamic items answer clicks, not the view
    (so discord.py keeps no view per posted answer)."""
    view = discord.ui.View(timeout=None)
    view.add_item(RatingButton("up", first_message_id))
    view.add_item(RatingButton("down", first_message_id))
    view.stop()
    return view
