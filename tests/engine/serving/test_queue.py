"""engine/serving/queue.py: the waiting line shared fairly between workspaces."""

from __future__ import annotations

from engine.serving.queue import FairQueue


def test_a_workspace_alone_holds_at_most_half_so_another_always_gets_in() -> None:
    line: FairQueue[str] = FairQueue(lambda: 8)
    accepted = [line.put("slack:TA", f"a{i}") for i in range(8)]
    assert accepted == [True] * 4 + [False] * 4
    assert line.put("slack:TB", "b0") and line.put("slack:TB", "b1")
    assert line.held("slack:TB") == 2 and not line.put("slack:TB", "b2")  # 8 // (1 + 2)
    assert line.put("discord:G3", "c0")  # a third still finds room
    assert len(line) == 7


def test_requests_leave_one_workspace_at_a_time() -> None:
    line: FairQueue[str] = FairQueue(lambda: 64)
    for i in range(5):
        line.put("slack:TA", f"a{i}")
    line.put("slack:TB", "b0")
    line.put("slack:TB", "b1")
    line.put("discord:G3", "c0")
    assert line.take(5) == ["a0", "b0", "c0", "a1", "b1"]
    assert line.take(10) == ["a2", "a3", "a4"] and len(line) == 0


def test_requests_without_a_workspace_only_count_against_the_whole_line() -> None:
    line: FairQueue[int] = FairQueue(lambda: 3)
    assert [line.put("", i) for i in range(4)] == [True, True, True, False]
    assert not line.put("slack:TA", 9)  # full is full
    assert line.clear() == [0, 1, 2] and len(line) == 0
