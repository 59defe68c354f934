"""recurrence.Schedule against cronsim, an independent implementation of cronie's rules, over generated
expressions (single values, ranges including single-value ones, steps, lists, names, day-of-month and
day-of-week combinations, and malformed fields) in IANA zones with daylight saving and odd offsets,
from instants spread over decades and crowded around their transitions.

Every disagreement fails. Where cronsim's rules differ from ours (read from its source, cronsim/cronsim.py)
the oracle maps them, and only these three:
- cronsim reads a stepped single-value range `a-a/s` as `a/s` (`a-max/s`, cronsim.py Field.parse: a
  one-item set before `/` becomes a start), where cronie's get_range sets the bits from a to a: {a}. The
  oracle hands cronsim `a-a` for it, which cronsim reads as {a};
- a fixed-time schedule (minute and hour not starting with `*`) is iterated on naive wall time, so from an
  instant in the second pass of a repeated hour it can return the first pass, which is in the past: both
  say the repeated hour fires once, at its first instant, so that result is not a next firing;
- for other schedules it builds midnight with datetime.combine, which in zones whose clocks jump at
  midnight (America/Santiago, America/Havana, Asia/Tehran) is a wall time that does not exist: our rule
  (and Debian cron's) is that such a schedule never fires in a skipped time, so that result is dropped,
  unless the wall time the instant really has (01:00) matches as well: cronsim goes on after it.
Zones whose clocks change other than on a whole wall-clock hour are not compared: cronsim moves to the
next matching hour in steps of real hours (advance_hour ticks 3600 s), which there land off the hour
and step over part of the day. In Australia/Lord_Howe (a 30-minute shift) it answers 09:30 for
`* 9 * * *` where 09:00 fires; in Pacific/Chatham (changes at 02:45) it skips the repeated 02:45-03:00
for `* */2 * * *`. Both have cases of their own below.
cronsim looks 50 years ahead, we look HORIZON_DAYS: beyond ours, the oracle's firing must not exist.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError
from cronsim.cronsim import is_imaginary
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from todo_backend.recurrence import HORIZON_DAYS, MAX_STEPS, Budget, InvalidSchedule, Schedule

ZONES = [
    "UTC",
    "America/New_York",  # 02:00 gap and repeat
    "Europe/London",
    "Europe/Dublin",  # negative daylight saving in the tz database
    "Australia/Sydney",  # southern hemisphere
    "Asia/Kolkata",  # +05:30, no daylight saving
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 with daylight saving
    "America/Santiago",  # transitions at midnight
    "America/Havana",  # midnight repeated
    "Asia/Tehran",  # midnight transitions until 2022
    "Africa/Casablanca",  # Ramadan: two extra transitions a year
    "Antarctica/Troll",  # a 2-hour shift
    "Pacific/Apia",  # the whole of 2011-12-30 skipped
    "America/Asuncion",
]
BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
NAMES = [
    None,
    None,
    None,
    "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(),
    "SUN MON TUE WED THU FRI SAT".split(),
]
FIRST, LAST = datetime(1995, 1, 1, tzinfo=UTC), datetime(2060, 1, 1, tzinfo=UTC)
REFUSED = "refused"


@functools.cache
def transitions(name: str) -> list[datetime]:
    """The zone's changes of offset from FIRST to LAST, to the minute."""
    tz, out, step = ZoneInfo(name), [], timedelta(days=7)
    t = FIRST
    while t < LAST:
        if t.astimezone(tz).utcoffset() != (t + step).astimezone(tz).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += step
    return out


@st.composite
def field(draw: st.DrawFn, index: int) -> str:
    low, high = BOUNDS[index]
    value = st.integers(low, high)

    def number(n: int) -> str:
        names = NAMES[index]
        if names and n < len(names) + (index == 3) and draw(st.integers(0, 4)) == 0:
            return names[n - 1 if index == 3 else n].lower() if index == 3 else names[n]
        return str(n)

    terms = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["*", "*/s", "a", "a-a", "a-a/s", "a-b", "a-b/s", "a/s", "hostile"]))
        a = draw(value)
        b = draw(st.integers(a, high))
        s = draw(st.integers(1, high - low + 3))
        term = {
            "*": "*",
            "*/s": f"*/{s}",
            "a": number(a),
            "a-a": f"{number(a)}-{number(a)}",
            "a-a/s": f"{number(a)}-{number(a)}/{s}",
            "a-b": f"{number(a)}-{number(b)}",
            "a-b/s": f"{number(a)}-{number(b)}/{s}",
            "a/s": f"{number(a)}/{s}",
            "hostile": draw(
                st.sampled_from(
                    [f"{b + 1}-{a}" if b + 1 <= high else f"{high}-{low}", f"{high + 1}", "*/0", "", "-"]
                )
            ),
        }[kind]
        terms.append(term)
    return ",".join(terms)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    # Mostly one restricted field or two, so that many expressions fire often enough to compare.
    fields = []
    for i in range(5):
        fields.append(
            draw(field(i)) if draw(st.integers(0, 2)) == 0 else draw(st.sampled_from(["*", field_default(i)]))
        )
    return " ".join(fields)


def field_default(index: int) -> str:
    return ["0", "9", "*", "*", "*"][index]


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    found = transitions(zone)
    if found and draw(st.booleans()):
        # Around a transition: where wall time repeats or skips.
        at = draw(st.sampled_from(found)) + timedelta(minutes=draw(st.integers(-26 * 60, 26 * 60)))
    else:
        at = draw(st.datetimes(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None))).replace(tzinfo=UTC)
    return at.replace(microsecond=draw(st.sampled_from([0, 0, 500_000])))


def for_cronsim(expression: str) -> str:
    """`a-a/s` as cronie reads it, {a}, spelled so that cronsim reads it so too."""

    def value(index: int, text: str) -> str:
        names = NAMES[index]
        if names and text.upper() in names:
            return str(names.index(text.upper()) + (index == 3))
        return text

    def term(index: int, text: str) -> str:
        body, slash, _ = text.partition("/")
        low, dash, high = body.partition("-")
        if slash and dash and value(index, low) == value(index, high):
            return body
        return text

    fields = expression.split()
    return " ".join(",".join(term(i, t) for t in f.split(",")) for i, f in enumerate(fields))


def oracle(expression: str, zone: str, instant: datetime) -> Iterator[datetime]:
    """cronsim's firings strictly after `instant`, mapped as the module docstring says (UTC)."""
    tz = ZoneInfo(zone)
    expression = for_cronsim(expression)
    fixed = not expression.split()[0].startswith("*") and not expression.split()[1].startswith("*")
    last = instant
    for result in CronSim(expression, instant.astimezone(tz)):
        at = result.astimezone(UTC)
        if not fixed and is_imaginary(result):
            # The instant it stands for is real, at another wall time (01:00 for a skipped midnight),
            # and cronsim goes on after that one: it fires there if that wall time matches too, which
            # cronsim answers on naive wall time, where nothing is skipped.
            real = at.astimezone(tz).replace(tzinfo=None)
            if next(CronSim(expression, real - timedelta(minutes=1))) != real:
                continue
        if at > last:
            last = at
            yield at


def ours(schedule: Schedule, instant: datetime) -> datetime | None:
    """The next firing, or None for "never fires within the horizon"; never out of steps."""
    budget = Budget()
    try:
        return schedule.next_after(instant, budget)
    except InvalidSchedule as exc:
        assert "never fires" in str(exc), exc  # the step cap is a safety net no real schedule reaches
        return None
    finally:
        assert budget.left >= 0 and MAX_STEPS - budget.left <= MAX_STEPS


def test_the_cronsim_mapping_only_rewrites_stepped_single_value_ranges() -> None:
    assert for_cronsim("5-5/2 9-9/1,1-2/3 * JAN-JAN/2 *") == "5-5 9-9,1-2/3 * JAN-JAN *"
    assert for_cronsim("15-5/2 5-55/2 */5 1/1 0-7") == "15-5/2 5-55/2 */5 1/1 0-7"
    assert for_cronsim("0 0 * jan-1/2 sun-0/3") == "0 0 * jan-1 sun-0"


def horizon(schedule: Schedule, instant: datetime) -> date:
    return instant.astimezone(schedule.tz).date() + timedelta(days=HORIZON_DAYS)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), expression=expressions(), zone=st.sampled_from(ZONES))
def test_next_firings_agree_with_cronsim(data: st.DataObject, expression: str, zone: str) -> None:
    for label in agree_with_cronsim(expression, zone, data.draw(instants(zone))):
        event(label)


@pytest.mark.parametrize(
    ("expression", "zone", "after"),
    [
        ("* 2 8-14 3 */7", "America/New_York", "2026-01-01T00:00"),  # only inside the gap: never fires
        ("0 0 29 2 */7", "UTC", "2004-02-29T00:00"),  # 29 February on a Sunday: 28 years later
        ("0 0 29 2 */7", "UTC", "2004-02-29T00:01"),  # ... and a minute too late for it: none within
        ("0 0 30 2 *", "Europe/Berlin", "2026-01-01T00:00"),  # refused by cronsim, never fires here
        ("5-5 * * * *", "UTC", "2026-01-01T00:00"),
        ("0 9-9 * * *", "Asia/Kathmandu", "2026-01-01T00:00"),
        ("0 0 * * 1-1", "America/St_Johns", "2026-01-01T00:00"),
        ("5-5/2 9-9/3 * * *", "UTC", "2026-01-01T00:00"),
        ("30 2 * * *", "America/New_York", "2025-03-09T06:00"),  # the gap: 03:00 once
        ("30 1 * * *", "America/New_York", "2025-11-02T06:10"),  # second pass of 01:xx: next day
        ("*/20 1 * * *", "America/New_York", "2025-11-02T05:50"),  # both passes
        ("* 0 * * *", "America/Santiago", "2025-09-06T23:00"),  # midnight skipped
        ("30 1 * * *", "Pacific/Apia", "2011-12-29T10:00"),  # the skipped day
        ("* * * * *", "Pacific/Apia", "2011-12-30T09:30"),
    ],
)
def test_known_cases_agree_with_cronsim(expression: str, zone: str, after: str) -> None:
    agree_with_cronsim(expression, zone, datetime.fromisoformat(after).replace(tzinfo=UTC))


def agree_with_cronsim(expression: str, zone: str, instant: datetime) -> list[str]:
    """Fails on any disagreement; returns what happened, for hypothesis's statistics."""
    try:
        schedule = Schedule.parse(expression, zone)
    except InvalidSchedule:
        schedule = None
    labels = ["refused by us" if schedule is None else "read by us"]
    try:
        theirs = oracle(expression, zone, instant)
        first = next(theirs, None)
    except CronSimError:
        # cronsim refuses malformed fields and a day-of-month no month has (both must match): we refuse
        # the first, and find that the second never fires.
        assert schedule is None or ours(schedule, instant) is None, expression
        return labels
    assert schedule is not None, f"{expression!r} refused, but cronsim reads it"
    expected = first
    for _ in range(4):  # a few firings in a row: across transitions, not only the first after one
        got = ours(schedule, instant)
        if expected is not None and expected.astimezone(schedule.tz).date() > horizon(schedule, instant):
            expected = None  # beyond our horizon: we say it never fires
        assert got == expected, f"{expression!r} in {zone} after {instant.isoformat()}"
        labels.append("fired" if got is not None else "never fires")
        if got is None:
            return labels
        instant, expected = got, next(theirs, None)
    return labels


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 1995-03-05 02:00 +11:00 turned back to 01:30 +10:30 (15:00 UTC).
        ("* 9 * * *", "1995-03-04T15:00:26", "1995-03-04T22:30"),  # 09:00 +10:30
        ("* 9 * * *", "1995-03-04T14:59:26", "1995-03-04T22:30"),
        ("*/20 1 * * *", "1995-03-04T14:35", "1995-03-04T14:40"),  # 01:40 +11:00, first pass
        ("*/20 1 * * *", "1995-03-04T14:40", "1995-03-04T15:10"),  # 01:40 again, +10:30: second pass
        ("30 1 * * *", "1995-03-04T14:30", "1995-03-05T15:00"),  # fixed time: the repeat fires once
    ],
)
def test_lord_howe_half_hour_shift(expression: str, after: str, expected: str) -> None:
    schedule = Schedule.parse(expression, "Australia/Lord_Howe")
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert schedule.next_after(start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 1995-03-19 03:45 +13:45 turned back to 02:45 +12:45 (14:00 UTC): 02:45-03:45 twice.
        ("* */2 * * *", "1995-03-18T13:59:08", "1995-03-18T14:00"),  # 02:45 again, second pass
        ("*/15 3 * * *", "1995-03-18T13:55", "1995-03-18T14:15"),  # 03:00, second pass
        ("0 3 * * *", "1995-03-18T13:14", "1995-03-18T13:15"),  # fixed: 03:00, first pass only
        ("0 3 * * *", "1995-03-18T13:15", "1995-03-19T14:15"),
        # 1995-10-01 02:45 +12:45 turned forward to 03:45 +13:45 (14:00 UTC on 30 September).
        ("15 3 * * *", "1995-09-30T13:00", "1995-09-30T14:00"),  # fixed, in the gap: its end
        ("*/15 3 * * *", "1995-09-30T13:00", "1995-09-30T14:00"),  # 03:45: the gap's matches skipped
    ],
)
def test_chatham_changes_at_quarter_to(expression: str, after: str, expected: str) -> None:
    schedule = Schedule.parse(expression, "Pacific/Chatham")
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert schedule.next_after(start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)
