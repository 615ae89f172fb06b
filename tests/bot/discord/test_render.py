"""Reply -> Discord message: the limits Discord enforces (2,000 characters a message, 6,000 an
embed) are kept, and nothing the user wrote is lost on the way."""

from __future__ import annotations

from pathlib import Path

from bot.core.reply import Button, Reply
from bot.discord.render import button_command, format_bytes, render, split_text


def test_long_text_splits_at_line_breaks_without_losing_words() -> None:
    text = "\n".join(f"Line {i}: " + "word " * 30 for i in range(40))  # about 6,500 characters
    pieces = split_text(text)
    assert len(pieces) == 4 and all(len(p) <= 2000 for p in pieces)
    assert all(p.endswith("word") for p in pieces[:-1])  # cut at a line end, not mid-word
    assert " ".join(pieces).split() == text.split()


def test_text_without_spaces_is_still_cut_at_the_limit() -> None:
    pieces = split_text("x" * 4500)
    assert [len(p) for p in pieces] == [2000, 2000, 500]


def test_cards_become_embeds_within_discords_total_size() -> None:
    fields = tuple((f"Model {i}", "d" * 1000) for i in range(25))
    shown = render(Reply(title="Search", text="found 25", fields=fields))
    embed = shown.embed
    assert embed is not None and shown.content is None
    total = len(embed.title) + len(embed.description) + sum(
        len(f.name) + len(f.value) for f in embed.fields)
    assert total <= 6000 and embed.fields[-1].value.endswith("more not shown")


def test_chat_answers_and_errors_stay_plain_text(tmp_path: Path) -> None:
    answer = render(Reply(text="a" * 2500, kind="chat"))
    assert answer.embed is None and len(answer.content) == 2000 and answer.more == ["a" * 500]
    error = render(Reply(text="No model named 'x'.", kind="error", title="Error"))
    assert error.content == "No model named 'x'." and error.embed is None


def test_a_plot_is_attached_and_shown_in_the_embed(tmp_path: Path) -> None:
    plot = tmp_path / "loss plot.png"
    plot.write_bytes(b"\x89PNG fake")
    shown = render(Reply(title="Job 1 finished", text="done", image=plot,
                         buttons=(Button("Deploy", "deploy acme", "primary"),)))
    assert shown.embed.image.url == "attachment://loss_plot.png"
    assert shown.file_path == str(plot) and shown.buttons[0].command == "deploy acme"


def test_button_ids_carry_their_command() -> None:
    assert button_command("gptstore:deploy acme") == "deploy acme"
    assert button_command("someone-elses-button") is None


def test_sizes_read_like_people_write_them() -> None:
    assert format_bytes(10 * 1024 * 1024) == "10 MB"
    assert format_bytes(1536) == "1.5 KB"
    assert format_bytes(999) == "999 bytes"


def test_an_answer_shows_its_sources_and_who_answered_as_subtext() -> None:
    from bot.core.cards import answer_reply
    from bot.discord.chat import thread_name
    from bot.discord.render import answer_text
    from engine.views import ChatAnswer, Source

    answer = ChatAnswer(text="Refunds take 5 days.", model_name="acme", version=2,
                        chosen_by="workspace", message_id=7, latency_ms=1,
                        sources=(Source(ref="faq.csv#3", question="How long do refunds take?",
                                        text="Five days.", score=0.9),))
    shown = answer_text(answer_reply(answer)).splitlines()
    assert shown[0] == "Refunds take 5 days."
    assert shown[1] == "-# from faq.csv#3: How long do refunds take?"
    assert shown[2].startswith("-# Answered by acme v2 (this workspace's default model;")
    assert thread_name("  How do   refunds work? ") == "How do refunds work?"
    assert len(thread_name("word " * 60)) <= 100 and thread_name("") == "Conversation"
