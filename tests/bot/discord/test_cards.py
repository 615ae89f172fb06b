"""Model cards and tune results as Components V2 cards: a container with the title, the
metrics and the loss plot in a media gallery (the plot read from the artifact store; for a
model card, the plot of the job that trained its live version), and Deploy / Publish buttons
that act with the clicker's permissions."""

from __future__ import annotations

import asyncio

from bot.core.progress import JobWatcher
from bot.discord.limits import COMPONENTS_V2
from engine.identity import Caller
from tests.bot.discord.harness import (
    EPHEMERAL,
    components,
    connected,
    labels,
    qa_csv,
    response,
    text_of,
)


def of_type(message: dict, kind: int) -> list[dict]:
    return [c for c in components(message) if c.get("type") == kind]


def test_a_tune_result_is_a_card_with_metrics_plot_and_buttons_for_the_clicker(engine) -> None:
    async def scenario() -> None:
        watcher = lambda: JobWatcher(engine, poll_s=0.05, min_interval_s=0.0)  # noqa: E731
        async with connected(engine, watcher_factory=watcher) as (fake, _):
            upload = fake.add_file("faq.csv", qa_csv(12))
            asked = await fake.slash(fake.admin, "tune", {"name": "faq-bot", "epochs": 1,
                                                          "batch_size": 4}, attachment=upload)
            await response(fake, asked)
            posted = await fake.wait_for(lambda r: r.method == "POST" and bool(r.files) and
                                         "finished" in text_of(r.json or {}), timeout=600)
            card = posted[0].json
            assert card["flags"] & COMPONENTS_V2 and not card.get("content") \
                and not card.get("embeds")
            [container] = card["components"]
            assert container["type"] == 17 and container["accent_color"]
            [section] = of_type(card, 9)
            assert section["components"][0]["content"] == "## Job 1 finished: faq-bot v1"
            assert section["accessory"]["label"] == "Deploy"
            shown = text_of(card)
            assert "**Token F1**: " in shown and "->" in shown and "Loss plot:" not in shown
            [gallery] = of_type(card, 12)
            name, data = posted[0].files[0]
            assert gallery["items"][0]["media"]["url"] == f"attachment://{name}"
            assert name.endswith(".png") and data[:4] == b"\x89PNG"
            assert labels(card) == ["Deploy", "Publish to workspace"]

            # a member who is not an admin is refused in one sentence; an admin is obeyed
            result = fake.messages[next(m for m in fake.messages
                                        if fake.messages[m].get("attachments"))]
            refused = await response(fake, await fake.click(fake.member, "gptstore:deploy faq-bot",
                                                            result))
            assert refused["flags"] & EPHEMERAL
            sentence = text_of(refused)
            assert "admin" in sentence and sentence.endswith(".") and ". " not in sentence
            published = await response(fake, await fake.click(
                fake.admin, "gptstore:publish faq-bot workspace", result))
            assert not published.get("flags", 0) & EPHEMERAL, text_of(published)
            owner = Caller(platform="discord", workspace=f"discord:{fake.guild_id}",
                           user=f"discord:{fake.member['id']}", channel=fake.channel_id)
            assert engine.catalog.card(owner, "faq-bot").visibility == "workspace"
            assert engine.catalog.deployed(owner) is None

            # the model's card: the same layout, with its metrics and a Deploy button
            asked = await fake.slash(fake.member, "info", {"model": "faq-bot"})
            info = await response(fake, asked)
            assert info["flags"] & COMPONENTS_V2
            assert of_type(info, 9)[0]["components"][0]["content"] == "## faq-bot"
            assert "**Live version**: 1" in text_of(info) and "**Token F1**" in text_of(info)
            assert labels(info) == ["Deploy here"]
            [gallery] = of_type(info, 12)  # the live version's loss plot, from its job
            [(name, data)] = info["files"]
            assert gallery["items"][0]["media"]["url"] == f"attachment://{name}"
            assert data[:4] == b"\x89PNG"
    asyncio.run(scenario())


def test_a_card_with_many_fields_stays_within_the_components_v2_limits() -> None:
    from bot.core.reply import Button, Reply
    from bot.discord.limits import problems
    from bot.discord.render import render

    reply = Reply(title="x" * 500, text="y" * 3000, card=True,
                  fields=tuple((f"field {i}", "z" * 300) for i in range(40)),
                  buttons=tuple(Button(f"b{i}", f"deploy m{i}") for i in range(9)))
    view = render(reply).layout
    payload = {"flags": COMPONENTS_V2, "components": view.to_components()}
    assert problems(payload) == []
    assert len(labels(payload)) == 5  # one beside the title, four in the row


def test_a_deferred_card_replaces_the_thinking_message(engine) -> None:
    async def scenario() -> None:  # ack_within_s=0: every command counts as slow
        async with connected(engine, ack_within_s=0.0) as (fake, _):
            asked = await fake.slash(fake.member, "info", {"model": "tiny"})
            shown = await response(fake, asked)
            assert fake.find("POST", f"/interactions/{asked['id']}/")[0].json["type"] == 5
            assert shown["flags"] & COMPONENTS_V2 and "## tiny" in text_of(shown)
            assert labels(shown) == []  # a base model: nothing to deploy from its card
    asyncio.run(scenario())
