"""Paging through a list while tasks are being created never repeats or skips a task that existed."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
from taskapi import Api

# Few distinct values, so many tasks tie on the sort key and only the id breaks the tie.
TITLES = ["alpha", "Alpha", "bravo", "charlie", "Charlie", "delta"]
DUES = [
    None,
    "2030-01-01T00:00:00Z",
    "2030-01-01T00:00:00Z",
    "2030-02-01T00:00:00+01:00",
    None,
    "2029-06-01T00:00:00Z",
]
PRIORITIES = ["low", "medium", "high"]


def a_task(rng: random.Random) -> dict[str, Any]:
    return {"title": rng.choice(TITLES), "due_date": rng.choice(DUES), "priority": rng.choice(PRIORITIES)}


@pytest.mark.parametrize(
    "sort", ["created_at", "-created_at", "due_date", "-due_date", "title", "-title", "priority", "-priority"]
)
async def test_paging_under_concurrent_inserts_sees_every_existing_task_exactly_once(
    alice: Api, sort: str
) -> None:
    rng = random.Random(sort)
    existing = await asyncio.gather(*(alice.create(**a_task(rng)) for _ in range(24)))
    existing_ids = {t["id"] for t in existing}
    # The order of the existing tasks before any insert: paging must keep it.
    expected = [t["id"] for t in await alice.list_all(sort=sort) if t["id"] in existing_ids]

    seen: list[str] = []
    inserted: list[str] = []
    cursor: str | None = None
    for page_number in itertools.count():
        params = {"sort": sort, "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await alice.get("/api/tasks", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Between pages, other requests create tasks that sort before, after and among the ones seen.
        created = await asyncio.gather(*(alice.create(**a_task(rng)) for _ in range(3)))
        inserted += [t["id"] for t in created]
        assert page_number < 40, "paging does not terminate"

    assert len(seen) == len(set(seen)), "a task was returned twice"
    assert [i for i in seen if i in existing_ids] == expected, "an existing task was skipped or moved"
    assert set(seen) - existing_ids <= set(inserted)
