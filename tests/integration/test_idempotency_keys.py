"""Idempotency-Key on create: a retry returns the first result and creates nothing new, per user."""

from __future__ import annotations

import asyncio
import uuid

from taskapi import Api, Sql, assert_problem


def key() -> str:
    return f"key-{uuid.uuid4()}"


async def test_a_retry_with_the_same_key_and_body_returns_the_first_response(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    body = {"title": "pay rent", "tags": ["Money"], "due_date": "2030-02-01T09:00:00+01:00"}
    first = await alice.post("/api/tasks", json=body, headers=headers)
    retry = await alice.post("/api/tasks", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"] == f"/api/tasks/{first.json()['id']}"
    assert retry.headers["etag"] == first.headers["etag"] == '"1"'
    assert await sql.counts(alice.user_id) == (1, 1)
    assert len(await sql.events(first.json()["id"])) == 1


async def test_the_same_key_with_another_body_is_422_and_creates_nothing(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    assert (await alice.post("/api/tasks", json={"title": "first"}, headers=headers)).status_code == 201
    response = await alice.post("/api/tasks", json={"title": "second"}, headers=headers)
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert await sql.counts(alice.user_id) == (1, 1)
    assert [t["title"] for t in await alice.list_all()] == ["first"]


async def test_bodies_that_normalize_alike_count_as_the_same_request(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    first = await alice.post("/api/tasks", json={"title": " tidy ", "tags": ["A", "a"]}, headers=headers)
    retry = await alice.post("/api/tasks", json={"tags": ["a"], "title": "tidy"}, headers=headers)
    assert retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert await sql.counts(alice.user_id) == (1, 1)


async def test_keys_are_per_user(alice: Api, bob: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    mine = await alice.post("/api/tasks", json={"title": "same"}, headers=headers)
    theirs = await bob.post("/api/tasks", json={"title": "same"}, headers=headers)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert await sql.counts(alice.user_id) == await sql.counts(bob.user_id) == (1, 1)
    different = await bob.post("/api/tasks", json={"title": "other body"}, headers={"Idempotency-Key": key()})
    assert different.status_code == 201


async def test_without_a_key_every_post_creates_a_task(alice: Api, sql: Sql) -> None:
    for _ in range(2):
        assert (await alice.post("/api/tasks", json={"title": "twice"})).status_code == 201
    assert await sql.counts(alice.user_id) == (2, 2)


async def test_concurrent_requests_with_one_key_create_one_task(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    responses = await asyncio.gather(
        *(alice.post("/api/tasks", json={"title": "racing"}, headers=headers) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["id"] for r in responses}) == 1
    assert await sql.counts(alice.user_id) == (1, 1)


async def test_a_key_is_kept_for_at_least_24_hours(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    first = await alice.post("/api/tasks", json={"title": "day old"}, headers=headers)
    await sql.pool.execute(
        "UPDATE idempotency_key SET created_at = now() - interval '23 hours 59 minutes' WHERE user_id = $1",
        alice.user_id,
    )
    retry = await alice.post("/api/tasks", json={"title": "day old"}, headers=headers)
    assert retry.json()["id"] == first.json()["id"]
    assert await sql.counts(alice.user_id) == (1, 1)


async def test_a_key_older_than_its_retention_can_be_used_afresh(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    first = await alice.post("/api/tasks", json={"title": "old"}, headers=headers)
    await sql.pool.execute(
        "UPDATE idempotency_key SET created_at = now() - interval '25 hours' WHERE user_id = $1",
        alice.user_id,
    )
    again = await alice.post("/api/tasks", json={"title": "new body"}, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert await sql.counts(alice.user_id) == (2, 2)


async def test_a_failed_create_does_not_use_up_its_key(alice: Api, sql: Sql) -> None:
    headers = {"Idempotency-Key": key()}
    assert_problem(await alice.post("/api/tasks", json={"title": ""}, headers=headers), 422)
    retry = await alice.post("/api/tasks", json={"title": "fixed"}, headers=headers)
    assert retry.status_code == 201
    assert retry.json()["title"] == "fixed"
    assert await sql.counts(alice.user_id) == (1, 1)
