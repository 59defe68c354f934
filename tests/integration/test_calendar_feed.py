"""The calendar feed (issue 13): POST /api/me/calendar-token, GET /api/calendar.ics?token=..., read
back with the icalendar library as a calendar app would. The token is kept only as its hash, a rotated
one stops at once, and a feed holds what its owner may see and nothing else."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from taskapi import Api, Sql, assert_problem

from todo_backend.fields import utcnow


async def rotate(api: Api, **kw: Any) -> dict[str, Any]:
    response = await api.post("/api/me/calendar-token", **kw)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


async def read_feed(api: Api, token: str) -> Calendar:
    response = await api.get("/api/calendar.ics", params={"token": token}, token=None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


def events_of(calendar: Calendar) -> dict[str, tuple[str, datetime]]:
    return {str(e["uid"]): (str(e["summary"]), e.decoded("dtstart")) for e in calendar.walk("VEVENT")}


async def test_a_feed_holds_the_open_dated_tasks_its_owner_sees_and_their_series_next_times(
    alice: Api, bob: Api, sql: Sql
) -> None:
    due = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    project = (await bob.post("/api/projects", json={"name": "shared"})).json()["id"]
    member = {"user_id": alice.user_id, "role": "viewer"}
    assert (await bob.post(f"/api/projects/{project}/members", json=member)).status_code == 201
    mine = await alice.create(title="Dentist, 9; bring card", due_date=due.isoformat())
    shared = await bob.create(title="Shared", due_date=due.isoformat(), project_id=project)
    await alice.create(title="undated")
    done = await alice.create(title="done", due_date=due.isoformat())
    await alice.post(f"/api/tasks/{done['id']}/complete")
    await bob.create(title="bob's own", due_date=due.isoformat())
    series = await alice.post(
        "/api/recurring-tasks",
        json={"title": "Stand-up", "schedule": "0 9 * * *", "timezone": "Europe/Berlin"},
    )
    assert series.status_code == 201, series.text

    token = (await rotate(alice))["token"]
    calendar = await read_feed(alice, token)
    events = events_of(calendar)

    # The series' first occurrence is a task already; its other next times are the series' own.
    [occurrence] = await alice.list_all(q="Stand-up")
    tasks = {uid: v for uid, v in events.items() if uid.startswith("task-")}
    assert tasks == {
        f"task-{mine['id']}@todo-backend": ("Dentist, 9; bring card", due),
        f"task-{shared['id']}@todo-backend": ("Shared", due),
        f"task-{occurrence['id']}@todo-backend": ("Stand-up", datetime.fromisoformat(occurrence["due_date"])),
    }
    upcoming = sorted(at for uid, (_, at) in events.items() if uid.startswith("series-"))
    assert len(upcoming) == 4 and datetime.fromisoformat(occurrence["due_date"]) < upcoming[0]
    assert all(at.astimezone(ZoneInfo("Europe/Berlin")).hour == 9 for at in upcoming)
    # Instants carry UTC: every DTSTART is written with its Z.
    starts = [line for line in calendar.to_ical().decode().splitlines() if line.startswith("DTSTART")]
    assert len(starts) == 7 and all(line.endswith("Z") for line in starts)
    # Completed early, the occurrence is out of the feed, and its time is not the series' to show.
    await alice.post(f"/api/tasks/{occurrence['id']}/complete")
    again = events_of(await read_feed(alice, token))
    assert len([uid for uid in again if uid.startswith("series-")]) == 4
    assert f"task-{occurrence['id']}@todo-backend" not in again
    await sql.delete_series_and_tasks([alice.user_id])


async def test_the_token_is_kept_as_its_hash_and_rotating_it_stops_the_old_one_at_once(
    alice: Api, sql: Sql
) -> None:
    first = await rotate(alice, headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "todo.example"})
    assert first["url"] == f"https://todo.example/api/calendar.ics?token={first['token']}"
    # A value a client sends before the ingress appends its own is never the one taken.
    spoofed = await rotate(alice, headers={"X-Forwarded-Host": "evil.example, todo.example"})
    assert spoofed["url"].startswith("http://todo.example/")
    first = await rotate(alice, headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "todo.example"})
    stored = await sql.pool.fetchrow("SELECT * FROM calendar_token WHERE user_id = $1", alice.user_id)
    assert stored["token_sha256"] == hashlib.sha256(first["token"].encode()).hexdigest()
    assert first["token"] not in str(dict(stored))
    await read_feed(alice, first["token"])

    second = await rotate(alice)

    assert second["token"] != first["token"]
    gone = await alice.get("/api/calendar.ics", params={"token": first["token"]}, token=None)
    assert assert_problem(gone, 404)["errors"][0]["field"] == "token"
    await read_feed(alice, second["token"])
    rows = await sql.pool.fetch("SELECT data FROM task_event WHERE subject = $1", alice.user_id)
    assert len(rows) == 4 and all(first["token"] not in str(r["data"]) for r in rows)  # one per rotation


@pytest.mark.parametrize("params", [{}, {"token": ""}, {"token": "x" * 5000}, {"token": "made-up"}])
async def test_no_token_or_an_unknown_one_is_a_404_never_a_feed(alice: Api, params: dict[str, str]) -> None:
    assert_problem(await alice.get("/api/calendar.ics", params=params, token=None), 404)


async def test_a_token_needs_a_bearer_to_be_made(alice: Api) -> None:
    assert_problem(await alice.post("/api/me/calendar-token", token=None), 401)
