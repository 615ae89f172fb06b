"""A grounded answer in Discord, through the real discord.py client and the fake Discord: the
entry it came from in a `-#` footer line; a decline with the handoff text."""

from __future__ import annotations

import asyncio

from tests.bot.discord.harness import connected, content, response, text_of
from tests.helpers.knowledge import sample_rows


def test_an_answer_shows_its_source_in_a_footer_and_off_topic_is_handed_off(scripted,
                                                                            admin) -> None:
    tiny = scripted.catalog.resolve(admin, "tiny")
    scripted.knowledge.index_examples(tiny.id, None, "faq.csv", sample_rows())
    scripted.knowledge.set_handoff(tiny.id, "ask @support-team in #help")

    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            deployed = await fake.slash(fake.admin, "deploy", {"model": "tiny"})
            assert "now answers messages" in text_of(await response(fake, deployed))
            await fake.post_message(fake.member, "I forgot my login password. What now?")
            await fake.until(lambda: any(
                "\n-# from faq.csv, row 3: How do I reset my password?" in content(r)
                for r in fake.requests))
            await fake.post_message(fake.member, "What is the capital of Australia?")
            await fake.until(lambda: any(
                "I can't answer that from my files. ask @support-team in #help" in content(r)
                for r in fake.requests))
            declined = [content(r) for r in fake.requests if "can't answer" in content(r)]
            assert all("-# from" not in text for text in declined)
    asyncio.run(scenario())
