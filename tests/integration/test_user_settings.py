"""A user's settings (issue 13): GET|PUT /api/me/settings, the time zone and locale what they read is
written in. Bad input is a 422 naming the field and changes nothing; each user has their own."""

from __future__ import annotations

from typing import Any

import pytest
from taskapi import Api, Sql, assert_problem

URL = "/api/me/settings"


async def test_a_user_who_set_nothing_has_the_defaults(alice: Api) -> None:
    got = await alice.get(URL)
    assert got.status_code == 200 and got.json() == {"timezone": "UTC", "locale": "en"}


async def test_a_put_replaces_every_setting_and_says_so_in_an_event(alice: Api, bob: Api, sql: Sql) -> None:
    put = await alice.put(URL, json={"timezone": "Europe/Berlin", "locale": "de-at"})

    assert put.status_code == 200, put.text
    assert put.json() == {"timezone": "Europe/Berlin", "locale": "de-AT"}
    assert (await alice.get(URL)).json() == put.json()
    assert (await bob.get(URL)).json() == {"timezone": "UTC", "locale": "en"}
    reset = await alice.put(URL, json={"locale": "de"})  # the time zone left out: reset
    assert reset.json() == {"timezone": "UTC", "locale": "de"}
    rows = await sql.pool.fetch(
        "SELECT type, user_id, data FROM task_event WHERE subject = $1 ORDER BY sequence", alice.user_id
    )
    assert [(r["type"], r["user_id"], r["data"]["settings"]) for r in rows] == [
        ("dev.todo.user-settings.replaced", alice.user_id, {"timezone": "Europe/Berlin", "locale": "de-AT"}),
        ("dev.todo.user-settings.replaced", alice.user_id, {"timezone": "UTC", "locale": "de"}),
    ]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"locale": "fr"}, "locale"),
        ({"locale": "en_GB"}, "locale"),
        ({"locale": "x" * 36}, "locale"),
        ({"locale": 7}, "locale"),
        ({"theme": "dark"}, "theme"),
    ],
)
async def test_a_bad_setting_is_refused_naming_it_and_changes_nothing(
    alice: Api, body: dict[str, Any], field: str
) -> None:
    await alice.put(URL, json={"timezone": "Asia/Tokyo", "locale": "en"})

    problem = assert_problem(await alice.put(URL, json=body), 422)

    assert problem["errors"][0]["field"] == field
    if field == "locale" and body[field] == "fr":
        assert "supported: en, de" in problem["errors"][0]["message"]
    assert (await alice.get(URL)).json() == {"timezone": "Asia/Tokyo", "locale": "en"}


async def test_a_put_that_changes_nothing_writes_nothing(alice: Api, sql: Sql) -> None:
    body = {"timezone": "Asia/Tokyo", "locale": "de"}
    for _ in range(3):
        assert (await alice.put(URL, json=body)).json() == body
    count = "SELECT count(*) FROM task_event WHERE subject = $1"
    assert await sql.pool.fetchval(count, alice.user_id) == 1


async def test_the_settings_need_a_token(alice: Api) -> None:
    assert_problem(await alice.get(URL, token=None), 401)
    assert_problem(await alice.put(URL, json={}, token=None), 401)
