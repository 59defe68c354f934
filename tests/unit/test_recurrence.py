"""recurrence.Schedule: cron in a time zone with Debian cron's daylight-saving rules, month ends, leap days,
day-of-month/day-of-week matching, aliases, refusals, and catch-up that does not walk the past."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from todo_backend.recurrence import ALIASES, MAX_STEPS, WALL_STEPS, Budget, InvalidSchedule, Schedule


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (case id, expression, zone, after (UTC), the firings that follow it (UTC))
CASES = [
    # --- America/New_York: spring forward 2025-03-09 02:00 EST -> 03:00 EDT ---------------------------
    (
        "ny-spring-fixed-time-in-the-gap-fires-at-the-gap-end",
        "30 2 * * *",
        "America/New_York",
        "2025-03-08T12:00",
        ["2025-03-09T07:00", "2025-03-10T06:30"],
    ),
    (
        "ny-spring-several-times-in-the-gap-collapse-into-one-firing",
        "0,15,30,45 2 * * *",
        "America/New_York",
        "2025-03-09T06:00",
        ["2025-03-09T07:00", "2025-03-10T06:00", "2025-03-10T06:15"],
    ),
    (
        "ny-spring-every-15-minutes-never-fires-in-the-skipped-hour",
        "*/15 * * * *",
        "America/New_York",
        "2025-03-09T06:40",
        ["2025-03-09T06:45", "2025-03-09T07:00", "2025-03-09T07:15"],
    ),
    # --- America/New_York: fall back 2025-11-02 02:00 EDT -> 01:00 EST --------------------------------
    (
        "ny-fall-fixed-time-in-the-repeated-hour-fires-once-at-the-first-instant",
        "30 1 * * *",
        "America/New_York",
        "2025-11-01T12:00",
        ["2025-11-02T05:30", "2025-11-03T06:30"],
    ),
    (
        "ny-fall-every-15-minutes-fires-twice-in-the-repeated-hour",
        "*/15 1 * * *",
        "America/New_York",
        "2025-11-02T04:00",
        [
            "2025-11-02T05:00",
            "2025-11-02T05:15",
            "2025-11-02T05:30",
            "2025-11-02T05:45",
            "2025-11-02T06:00",
            "2025-11-02T06:15",
            "2025-11-02T06:30",
            "2025-11-02T06:45",
            "2025-11-03T06:00",
        ],
    ),
    # --- Europe/London: 2025-03-30 01:00 GMT -> 02:00 BST; 2025-10-26 02:00 BST -> 01:00 GMT ----------
    (
        "london-spring-fixed-time-in-the-gap-fires-at-the-gap-end",
        "30 1 * * *",
        "Europe/London",
        "2025-03-29T12:00",
        ["2025-03-30T01:00", "2025-03-31T00:30"],
    ),
    (
        "london-fall-fixed-time-fires-once-at-the-first-instant",
        "30 1 * * *",
        "Europe/London",
        "2025-10-25T12:00",
        ["2025-10-26T00:30", "2025-10-27T01:30"],
    ),
    (
        "london-fall-half-hourly-fires-twice-in-the-repeated-hour",
        "*/30 1 * * *",
        "Europe/London",
        "2025-10-25T23:59",
        ["2025-10-26T00:00", "2025-10-26T00:30", "2025-10-26T01:00", "2025-10-26T01:30", "2025-10-27T01:00"],
    ),
    # --- Australia/Sydney (southern hemisphere): 2025-04-06 03:00 AEDT -> 02:00 AEST;
    #     2025-10-05 02:00 AEST -> 03:00 AEDT -------------------------------------------------------------
    (
        "sydney-october-spring-fixed-time-in-the-gap-fires-at-the-gap-end",
        "30 2 * * *",
        "Australia/Sydney",
        "2025-10-04T00:00",
        ["2025-10-04T16:00", "2025-10-05T15:30"],
    ),
    (
        "sydney-april-fall-fixed-time-fires-once-at-the-first-instant",
        "30 2 * * *",
        "Australia/Sydney",
        "2025-04-05T00:00",
        ["2025-04-05T15:30", "2025-04-06T16:30"],
    ),
    (
        "sydney-april-fall-hourly-fires-twice-at-the-repeated-wall-hour",
        "0 * * * *",
        "Australia/Sydney",
        "2025-04-05T14:30",
        ["2025-04-05T15:00", "2025-04-05T16:00", "2025-04-05T17:00"],
    ),
    # --- Asia/Kolkata: no daylight saving, UTC+05:30 ----------------------------------------------------
    (
        "kolkata-fixed-time-is-a-half-hour-off-utc",
        "0 9 * * *",
        "Asia/Kolkata",
        "2025-03-08T12:00",
        ["2025-03-09T03:30", "2025-03-10T03:30"],
    ),
    (
        "kolkata-is-untouched-by-other-zones-transitions",
        "30 2 * * *",
        "Asia/Kolkata",
        "2025-11-01T12:00",
        ["2025-11-01T21:00", "2025-11-02T21:00"],
    ),
    (
        "kolkata-minute-lists-map-to-quarter-past-and-half-past-utc",
        "0,45 * * * *",
        "Asia/Kolkata",
        "2025-06-01T00:00",
        ["2025-06-01T00:15", "2025-06-01T00:30", "2025-06-01T01:15"],
    ),
    # --- calendars ---------------------------------------------------------------------------------
    (
        "day-31-skips-months-without-one",
        "0 9 31 * *",
        "UTC",
        "2025-01-31T10:00",
        ["2025-03-31T09:00", "2025-05-31T09:00", "2025-07-31T09:00", "2025-08-31T09:00"],
    ),
    (
        "leap-day-fires-only-in-leap-years",
        "0 9 29 2 *",
        "UTC",
        "2025-01-01T00:00",
        ["2028-02-29T09:00", "2032-02-29T09:00"],
    ),
    (
        "leap-day-in-a-zone",
        "0 9 29 2 *",
        "America/New_York",
        "2025-01-01T00:00",
        ["2028-02-29T14:00"],
    ),
    (
        "dom-and-dow-both-restricted-either-matches",
        "0 9 1 * 1",
        "UTC",
        "2025-01-01T00:00",
        [
            "2025-01-01T09:00",
            "2025-01-06T09:00",
            "2025-01-13T09:00",
            "2025-01-20T09:00",
            "2025-01-27T09:00",
            "2025-02-01T09:00",
            "2025-02-03T09:00",
        ],
    ),
    (
        "dom-starting-with-star-both-must-match",
        "0 9 */10 * 1",
        "UTC",
        "2025-01-01T00:00",
        ["2025-03-31T09:00", "2025-04-21T09:00", "2025-07-21T09:00"],
    ),
    (
        "dow-only-mondays",
        "0 9 * * 1",
        "UTC",
        "2025-01-01T00:00",
        ["2025-01-06T09:00", "2025-01-13T09:00"],
    ),
    (
        "next-after-is-strict",
        "0 9 * * *",
        "UTC",
        "2025-01-01T09:00",
        ["2025-01-02T09:00"],
    ),
]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_schedule_fires_at(expression: str, zone: str, after: str, expected: list[str]) -> None:
    schedule = Schedule.parse(expression, zone)
    assert schedule.upcoming(utc(after), len(expected)) == [utc(e) for e in expected]
    # next_after agrees with upcoming, one step at a time.
    assert schedule.next_after(utc(after)) == utc(expected[0])


@pytest.mark.parametrize(
    ("expression", "zone", "start", "end", "firings"),
    [
        ("0 * * * *", "America/New_York", "2025-03-09T05:00", "2025-03-10T04:00", 23),  # 23-hour day
        ("0 * * * *", "America/New_York", "2025-11-02T04:00", "2025-11-03T05:00", 25),  # 25-hour day
        ("0 * * * *", "Australia/Sydney", "2025-10-04T14:00", "2025-10-05T13:00", 23),
        ("0 * * * *", "Australia/Sydney", "2025-04-05T13:00", "2025-04-06T14:00", 25),
        ("0 * * * *", "Asia/Kolkata", "2025-03-08T18:30", "2025-03-09T18:30", 24),
        ("30 2 * * *", "America/New_York", "2025-03-01T00:00", "2025-04-01T00:00", 31),  # gap day still fires
        ("30 1 * * *", "America/New_York", "2025-11-01T00:00", "2025-12-01T00:00", 30),  # fall day once
    ],
)
def test_hourly_fires_on_every_real_hour_and_daily_once_a_day_across_transitions(
    expression: str, zone: str, start: str, end: str, firings: int
) -> None:
    assert Schedule.parse(expression, zone).count_between(utc(start), utc(end), cap=1000) == firings


@pytest.mark.parametrize(("alias", "expanded"), ALIASES.items())
def test_aliases_expand_to_their_five_field_form(alias: str, expanded: str) -> None:
    assert Schedule.parse(alias).expression == expanded
    after = utc("2025-05-15T12:34")
    assert Schedule.parse(alias).upcoming(after, 3) == Schedule.parse(expanded).upcoming(after, 3)


def test_alias_firings() -> None:
    after = utc("2025-05-15T12:34")
    assert Schedule.parse("@hourly").next_after(after) == utc("2025-05-15T13:00")
    assert Schedule.parse("@daily").next_after(after) == utc("2025-05-16T00:00")
    assert Schedule.parse("@weekly").next_after(after) == utc("2025-05-18T00:00")  # Sunday
    assert Schedule.parse("@monthly").next_after(after) == utc("2025-06-01T00:00")
    assert Schedule.parse("@yearly", "Europe/London").next_after(after) == utc("2026-01-01T00:00")


def test_white_space_between_fields_does_not_matter() -> None:
    assert Schedule.parse("  0   9 * *  1 ").expression == "0 9 * * 1"


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 9 * * *",  # seconds
        "@every 5m",
        "@reboot",
        "* * * *",
        "61 * * * *",
        "* 24 * * *",
        "0 9 L * *",
        "0 9 ? * 1",
        "0 9 * * 1#2",
        "every day",
        "",
        "10-5 * * * *",  # a range that runs backwards
        "*/0 * * * *",
        "5-5/0 * * * *",
    ],
)
def test_invalid_schedules_are_refused_with_a_message(expression: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        Schedule.parse(expression)
    assert str(refused.value)


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "",
        "EST5EDT6",
        "../../etc/passwd",
        "america/new york",
        # Names the host's zone files may have but that mean what the host is set to, or nowhere.
        "localtime",
        "posixrules",
        "Factory",
    ],
)
def test_unknown_zones_are_refused(zone: str) -> None:
    with pytest.raises(InvalidSchedule, match="time zone"):
        Schedule.parse("0 9 * * *", zone)


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Schedule.parse("0 9 * * *").next_after(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("expression", "zone"),
    [("* * * * *", "UTC"), ("0 9 * * *", "America/New_York"), ("*/15 * * * *", "Australia/Sydney")],
)
def test_next_after_ten_years_ago_starts_from_that_instant_instead_of_walking_forward(
    expression: str, zone: str
) -> None:
    schedule = Schedule.parse(expression, zone)
    ten_years_ago = utc("2015-06-10T12:00:30")
    budget = Budget()
    first = schedule.next_after(ten_years_ago, budget)
    assert ten_years_ago < first < utc("2015-06-12T00:00")
    # A day or two looked at and a wall time or two tried: the cost does not depend on how far back it is.
    assert MAX_STEPS - budget.left <= 2 + 2 * WALL_STEPS


def test_counting_missed_firings_stops_at_the_cap() -> None:
    schedule = Schedule.parse("* * * * *")
    assert schedule.count_between(utc("2015-01-01T00:00"), utc("2025-01-01T00:00"), cap=50) == 50
    assert schedule.count_between(utc("2025-01-01T00:00"), utc("2025-01-01T00:10"), cap=50) == 10
    assert schedule.count_between(utc("2025-01-01T00:00"), utc("2025-01-01T00:00"), cap=50) == 0


def test_counting_missed_firings_stops_when_its_steps_run_out() -> None:
    # 75 years of daily firings, and no cap on the count: MAX_STEPS is what bounds the work.
    schedule = Schedule.parse("0 0 * * *")
    counted = schedule.count_between(utc("1950-01-01T00:00"), utc("2025-01-01T00:00"), cap=10**6)
    assert counted == MAX_STEPS // (2 + WALL_STEPS)  # two days looked at and one wall time per firing


def test_upcoming_is_strictly_increasing_and_strictly_after() -> None:
    after = utc("2025-11-02T04:00")
    times = Schedule.parse("*/20 * * * *", "America/New_York").upcoming(after, 12)
    assert len(times) == 12
    assert after < times[0]
    assert all(a < b for a, b in pairwise(times))
    assert all(t.tzinfo is UTC for t in times)
    # Across the repeated hour every real 20 minutes fires: no gap, no duplicate.
    assert {(b - a).total_seconds() for a, b in pairwise(times)} == {1200.0}


def test_upcoming_of_zero_is_empty() -> None:
    assert Schedule.parse("@daily").upcoming(utc("2025-01-01T00:00"), 0) == []


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # croniter read a single-value range as the whole field: every minute, hourly, daily.
        ("5-5 * * * *", "2025-01-01T00:00", ["2025-01-01T00:05", "2025-01-01T01:05"]),
        ("0 9-9 * * *", "2025-01-01T00:00", ["2025-01-01T09:00", "2025-01-02T09:00"]),
        ("0 0 * * 1-1", "2025-01-01T00:00", ["2025-01-06T00:00", "2025-01-13T00:00"]),
        ("5-5/2 9-9/3 * * *", "2025-01-01T00:00", ["2025-01-01T09:05", "2025-01-02T09:05"]),
        ("50/5 * * * *", "2025-01-01T00:00", ["2025-01-01T00:50", "2025-01-01T00:55", "2025-01-01T01:50"]),
    ],
)
def test_single_value_ranges_and_steps_read_as_cronie_reads_them(
    expression: str, after: str, expected: list[str]
) -> None:
    assert Schedule.parse(expression).upcoming(utc(after), len(expected)) == [utc(e) for e in expected]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "a schedule has 5 fields (minute hour day-of-month month day-of-week), this one has 4"),
        ("0 0 9 * * *", "this one has 6; seconds are not supported"),
    ],
)
def test_a_schedule_with_the_wrong_number_of_fields_says_how_many_it_has(
    expression: str, message: str
) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        Schedule.parse(expression)
    assert message in str(refused.value)
    assert ("seconds" in str(refused.value)) == expression.startswith("0 0 9")


def test_a_schedule_that_fires_only_inside_a_gap_never_fires_there_and_says_so_quickly() -> None:
    assert Schedule.parse("* 2 8-14 3 */7").next_after(utc("2026-01-01T00:00")) == utc("2026-03-08T02:00")
    budget = Budget()
    with pytest.raises(InvalidSchedule, match="never fires in America/New_York within 28 years"):
        Schedule.parse("* 2 8-14 3 */7", "America/New_York").next_after(utc("2026-01-01T00:00"), budget)
    assert budget.left > 0  # refused by the horizon, within the step cap
