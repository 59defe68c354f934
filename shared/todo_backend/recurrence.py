"""Cron schedules in a time zone, with Debian cron's rules for daylight-saving changes.

A schedule is evaluated on wall-clock time in its zone, then mapped to real instants:
- fixed-time schedules (minute and hour fields both not starting with `*`) fire once per matching wall
  time: a time skipped by spring-forward fires at the first instant after the gap (several skipped times
  collapse into that one firing); a time repeated by fall-back fires at the first of its two instants;
- every other schedule fires at each real instant whose wall time matches: twice in a repeated hour,
  never in a skipped one;
- day-of-month and day-of-week: if either field starts with `*` both must match, otherwise either may.

The fields are read here with cronie's grammar rather than by croniter, which reads a single-value range
(`5-5`, `9-9/2`) as the whole field and accepts ranges that run backwards. Every evaluation is bounded:
it looks at most HORIZON_DAYS ahead and takes at most MAX_STEPS steps (a schedule that finds no firing
within them is refused, never walked to the year 9999).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # day-of-week 7 is Sunday, as 0 is
_NAMES = {
    3: {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)},
    4: {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())},
}
# The calendar repeats every 28 years (between non-leap century years), so a schedule that has not fired
# within 28 years never will: `0 0 29 2 */7` (29 February on a Sunday) is the rarest that still fires.
HORIZON_YEARS = 28
HORIZON_DAYS = 28 * 365 + 7
# Steps one next_after may take: a day looked at costs 1, a wall time tried WALL_STEPS (it costs about
# 7 times as much CPU: two zone conversions each way). A schedule that fires needs at most about twice
# HORIZON_DAYS (its rarest gap, scanned at most twice) plus three passes over the 540 minutes around a
# daylight-saving change; MAX_STEPS is about 25 ms of CPU on the machine this was measured on, whatever
# mix of days and wall times spends it.
WALL_STEPS = 8
MAX_STEPS = 30_000
# How far ahead next_after looks for a change of offset before trusting wall time to run forward.
_NEAR = timedelta(hours=3)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)


class InvalidSchedule(ValueError):
    """A schedule or time zone users must correct; the message says how."""


@functools.cache
def zone_names() -> frozenset[str]:
    # The tzdata package's own list: zoneinfo.available_timezones() also reads the host's zone files,
    # where `localtime` and `posixrules` mean whatever the host is set to. `Factory` is no place.
    names = importlib.resources.files("tzdata").joinpath("zones").read_text().split()
    return frozenset(names) - {"Factory"}


def zone(name: str) -> ZoneInfo:
    if name not in zone_names():
        raise InvalidSchedule(f"unknown time zone {name!r}; use an IANA name such as Europe/London")
    return ZoneInfo(name)


class Budget:
    """The steps left to one evaluation; running out means the schedule is refused."""

    def __init__(self, steps: int = MAX_STEPS) -> None:
        self.left = steps

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise InvalidSchedule(f"the schedule takes more than {MAX_STEPS} steps to work out; simplify it")


def _value(index: int, text: str) -> int:
    names = _NAMES.get(index, {})
    if text.upper() in names:
        return names[text.upper()]
    if not text.isascii() or not text.isdigit():
        if any(c in text for c in "LW#?"):
            raise InvalidSchedule("only standard cron syntax is supported (no L, W, # or ?)")
        raise InvalidSchedule(f"the {FIELDS[index]} field has {text!r}, which is not a number")
    low, high = _BOUNDS[index]
    if not low <= int(text) <= high:
        raise InvalidSchedule(f"the {FIELDS[index]} field must be from {low} to {high}, not {text}")
    return int(text)


def _field(index: int, text: str) -> frozenset[int]:
    """The values one field matches: a comma list of `*`, `a` or `a-b`, each with an optional `/step`."""
    values: set[int] = set()
    for term in text.split(","):
        body, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) == 0:
                raise InvalidSchedule(
                    f"the {FIELDS[index]} field has step {step_text!r}; use a whole number >= 1"
                )
            step = int(step_text)
        if body == "*":
            start, end = _BOUNDS[index]
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _value(index, a), _value(index, b)
            if start > end:
                raise InvalidSchedule(f"the {FIELDS[index]} field has {body!r}, a range that runs backwards")
        else:
            start = _value(index, body)
            end = _BOUNDS[index][1] if slash else start  # `a/step` is `a-max/step`, as in cronie
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _expand(expression: str) -> str:
    expression = " ".join(expression.split())
    if expression.startswith("@"):
        if expression not in ALIASES:
            raise InvalidSchedule(
                f"{expression} is not supported; use a 5-field expression or one of {', '.join(ALIASES)}"
            )
        return ALIASES[expression]
    count = len(expression.split(" ")) if expression else 0
    if count != 5:
        seconds = "; seconds are not supported" if count == 6 else ""
        raise InvalidSchedule(
            f"a schedule has 5 fields (minute hour day-of-month month day-of-week), this one has {count}"
            + seconds
        )
    return expression


@dataclass(frozen=True)
class Schedule:
    expression: str  # the 5-field form
    tz: ZoneInfo
    minutes: tuple[int, ...] = field(compare=False)
    hours: tuple[int, ...] = field(compare=False)
    days: frozenset[int] = field(compare=False)
    months: frozenset[int] = field(compare=False)
    weekdays: frozenset[int] = field(compare=False)  # 0 is Sunday

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Schedule:
        expanded = _expand(expression)
        minutes, hours, days, months, weekdays = (_field(i, f) for i, f in enumerate(expanded.split(" ")))
        return cls(
            expanded, zone(timezone), tuple(sorted(minutes)), tuple(sorted(hours)), days, months, weekdays
        )

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

    def _day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        return (dom or dow) if self._day_or else (dom and dow)

    def _walls(self, after: datetime, last: date, budget: Budget) -> Iterator[datetime]:
        """Matching wall-clock times (naive) strictly after the naive wall time `after`, in order, up to
        the day `last`; past that the schedule is refused as one that never fires."""
        day = after.date()
        while day <= last:
            budget.spend()
            if day.month not in self.months:  # on to the first of the next month
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                continue
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        wall = datetime(day.year, day.month, day.day, hour, minute)
                        if wall > after:
                            budget.spend(WALL_STEPS)
                            yield wall
            day += _DAY
        raise InvalidSchedule(
            f"the schedule never fires in {self.tz.key} within {HORIZON_YEARS} years; check its fields"
        )

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def _firings(self, wall: datetime) -> tuple[list[datetime], datetime | None]:
        """The real instants (UTC) at which the matching wall time `wall` fires, and when it is skipped by
        a spring-forward gap, the instant the gap ends."""
        instants = sorted({wall.replace(tzinfo=self.tz, fold=f).astimezone(UTC) for f in (0, 1)})
        real = [i for i in instants if self._wall(i) == wall]
        if not real:
            end = self._gap_end(instants[0], instants[-1])
            return ([end] if self.fixed_time else []), end
        return (real[:1] if self.fixed_time else real), None

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

    def next_after(self, instant: datetime, budget: Budget | None = None) -> datetime:
        """The first firing strictly after `instant` (aware), in UTC. O(1) in how far back `instant` is;
        InvalidSchedule if there is none within HORIZON_DAYS or finding it takes more than the budget."""
        if instant.tzinfo is None:
            raise ValueError("naive datetime")
        budget = budget or Budget()
        last = self._wall(instant).date() + timedelta(days=HORIZON_DAYS)
        while True:
            offset, later = (i.astimezone(self.tz).utcoffset() for i in (instant, instant + _NEAR))
            assert offset is not None and later is not None
            if offset == later:
                # No transition just ahead: wall time runs forward, so the first matching wall time
                # after now fires first (a skipped one only if this is not a fixed-time schedule).
                return self._first_forward(instant, last, budget)
            # A transition just ahead: the wall times of the next _NEAR run from now, less what the
            # clock turns back (a day, once, in Kwajalein), to where it stands after it. Take the first
            # of their firings that falls in that stretch; if none does, go on from its end.
            start = self._wall(instant) - max(offset - later, timedelta(0)) - _MINUTE
            end = max(self._wall(instant) + _NEAR, self._wall(instant + _NEAR))
            found = []
            for wall in self._walls(start, last, budget):
                if wall > end:
                    break
                found += [f for f in self._firings(wall)[0] if instant < f <= instant + _NEAR]
            if found:
                return min(found)
            instant += _NEAR

    def _first_forward(self, instant: datetime, last: date, budget: Budget) -> datetime:
        after = self._wall(instant)
        while True:
            for wall in self._walls(after, last, budget):
                firings, gap_end = self._firings(wall)
                later = [f for f in firings if f > instant]
                if later:
                    return later[0]
                if gap_end is not None:
                    # The rest of the gap is skipped too: go on from its end, not minute by minute.
                    after = self._wall(gap_end) - _MINUTE
                    break

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        while len(out) < count:
            after = self.next_after(after)
            out.append(after)
        return out

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        """How many firings fall in (start, end], counting at most `cap` and taking at most MAX_STEPS
        steps in all (the bound on catch-up work): a lower bound when either runs out."""
        budget, n = Budget(), 0
        try:
            while n < cap:
                start = self.next_after(start, budget)
                if start > end:
                    break
                n += 1
        except InvalidSchedule:
            pass  # out of steps: what was counted stands
        return n
