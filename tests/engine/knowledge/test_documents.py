"""Documents cut into passages, and the prompt the passages go into."""

from __future__ import annotations

from engine.knowledge.documents import PASSAGE_CHARS, split_passages
from engine.knowledge.prompt import Passage, build_prompt_messages
from engine.knowledge.ranking import KeywordIndex, terms


def test_headings_start_passages_and_long_sections_split_at_paragraphs() -> None:
    long = "\n\n".join(f"Paragraph {i} " + "words " * 60 for i in range(4))
    text = f"Intro line.\n\n# Billing\n\n{long}\n\n## Refunds ##\nWithin 14 days.\n"
    passages = split_passages(text)
    assert passages[0] == ("", "Intro line.")
    billing = [p for h, p in passages if h == "Billing"]
    assert len(billing) >= 2 and all(len(p) <= PASSAGE_CHARS for p in billing)
    assert "Paragraph 0" in billing[0] and "Paragraph 3" in billing[-1]
    assert passages[-1] == ("Refunds", "Within 14 days.")


def test_a_sentence_longer_than_a_passage_is_still_cut() -> None:
    [(_, first), *rest] = split_passages("x" * (PASSAGE_CHARS * 2 + 5))
    assert len(first) == PASSAGE_CHARS and sum(len(p) for _, p in rest) == PASSAGE_CHARS + 5


def test_the_prompt_puts_the_entries_before_the_question_and_nothing_without_them() -> None:
    entry = Passage(ref="faq.csv, row 3", question="How do I reset my password?",
                    text="Click Forgot password.", score=0.8, origin="file")
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
               {"role": "tool", "content": "dropped"}]
    messages = build_prompt_messages("Be brief.", history, "Lost my password", [entry])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    last = messages[-1]["content"]
    assert "[1] How do I reset my password?\nClick Forgot password." in last
    assert last.endswith("Question: Lost my password")
    assert build_prompt_messages("", None, " Lost my password ", []) == [
        {"role": "user", "content": "Lost my password"}]


def test_keyword_scores_count_the_informative_words_of_the_question() -> None:
    index = KeywordIndex.build(["How do I reset my password?\nClick Forgot password.",
                                "Which payment methods do you accept?\nVisa and PayPal."])
    assert terms("Resetting passwords") == ["reset", "password"]
    on_topic, off_topic = index.scores("password reset"), index.scores("capital of Italy")
    assert on_topic.argmax() == 0 and on_topic[0] > 0.99
    assert off_topic.max() == 0.0
