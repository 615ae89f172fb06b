"""The command language parses the same whether typed as /store, store or a bare command."""

from __future__ import annotations

import pytest

from bot.core.command import Attachment
from bot.core.parse import parse
from engine.errors import InvalidInput


@pytest.mark.parametrize("text", ["/store tune acme epochs=3", "tune acme epochs=3",
                                  "store tune acme epochs=3", "  /STORE   tune acme  epochs=3 "])
def test_every_spelling_of_a_command_parses_alike(text: str) -> None:
    command = parse(text)
    assert command.name == "tune"
    assert command.args == ("acme",)
    assert command.options == {"epochs": "3"}


def test_quoted_words_keep_their_spaces_and_options_may_be_quoted() -> None:
    command = parse('retrain acme "0 3 * * 1" note="two words"')
    assert command.args == ("acme", "0 3 * * 1")
    assert command.options == {"note": "two words"}


def test_curly_quotes_from_chat_apps_work_like_straight_ones() -> None:
    command = parse("search \u201ccustomer support\u201d")
    assert command.args == ("customer support",)


def test_apostrophes_inside_words_are_not_quotes() -> None:
    command = parse("search what's new")
    assert command.args == ("what's", "new")


def test_unbalanced_quote_is_refused_with_the_position() -> None:
    with pytest.raises(InvalidInput, match="never closed"):
        parse('info "acme')


def test_free_text_commands_keep_raw_text_even_with_odd_quotes() -> None:
    command = parse('correct It\'s "the blue one, x=3')
    assert command.name == "correct"
    assert command.text == 'It\'s "the blue one, x=3'


def test_empty_text_and_bare_prefix_mean_help() -> None:
    assert parse("").name == "help"
    assert parse("/store").name == "help"


def test_attachments_and_option_keys_are_normalised() -> None:
    faq = Attachment("faq.csv", b"q,a\n")
    command = parse("tune acme Batch-Size=4", (faq,))
    assert command.options == {"batch_size": "4"}
    assert command.attachments == (faq,)


def test_a_quoted_key_value_word_is_an_argument_not_an_option() -> None:
    command = parse('chat acme "x=3"')
    assert command.args == ("acme", "x=3") and command.options == {}
