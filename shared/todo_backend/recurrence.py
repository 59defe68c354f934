"""Cron schedules in a time zone, with Debian cron's rules for daylight-saving changes.

A schedule is evaluated on wall-clock time in its zone, then mapped to real instants:
- fixed-time schedules (minute and hour fields both not starting with `*`) fire once per matching wall
  time: a time skipped by spring-forward fires at the first instant after the gap (several skipped times
  collapse into that one firing); a time repeated by fall-back fires at the first of its two instants;
- every other schedule fires at each real instant whose wall time matches: twice in a repeated hour,
  never in a skipped one;
- day-of-month and day-of-week: if either field starts with `*` both must match, otherwise either may.
croniter alone would fire a fixed-time schedule twice on a fall-back day; this module does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Wider than any daylight-saving shift in the tz database (2 h at most): a transition within this of
# an instant can reorder wall times around it.
_NEAR = timedelta(hours=3)
_MINUTE = timedelta(minutes=1)


class InvalidSchedule(ValueError):
    """A schedule or time zone users must correct; the message says how."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"unknown time zone {name!r}; use an IANA name such as Europe/London") from exc


def _expand(expression: str) -> str:
    expression = " ".join(expression.split())
    if expression.startswith("@"):
        if expression not in ALIASES:
            raise InvalidSchedule(
                f"{expression} is not supported; use a 5-field expression or one of {', '.join(ALIASES)}"
            )
        return ALIASES[expression]
    fields = expression.split(" ")
    if len(fields) != 5:
        raise InvalidSchedule(
            "a schedule has 5 fields (minute hour day-of-month month day-of-week); seconds are not supported"
        )
    if any(c in expression for c in "LW#?"):
        raise InvalidSchedule("only standard cron syntax is supported (no L, W, # or ?)")
    if not croniter.is_valid(expression):
        raise InvalidSchedule(f"{expression!r} is not a valid cron expression")
    return expression


@dataclass(frozen=True)
class Schedule:
    expression: str  # the 5-field form
    tz: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Schedule:
        return cls(_expand(expression), zone(timezone))

    @property
    def fields(self) -> list[str]:
        return self.expression.split(" ")

    @property
    def fixed_time(self) -> bool:
        minute, hour = self.fields[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    @property
    def _day_or(self) -> bool:
        dom, dow = self.fields[2], self.fields[4]
        return not (dom.startswith("*") or dow.startswith("*"))

    def _walls(self, after: datetime) -> Iterator[datetime]:
        """Matching wall-clock times (naive) strictly after the naive wall time `after`."""
        it = croniter(self.expression, after, day_or=self._day_or)
        while True:
            yield it.get_next(datetime)

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def _firings(self, wall: datetime) -> list[datetime]:
        """The real instants (UTC) at which the matching wall time `wall` fires."""
        instants = sorted({wall.replace(tzinfo=self.tz, fold=f).astimezone(UTC) for f in (0, 1)})
        real = [i for i in instants if self._wall(i) == wall]
        if not real:  # skipped by a spring-forward gap
            return [self._gap_end(instants[0], instants[-1])] if self.fixed_time else []
        return real[:1] if self.fixed_time else real

    def _gap_end(self, before: datetime, after: datetime) -> datetime:
        """The first instant after the gap: where the offset changes, between two whole minutes."""
        target = after.astimezone(self.tz).utcoffset()
        lo, hi = 0, int((after - before) / _MINUTE)  # before has the old offset, after the new
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (before + mid * _MINUTE).astimezone(self.tz).utcoffset() == target:
                hi = mid
            else:
                lo = mid
        return before + hi * _MINUTE

    def next_after(self, instant: datetime) -> datetime:
        """The first firing strictly after `instant` (aware), in UTC. O(1) in how far back `instant` is."""
        if instant.tzinfo is None:
            raise ValueError("naive datetime")
        while True:
            if instant.astimezone(self.tz).utcoffset() == (instant + _NEAR).astimezone(self.tz).utcoffset():
                # No transition just ahead: wall time runs forward, so the first matching wall time
                # after now fires first (a skipped one only if this is not a fixed-time schedule).
                for wall in self._walls(self._wall(instant)):
                    later = [f for f in self._firings(wall) if f > instant]
                    if later:
                        return later[0]
            # Near a transition, wall times can repeat: look at every wall time around it.
            start = self._wall(instant) - _NEAR
            end = start + 3 * _NEAR
            found = []
            for wall in self._walls(start):
                if wall > end:
                    break
                found += [f for f in self._firings(wall) if f > instant]
            if found:
                return min(found)
            instant += _NEAR  # every firing up to here was at or before `instant`

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        while len(out) < count:
            after = self.next_after(after)
            out.append(after)
        return out

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        """How many firings fall in (start, end], counting at most `cap` (the bound on catch-up work)."""
        n = 0
        while n < cap:
            start = self.next_after(start)
            if start > end:
                break
            n += 1
        return n
