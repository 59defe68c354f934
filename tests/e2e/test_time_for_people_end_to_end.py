"""A user's settings and calendar feed through the local stack's gateway (issue 13): the feed's URL is
the one the client reached the gateway by, and a calendar app (no bearer token) reads it there."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from icalendar import Calendar

Headers = Callable[[str], dict[str, str]]


def test_a_calendar_app_subscribes_to_the_feed_url_it_was_given(stack: str, token_for: Headers) -> None:
    headers = token_for(f"ida-{uuid.uuid4()}")
    settings = {"timezone": "Europe/Vienna", "locale": "de-AT"}
    assert httpx.put(f"{stack}/api/me/settings", json=settings, headers=headers).json() == settings
    due = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = {"title": "Zahnarzt", "due_date": due.isoformat()}
    task = httpx.post(f"{stack}/api/tasks", json=body, headers=headers).json()

    issued = httpx.post(f"{stack}/api/me/calendar-token", headers=headers)
    assert issued.status_code == 201, issued.text
    url = issued.json()["url"]
    assert url.startswith(f"{stack}/api/calendar.ics?token=")  # as the client reached the gateway

    feed = httpx.get(url)  # no Authorization: a calendar app's request
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    [event] = Calendar.from_ical(feed.content).walk("VEVENT")
    assert (str(event["uid"]), str(event["summary"])) == (f"task-{task['id']}@todo-backend", "Zahnarzt")
    assert event.decoded("dtstart") == due
    assert httpx.get(f"{stack}/api/calendar.ics", params={"token": "nope"}).status_code == 404
