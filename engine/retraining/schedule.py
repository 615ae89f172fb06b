"""Schedule specs and when they fire: daily, weekly, off, a crontab macro (@weekly) or a
standard five-field cron line, with cron's own rules (ranges, lists, steps, month and
weekday names, 0 and 7 both Sunday, and day-of-month OR day-of-week when both are set).

The arithmetic is cronsim's (the evaluator Healthchecks uses, written to match Debian's
cron); APScheduler only runs the timer, through CronTrigger below. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from apscheduler.triggers.base import BaseTrigger
from cronsim import CronSim, CronSimError

from engine.errors import InvalidInput

NAMED_SPECS = {"daily": "0 3 * * *", "weekly": "0 3 * * 1"}
"""The store's own names: every day at 03:00, every Monday at 03:00 (UTC)."""
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
"""crontab(5)'s macros, as crontab defines them."""
SPEC_HELP = ("Use now, daily, weekly, off, @weekly (or another crontab macro), or a "
             "5-field cron line like '0 3 * * 1' or '*/15 9-17 * * mon-fri'.")


def cron_for(spec: str) -> str:
    """The cron line of a schedule spec; InvalidInput, in one sentence, for anything else."""
    spec = " ".join((spec or "").split())
    cron = NAMED_SPECS.get(spec.lower()) or MACROS.get(spec.lower()) or spec
    if len(cron.split()) != 5:
        raise InvalidInput(f"'{spec}' is not a schedule: a cron line has 5 fields (minute, "
                           f"hour, day of month, month, day of week). {SPEC_HELP}")
    try:
        next(CronSim(cron, datetime(2000, 1, 1, tzinfo=timezone.utc)))
    except CronSimError as exc:
        raise InvalidInput(f"'{spec}' is not a valid cron line ({str(exc).lower()}). "
                           f"{SPEC_HELP}") from None
    except StopIteration:
        raise InvalidInput(f"'{spec}' never fires (no such date in 50 years). "
                           f"{SPEC_HELP}") from None
    return cron


def next_fires(spec: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` fire times strictly after `after` ([] for "off")."""
    if spec == "off":
        return []
    runs = CronSim(cron_for(spec), _utc(after))
    found = []
    for _ in range(count):
        try:
            found.append(next(runs))
        except StopIteration:
            break
    return found


def next_fire(spec: str, after: datetime) -> datetime | None:
    fires = next_fires(spec, after, 1)
    return fires[0] if fires else None


def latest_fire(spec: str, since: datetime, now: datetime) -> datetime | None:
    """The newest fire time in (since, now], or None: missed slots collapse into one run."""
    if spec == "off":
        return None
    try:  # backwards from just after now, so a slot at exactly `now` counts
        latest = next(CronSim(cron_for(spec), _utc(now) + timedelta(seconds=1), reverse=True))
    except StopIteration:
        return None
    return latest if latest > _utc(since) else None


class CronTrigger(BaseTrigger):
    """An APScheduler trigger that fires when a cron line does, by cron's rules."""

    def __init__(self, cron: str) -> None:
        self.cron = cron_for(cron)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        start = max(previous_fire_time, now) if previous_fire_time else now
        try:
            return next(CronSim(self.cron, _utc(start)))
        except StopIteration:
            return None

    def __str__(self) -> str:
        return f"cron[{self.cron}]"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else \
        moment.astimezone(timezone.utc)
