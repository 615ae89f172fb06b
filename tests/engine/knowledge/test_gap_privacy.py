"""A declined question is its asker's words: forget-me takes them out of the gaps list (a gap
others asked too keeps their words and count), and log retention purges old ones."""

from __future__ import annotations

from bot.core.cards import forget_text
from engine.identity import Caller
from tests.helpers.knowledge import Grounded

OTHER = Caller.for_slack("T1", "UOTHER", channel="C1")


def gaps(store: Grounded) -> list[tuple[str, int]]:
    return [(g.question, g.count)
            for g in store.engine.knowledge_admin.gaps(store.member, "acme")]


def test_forget_me_takes_the_askers_words_out_of_the_gaps(grounded: Grounded) -> None:
    grounded.ask("What is the capital of Australia?")  # the member words the gap
    grounded.clock.advance(minutes=5)
    grounded.ask("Which city is the capital of Australia?", OTHER)  # joins it
    grounded.ask("How do I bake sourdough bread?")  # only the member asked this one
    assert gaps(grounded) == [("What is the capital of Australia?", 2),
                              ("How do I bake sourdough bread?", 1)]

    report = grounded.engine.privacy.forget_me(grounded.member)
    assert report.gap_questions == 2
    assert "Took 2 of your unanswered question(s) out of the models' gaps lists." in \
        forget_text(report, grounded.member.user)
    # The shared gap keeps the other asker's words and ask; the member's own gap is gone.
    assert gaps(grounded) == [("Which city is the capital of Australia?", 1)]
    # The gap still groups rephrasings under its new words.
    grounded.ask("What's Australia's capital city?", OTHER)
    assert gaps(grounded) == [("Which city is the capital of Australia?", 2)]

    assert grounded.engine.privacy.forget_me(OTHER).gap_questions == 2
    assert gaps(grounded) == []


def test_forget_me_leaves_other_peoples_gaps_alone(grounded: Grounded) -> None:
    grounded.ask("How do I bake sourdough bread?", OTHER)
    report = grounded.engine.privacy.forget_me(grounded.member)
    assert report.gap_questions == 0
    assert "gaps lists" not in forget_text(report, grounded.member.user)
    assert gaps(grounded) == [("How do I bake sourdough bread?", 1)]


def test_log_retention_purges_old_declined_questions(grounded: Grounded) -> None:
    grounded.ask("What is the capital of Australia?")
    grounded.clock.advance(days=20)
    grounded.ask("Which city is the capital of Australia?", OTHER)
    grounded.ask("How do I bake sourdough bread?", OTHER)
    grounded.clock.advance(days=20)  # the first ask is 40 days old, the others 20
    grounded.engine.chat.purge_older_than(30)
    assert sorted(gaps(grounded)) == [("How do I bake sourdough bread?", 1),
                                      ("Which city is the capital of Australia?", 1)]
    grounded.clock.advance(days=20)
    grounded.engine.chat.purge_older_than(30)
    assert gaps(grounded) == []
