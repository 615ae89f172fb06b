"""Schedule specs: daily, weekly, off or a cron line, and when each fires next."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine.errors import InvalidInput

NAMED_SPECS = {"daily": "0 3 * * *", "weekly": "0 3 * * 1"}
SPEC_HELP = "Use now, daily, weekly, off, or a 5-field cron like '0 3 * * 1'."


def cron_for(spec: str) -> str:
    """The cron expression of a schedule spec; InvalidInput for anything else."""
    cron = NAMED_SPECS.get(spec, spec)
    if len(cron.split()) != 5:
        raise InvalidInput(f"'{spec}' is not a schedule. {SPEC_HELP}")
    try:
        trigger(cron)
    except ValueError as exc:
        raise InvalidInput(f"'{spec}' is not a valid cron expression ({exc}). {SPEC_HELP}") from None
    return cron


def trigger(cron: str):
    """An APScheduler CronTrigger for a standard 5-field cron line.

    APScheduler 3 counts weekdays from Monday = 0, while cron counts from Sunday = 0, so the
    day-of-week numbers are turned into names first ("1" stays Monday, as in crontab)."""
    import re

    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, weekday = cron.split()
    names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    weekday = re.sub(r"(?<![/\d])(\d+)",
                     lambda m: names[int(m.group(1))] if int(m.group(1)) <= 7 else m.group(1),
                     weekday)
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday,
                       timezone=timezone.utc)


def next_fire(spec: str, after: datetime) -> datetime | None:
    if spec == "off":
        return None
    return trigger(cron_for(spec)).get_next_fire_time(None, after + timedelta(seconds=1))


def latest_fire(spec: str, since: datetime, now: datetime) -> datetime | None:
    """The newest fire time in (since, now], or None: missed slots collapse into one run."""
    latest = None
    moment = next_fire(spec, since)
    while moment is not None and moment <= now:
        latest = moment
        moment = next_fire(spec, moment)
    return latest
