"""Durable delivery in the command core: a watch recorded by one process is reported by any,
the end exactly once, even when the process holding it dies around the final post."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from bot.core.delivery import Deliveries
from bot.core.reply import Reply
from engine.app import Engine
from engine.jobs.backends import NullBackend
from engine.views import JobView
from storage import jobs as store

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class Place:
    """A chat place: what the sinks rebuilt from it posted (shared, as Slack would keep it)."""

    updates: list[str] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)


@dataclass
class Sink:
    place_: Place
    name: str

    def place(self) -> dict:
        return {"channel": self.name, "status_ts": "1.0"}

    def update(self, job: JobView, text: str) -> None:
        self.place_.updates.append(text)

    def finish(self, job: JobView, reply: Reply) -> None:
        self.place_.finals.append(reply.title)

    def delivered(self, job: JobView, reply: Reply) -> bool:
        return reply.title in self.place_.finals


@pytest.fixture
def world(settings):
    clock = {"now": NOW}
    engine = Engine.open(settings, clock=lambda: clock["now"], job_backend=NullBackend())
    engine.clock_value = clock
    yield engine
    engine.close()


def deliveries(engine: Engine, place: Place, owner: str) -> Deliveries:
    return Deliveries(engine, "slack", lambda p: Sink(place, p["channel"]), owner=owner,
                      min_interval_s=0.0)


def job(engine: Engine) -> int:
    return engine.jobs.submit("evaluate", "smollm2-135m-instruct", owner="slack:T1:U1",
                              workspace="slack:T1").id


def finish(engine: Engine, job_id: int) -> None:
    now = engine.clock()
    engine.db.retrying(lambda s: store.claim(s, job_id, "w", now, now))
    engine.db.retrying(lambda s: store.finish(s, job_id, "w", 1, "failed", now,
                                              error="The file has no test split."))


def test_any_process_reports_a_watch_and_the_end_once(world: Engine) -> None:
    place = Place()
    first, second = deliveries(world, place, "serve-1"), deliveries(world, place, "serve-2")
    job_id = job(world)
    first.follow(job_id, Sink(place, "D1"))
    first.poll_once()
    assert place.updates and place.updates[-1].startswith(f"Job {job_id}")
    second.poll_once()  # serve-1 holds the lease: serve-2 reports nothing
    assert len(place.updates) == 1
    finish(world, job_id)
    assert first.poll_once() == 1 and second.poll_once() == 0 and first.poll_once() == 0
    assert place.finals == [f"Job {job_id} failed"]
    assert world.watches.of_job(job_id)[0].state == "delivered"


def test_a_dead_holder_s_watch_is_taken_over_after_its_lease(world: Engine) -> None:
    place = Place()
    dead, alive = deliveries(world, place, "serve-dead"), deliveries(world, place, "serve-2")
    job_id = job(world)
    dead.follow(job_id, Sink(place, "D1"))
    dead.poll_once()  # holds it, then dies (never polls again)
    finish(world, job_id)
    assert alive.poll_once() == 0  # its lease still runs
    world.clock_value["now"] += timedelta(seconds=11)
    assert alive.poll_once() == 1
    assert place.finals == [f"Job {job_id} failed"]


@pytest.mark.parametrize("posted_before_dying", [True, False])
def test_an_end_left_half_done_is_posted_only_if_it_is_not_there(
        world: Engine, posted_before_dying: bool) -> None:
    place = Place()
    dead, alive = deliveries(world, place, "serve-dead"), deliveries(world, place, "serve-2")
    job_id = job(world)
    dead.follow(job_id, Sink(place, "D1"))
    finish(world, job_id)
    [watch] = world.watches.claim("slack", "serve-dead")
    assert world.watches.begin_finish(watch.id, "serve-dead")  # it was about to post ...
    if posted_before_dying:
        place.finals.append(f"Job {job_id} failed")  # ... and did, then died unrecorded
    world.clock_value["now"] += timedelta(seconds=11)
    alive.poll_once()
    assert place.finals == [f"Job {job_id} failed"]  # exactly once either way
    assert world.watches.of_job(job_id)[0].state == "delivered"
