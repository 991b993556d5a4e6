"""When a recurring schedule fires: a cron expression read in a time zone, DST handled.

A schedule names *wall-clock times* in its zone ("09:00 every Monday, Berlin time"). cronsim
(a parser that follows Debian cron) lists the matching wall-clock times; this module turns
each into exactly one instant, by one rule for every expression:

* a time that exists once is that instant;
* a time the clocks pass twice (the repeated hour when DST ends) fires once, at its first
  pass (summer time): 01:30 on New York's fall-back day is 05:30 UTC, never also 06:30;
* a time the clocks skip (the hour lost when DST starts) fires at the first instant after
  the jump: 02:30 on Berlin's spring-forward day fires at 03:00 CEST. Several skipped times
  land on that same instant and fire once.

So across a DST change no occurrence is skipped and none is doubled. (cronsim's own
zone-aware mode copies Debian, which applies that rule only to expressions with a fixed
minute and hour; ``*/30 2 * * *`` would then run four times on Berlin's fall-back day and
not at all on its spring-forward day. Iterating naive wall-clock times and mapping them
here avoids that.) Everything is a pure function of its arguments: no clock is read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from threadcast.errors import ValidationError

MAX_CRON_LENGTH = 200
#: The longest clock jump searched for the end of a DST gap (Samoa skipped a whole day).
_LONGEST_GAP = timedelta(days=2)


@functools.lru_cache(maxsize=256)
def zone(field: str, name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``), or a ValidationError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            field, name, "is not a known IANA time zone (like Europe/Berlin, America/New_York, UTC)"
        ) from None


def _check_cron(field: str, cron: str, start: datetime) -> None:
    if not isinstance(cron, str) or not cron.strip() or len(cron) > MAX_CRON_LENGTH:
        raise ValidationError(
            field, cron, f"must be a cron expression of 1-{MAX_CRON_LENGTH} characters"
        )
    try:
        CronSim(cron, start)
    except (CronSimError, ValueError, IndexError) as exc:
        raise ValidationError(
            field,
            cron,
            f"is not a valid cron expression ({exc or 'bad field'}); the fields are "
            "[second] minute hour day-of-month month day-of-week, like '0 9 * * MON'",
        ) from None


@dataclass(frozen=True)
class Recurrence:
    """A validated cron expression in a time zone."""

    cron: str
    zone: ZoneInfo

    @classmethod
    def parse(
        cls, cron: str, timezone: str, *, cron_field: str = "cron", tz_field: str = "timezone"
    ) -> Recurrence:
        """Validate both; errors are ValidationErrors naming the field and the value."""
        found = zone(tz_field, timezone)
        cron = " ".join(cron.split()) if isinstance(cron, str) else cron
        _check_cron(cron_field, cron, datetime(2000, 1, 1))
        return cls(cron, found)

    def after(self, instant: datetime) -> Iterator[datetime]:
        """The occurrences strictly after ``instant``, as UTC instants, in order."""
        last = instant.astimezone(UTC)
        wall = instant.astimezone(self.zone).replace(tzinfo=None)
        for wall_time in CronSim(self.cron, wall):
            at = instant_of(wall_time, self.zone)
            # A wall time in the repeated hour maps to its first pass, which may lie before
            # ``instant``; several times in a skipped hour map to one instant.
            if at > last:
                last = at
                yield at

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """At most ``limit`` occurrences in ``(start, end]``, earliest first."""
        found: list[datetime] = []
        for at in self.after(start):
            if at > end or len(found) >= limit:
                break
            found.append(at)
        return found

    def next(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` occurrences after ``after`` (fewer if it stops firing)."""
        found: list[datetime] = []
        for at in self.after(after):
            found.append(at)
            if len(found) >= count:
                break
        return found

    def fires_at(self, instant: datetime) -> bool:
        """Whether ``instant`` is one of the occurrences."""
        instant = instant.astimezone(UTC)
        return self.next(instant - timedelta(microseconds=1), 1) == [instant]


def instant_of(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) a naive wall-clock time fires at in ``tz``, by the module's rule."""
    first_pass = wall.replace(tzinfo=tz, fold=0)
    if _exists(first_pass):
        return first_pass.astimezone(UTC)
    # Skipped by a clock jump: the first whole minute after the jump that exists.
    probe = wall.replace(second=0, microsecond=0)
    limit = probe + _LONGEST_GAP
    while not _exists(probe.replace(tzinfo=tz)) and probe < limit:
        probe += timedelta(minutes=1)
    return probe.replace(tzinfo=tz).astimezone(UTC)


def _exists(local: datetime) -> bool:
    """Whether the clocks of ``local``'s zone ever show this wall time (no DST gap)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)
