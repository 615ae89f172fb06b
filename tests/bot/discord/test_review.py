"""The review inbox in Discord, through the real discord.py client and the fake Discord: the
list carries Approve / Edit / Reject buttons, and pressing Approve makes the pair trainable."""

from __future__ import annotations

import asyncio

from engine.identity import Caller
from storage import conversations
from tests.bot.discord.test_app import connected, response, text_of


def suggested(engine, guild: str, admin_id: str) -> int:
    """A tuned `helpdesk` of the guild with one logged answer that a member corrected."""
    admin = Caller.for_discord(guild, admin_id, channel="1", is_admin=True)
    member = Caller.for_discord(guild, "777", channel="1")
    model = engine.catalog.create_or_get_tuned(admin, "helpdesk", "tiny")
    engine.catalog.add_version(model.id, path="/adapters/helpdesk/v1", live=True)
    with engine.db.session() as s:
        conv = conversations.conversation(s, "discord", member.workspace, "1", "")
        asked = conversations.add_message(s, conversation_id=conv.id, role="user",
                                          user=member.user, content="When do you open?",
                                          model_id=model.id)
        answer = conversations.add_message(s, conversation_id=conv.id, role="assistant",
                                           user=member.user, content="Whenever.",
                                           model_id=model.id, reply_to_id=asked.id)
    engine.chat.correct(member, str(answer.id), "At nine, Monday to Friday.")
    return model.id


def test_the_review_list_has_buttons_and_approve_trains_the_pair(engine) -> None:
    async def scenario() -> None:
        async with connected(engine) as (fake, _):
            model_id = suggested(engine, str(fake.guild_id), str(fake.admin["id"]))
            asked = await fake.slash(fake.admin, "review", {"model": "helpdesk"})
            listed = await response(fake, asked)
            assert "When do you open?" in text_of(listed) and "At nine" in text_of(listed)
            labels = [c["label"] for row in listed["components"] for c in row["components"]]
            assert [label.split(" #")[0] for label in labels] == ["Approve", "Edit", "Reject"]
            assert engine.curation.training_pairs(model_id) == []
            message = next(m for m in fake.messages.values()
                           if "When do you open?" in text_of(m))
            pressed = await fake.click(fake.admin, "gptstore:approve 1", message)
            assert "Approved #1" in text_of(await response(fake, pressed))
            [pair] = engine.curation.training_pairs(model_id)
            assert pair.answer == "At nine, Monday to Friday."
    asyncio.run(scenario())
