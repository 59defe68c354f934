"""list-tasks: filters, keyword search, every sort in both directions, limits and cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from taskapi import Api, assert_problem

RANK = {"low": 0, "medium": 1, "high": 2}
SORTS = ["due_date", "-due_date", "priority", "-priority", "created_at", "-created_at", "title", "-title"]


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def titles(api: Api, **params: Any) -> list[str]:
    return sorted(t["title"] for t in await api.list_all(**params))


def expected_order(tasks: list[dict[str, Any]], sort: str) -> list[str]:
    """The documented order: by the key, then id; tasks without a due date last in both directions."""
    desc = sort.startswith("-")
    name = sort.lstrip("-")

    def key(t: dict[str, Any]) -> Any:
        value = {
            "due_date": t["due_date"],
            "priority": RANK[t["priority"]],
            "created_at": t["created_at"],
            "title": t["title"].lower(),
        }[name]
        return (value, uuid.UUID(t["id"]))

    if name == "due_date":
        dated = sorted((t for t in tasks if t["due_date"]), key=key, reverse=desc)
        undated = sorted(
            (t for t in tasks if not t["due_date"]), key=lambda t: uuid.UUID(t["id"]), reverse=desc
        )
        return [t["id"] for t in dated + undated]
    return [t["id"] for t in sorted(tasks, key=key, reverse=desc)]


async def a_mixed_list(api: Api) -> list[dict[str, Any]]:
    """Tasks with equal titles (up to case), equal and missing due dates, and every priority."""
    specs = [
        ("banana", "2030-03-01T12:00:00Z", "high"),
        ("Apple", "2030-01-01T00:00:00+01:00", "low"),
        ("apple", None, "medium"),
        ("cherry", "2030-03-01T12:00:00Z", "low"),
        ("Banana", None, "high"),
        ("date", "2029-12-31T23:00:00Z", "medium"),
        ("apple", "2030-06-01T00:00:00Z", "high"),
        ("elder", None, "low"),
    ]
    return [await api.create(title=t, due_date=d, priority=p) for t, d, p in specs]


# --- response shape and limits ---------------------------------------------------------------------


async def test_an_empty_list_has_no_items_and_no_cursor(alice: Api) -> None:
    response = await alice.get("/api/tasks")
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_the_default_page_is_50_tasks(alice: Api) -> None:
    for i in range(51):
        await alice.create(title=f"t{i:02}")
    first = (await alice.get("/api/tasks")).json()
    assert len(first["items"]) == 50
    assert first["next_cursor"] is not None
    rest = (await alice.get("/api/tasks", params={"cursor": first["next_cursor"]})).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    assert {t["id"] for t in first["items"]}.isdisjoint({rest["items"][0]["id"]})


@pytest.mark.parametrize("limit", [1, 200])
async def test_limits_from_1_to_200_are_accepted(alice: Api, limit: int) -> None:
    for i in range(2):
        await alice.create(title=f"t{i}")
    page = (await alice.get("/api/tasks", params={"limit": limit})).json()
    assert len(page["items"]) == min(limit, 2)
    assert (page["next_cursor"] is None) == (limit >= 2)


@pytest.mark.parametrize("limit", ["0", "201", "-1"])
async def test_limits_outside_1_to_200_are_422(alice: Api, limit: str) -> None:
    problem = assert_problem(await alice.get("/api/tasks", params={"limit": limit}), 422)
    assert [e["field"] for e in problem["errors"]] == ["limit"]


async def test_the_default_sort_is_oldest_first(alice: Api) -> None:
    tasks = [await alice.create(title=f"t{i}") for i in range(3)]
    assert [t["id"] for t in await alice.list_all()] == expected_order(tasks, "created_at")
    assert [t["id"] for t in await alice.list_all()] == [t["id"] for t in tasks]


# --- sorts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
async def test_each_sort_orders_by_its_key_then_id_with_undated_tasks_last(alice: Api, sort: str) -> None:
    tasks = await a_mixed_list(alice)
    expected = expected_order(tasks, sort)
    one_page = (await alice.get("/api/tasks", params={"sort": sort})).json()
    assert [t["id"] for t in one_page["items"]] == expected
    assert one_page["next_cursor"] is None
    paged = await alice.list_all(sort=sort, limit=2)
    assert [t["id"] for t in paged] == expected


async def test_due_date_sorts_put_tasks_without_a_due_date_last_in_both_directions(alice: Api) -> None:
    await a_mixed_list(alice)
    for sort in ("due_date", "-due_date"):
        one_page = [
            t["due_date"] for t in (await alice.get("/api/tasks", params={"sort": sort})).json()["items"]
        ]
        paged = [t["due_date"] for t in await alice.list_all(sort=sort, limit=3)]
        for dues in (one_page, paged):
            assert len(dues) == 8
            assert dues[-3:] == [None, None, None]
            assert None not in dues[:-3]
    ascending = [t["due_date"] for t in await alice.list_all(sort="due_date")][:5]
    assert ascending == sorted(ascending)
    assert ascending[0] == "2029-12-31T23:00:00.000000Z"


async def test_priority_sorts_from_low_to_high_and_back(alice: Api) -> None:
    await a_mixed_list(alice)
    assert [t["priority"] for t in await alice.list_all(sort="priority")] == ["low"] * 3 + ["medium"] * 2 + [
        "high"
    ] * 3
    assert [t["priority"] for t in await alice.list_all(sort="-priority")][:3] == ["high"] * 3


async def test_title_sorts_ignore_case(alice: Api) -> None:
    await a_mixed_list(alice)
    assert [t["title"].lower() for t in await alice.list_all(sort="title")] == [
        "apple",
        "apple",
        "apple",
        "banana",
        "banana",
        "cherry",
        "date",
        "elder",
    ]


@pytest.mark.parametrize(
    ("issued_for", "used_with"), [("title", "-title"), ("title", "created_at"), ("-due_date", "due_date")]
)
async def test_a_cursor_from_another_sort_is_422(alice: Api, issued_for: str, used_with: str) -> None:
    await a_mixed_list(alice)
    cursor = (await alice.get("/api/tasks", params={"sort": issued_for, "limit": 2})).json()["next_cursor"]
    assert cursor is not None
    problem = assert_problem(await alice.get("/api/tasks", params={"sort": used_with, "cursor": cursor}), 422)
    assert [e["field"] for e in problem["errors"]] == ["cursor"]


async def test_a_cursor_keeps_working_with_the_filters_it_was_issued_for(alice: Api) -> None:
    for i in range(5):
        await alice.create(title=f"match {i}", tags=["x"])
        await alice.create(title=f"other {i}")
    seen = await alice.list_all(tag="x", limit=2, sort="-title")
    assert [t["title"] for t in seen] == [f"match {i}" for i in reversed(range(5))]


# --- filters ---------------------------------------------------------------------------------------


async def test_status_filters_pending_and_completed(alice: Api) -> None:
    await alice.create(title="open")
    await alice.create(title="done", completed=True)
    closed = await alice.create(title="closed later")
    await alice.post(f"/api/tasks/{closed['id']}/complete")
    assert await titles(alice) == ["closed later", "done", "open"]
    assert await titles(alice, status="all") == ["closed later", "done", "open"]
    assert await titles(alice, status="pending") == ["open"]
    assert await titles(alice, status="completed") == ["closed later", "done"]


async def test_priority_is_repeatable_and_matches_any_given(alice: Api) -> None:
    for p in ("low", "medium", "high"):
        await alice.create(title=p, priority=p)
    assert await titles(alice, priority="high") == ["high"]
    assert await titles(alice, priority=["low", "high"]) == ["high", "low"]


async def test_tag_is_repeatable_and_every_tag_must_match(alice: Api) -> None:
    await alice.create(title="both", tags=["home", "urgent"])
    await alice.create(title="home only", tags=["home"])
    await alice.create(title="urgent and more", tags=["urgent", "garden", "home"])
    await alice.create(title="none")
    assert await titles(alice, tag="home") == ["both", "home only", "urgent and more"]
    assert await titles(alice, tag=["home", "urgent"]) == ["both", "urgent and more"]
    assert await titles(alice, tag=["home", "urgent", "garden"]) == ["urgent and more"]
    assert await titles(alice, tag=["home", "missing"]) == []


async def test_tag_filters_are_case_insensitive_like_the_tags_themselves(alice: Api) -> None:
    await alice.create(title="tagged", tags=["Home"])
    assert await titles(alice, tag="HOME") == ["tagged"]


async def test_q_matches_title_or_description_ignoring_case(alice: Api) -> None:
    await alice.create(title="Buy MILK")
    await alice.create(title="groceries", description="eggs and milk, please")
    await alice.create(title="unrelated", description="bread")
    assert await titles(alice, q="milk") == ["Buy MILK", "groceries"]
    assert await titles(alice, q="MiLk") == ["Buy MILK", "groceries"]
    assert await titles(alice, q="Bread") == ["unrelated"]
    assert await titles(alice, q="cheese") == []


@pytest.mark.parametrize(
    ("q", "expected"), [("%", ["50% off"]), ("_", ["snake_case"]), ("\\", ["back\\slash"])]
)
async def test_q_treats_like_wildcards_literally(alice: Api, q: str, expected: list[str]) -> None:
    for title in ("50% off", "50 percent off", "snake_case", "snakeXcase", "back\\slash", "backslash"):
        await alice.create(title=title)
    assert await titles(alice, q=q) == expected


async def test_q_with_wildcards_inside_a_word_still_matches_literally(alice: Api) -> None:
    await alice.create(title="save 50% now")
    await alice.create(title="save 50X now")
    assert await titles(alice, q="50%") == ["save 50% now"]
    assert await titles(alice, q="e_5") == []


async def test_due_before_and_due_after_are_exclusive_bounds_excluding_undated_tasks(alice: Api) -> None:
    base = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    for days in (-2, 0, 2):
        await alice.create(title=f"day {days}", due_date=iso(base + timedelta(days=days)))
    await alice.create(title="undated")
    assert await titles(alice, due_before=iso(base)) == ["day -2"]
    assert await titles(alice, due_after=iso(base)) == ["day 2"]
    assert await titles(
        alice, due_after=iso(base - timedelta(days=3)), due_before=iso(base + timedelta(days=1))
    ) == [
        "day -2",
        "day 0",
    ]
    # An offset other than UTC names the same instant.
    assert await titles(alice, due_before="2030-05-01T14:00:01+02:00") == ["day -2", "day 0"]


async def test_overdue_means_pending_and_due_in_the_past(alice: Api) -> None:
    now = datetime.now(UTC)
    await alice.create(title="late", due_date=iso(now - timedelta(hours=1)))
    await alice.create(title="late but done", due_date=iso(now - timedelta(hours=1)), completed=True)
    await alice.create(title="upcoming", due_date=iso(now + timedelta(hours=1)))
    await alice.create(title="undated")
    assert await titles(alice, overdue="true") == ["late"]
    assert await titles(alice, overdue="false") == ["late", "late but done", "undated", "upcoming"]


async def test_filters_combine(alice: Api) -> None:
    await alice.create(title="report draft", priority="high", tags=["work"])
    await alice.create(title="report final", priority="low", tags=["work"])
    await alice.create(title="report personal", priority="high", tags=["home"])
    await alice.create(title="report done", priority="high", tags=["work"], completed=True)
    assert await titles(alice, q="report", priority="high", tag="work", status="pending") == ["report draft"]
