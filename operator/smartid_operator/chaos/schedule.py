"""``spec.chaos.schedule``: when the next scheduled run is due, and its name (pure).

Schedules are evaluated in UTC. A fire time missed while the operator was down is not made up
(the first sight of a schedule starts counting from then), and a run's name is derived from
its fire time, so an operator restarted within the same minute cannot create it twice.
"""

from __future__ import annotations

import datetime

from croniter import croniter

SCHEDULED_LABEL = "smartid.io/scheduled"
KEEP_SCHEDULED = 10  # finished scheduled runs kept per database; older ones are deleted


def next_after(schedule: str, moment: datetime.datetime) -> datetime.datetime:
    """The first fire time strictly after ``moment`` (UTC)."""
    it = croniter(schedule, moment.astimezone(datetime.UTC))
    nxt: datetime.datetime = it.get_next(datetime.datetime)
    return nxt.astimezone(datetime.UTC)


def due(schedule: str, since: datetime.datetime, now: datetime.datetime
        ) -> datetime.datetime | None:
    """The latest fire time in (since, now], or None: several missed ones make one run."""
    fire = next_after(schedule, since)
    if fire > now:
        return None
    while True:
        following = next_after(schedule, fire)
        if following > now:
            return fire
        fire = following


def run_name(database: str, fire: datetime.datetime) -> str:
    """``<database>-s<YYYYMMDDHHMM>``, within the run CRD's 50 characters."""
    stem = database[:36].replace(".", "-").rstrip("-")
    return f"{stem}-s{fire.astimezone(datetime.UTC):%Y%m%d%H%M}"
