"""Subtasks and moves (issue 12): a subtask is in its parent's project or inbox, at most MAX_DEPTH
ancestors deep, never its own ancestor; completing or deleting a parent takes its subtasks along, one
event each, in one transaction; moving a task takes its subtasks to the other project.

The rules are attacked where the world breaks them: racing re-parents that would close a cycle between
them, a subtask created while its ancestor is deleted, and generated sequences of tree operations
checked against an independent model of the tree.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taskapi import Api, Sql, assert_problem

from todo_backend.subtasks import MAX_DEPTH


async def subtask(api: Api, parent: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return await api.create(parent_id=parent["id"], **fields)


async def new_project(api: Api) -> str:
    response = await api.post("/api/projects", json={"name": "p"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def add(api: Api, project_id: str, user_id: str, role: str) -> None:
    response = await api.post(f"/api/projects/{project_id}/members", json={"user_id": user_id, "role": role})
    assert response.status_code == 201, response.text


async def events_of(sql: Sql, task_ids: list[str], type_: str) -> list[Any]:
    return await sql.pool.fetch(
        "SELECT subject, data, xmin::text AS xid FROM task_event WHERE subject = ANY($1) AND type = $2"
        " ORDER BY sequence",
        task_ids,
        f"dev.todo.task.{type_}",
    )


async def chain(api: Api, levels: int, **fields: Any) -> list[dict[str, Any]]:
    """A top-level task and `levels - 1` subtasks, each under the one before."""
    tasks = [await api.create(title="level 0", **fields)]
    for level in range(1, levels):
        tasks.append(await subtask(api, tasks[-1], title=f"level {level}"))
    return tasks


async def test_a_subtask_joins_its_parents_project_and_lists_filter_by_parent(alice: Api, bob: Api) -> None:
    project = await new_project(alice)
    await add(alice, project, bob.user_id, "editor")
    parent = await alice.create(title="parent", project_id=project)

    child = await subtask(bob, parent, title="child")

    assert child["parent_id"] == parent["id"] and child["project_id"] == project
    assert [t["id"] for t in await alice.list_all(parent=parent["id"])] == [child["id"]]
    assert [t["id"] for t in await alice.list_all(parent="none")] == [parent["id"]]
    inbox_parent = await alice.create(title="mine")
    inbox_child = await subtask(alice, inbox_parent)
    assert inbox_child["project_id"] is None and inbox_child["parent_id"] == inbox_parent["id"]
    assert_problem(await alice.get("/api/tasks", params={"parent": "some"}), 422)


async def test_a_parent_elsewhere_is_no_parent_and_nothing_is_created(alice: Api, bob: Api, sql: Sql) -> None:
    project = await new_project(alice)
    theirs = await alice.create(title="alice's inbox")
    in_project = await alice.create(title="alice's project", project_id=project)
    mine = await bob.create(title="bob's inbox")
    before = await sql.counts(bob.user_id)

    unseen = set()
    for body in (
        {"parent_id": theirs["id"]},  # another user's inbox
        {"parent_id": in_project["id"]},  # a project bob is not in
        {"parent_id": str(uuid.uuid4())},  # no task at all
    ):
        problem = assert_problem(await bob.post("/api/tasks", json={"title": "t", **body}), 404)
        assert problem["errors"][0]["field"] == "parent_id", body
        unseen.add(problem["detail"])
    assert len(unseen) == 1  # the answer tells none of them apart
    named = {"title": "t", "parent_id": mine["id"], "project_id": project}  # a project bob is not in
    assert assert_problem(await bob.post("/api/tasks", json=named), 404)["errors"][0]["field"] == "project_id"

    await add(alice, project, bob.user_id, "editor")
    problem = assert_problem(
        await bob.post("/api/tasks", json={"title": "t", "parent_id": mine["id"], "project_id": project}), 404
    )
    assert problem["errors"][0]["field"] == "parent_id"  # a subtask is in its parent's project
    viewer_of = await new_project(alice)
    await add(alice, viewer_of, bob.user_id, "viewer")
    parent = await alice.create(project_id=viewer_of)
    assert_problem(await bob.post("/api/tasks", json={"title": "t", "parent_id": parent["id"]}), 403)
    assert await sql.counts(bob.user_id) == before


async def test_subtasks_nest_at_most_max_depth_deep_however_they_get_there(alice: Api, sql: Sql) -> None:
    deepest = await chain(alice, MAX_DEPTH + 1)  # every level allowed

    problem = assert_problem(
        await alice.post("/api/tasks", json={"title": "too deep", "parent_id": deepest[-1]["id"]}), 422
    )
    assert problem["errors"][0]["field"] == "parent_id"
    pair = await chain(alice, 2)  # a task with a subtask: two levels
    fits_under, too_deep_under = deepest[-3], deepest[-2]
    url = f"/api/tasks/{pair[0]['id']}"
    assert_problem(await alice.patch(url, json={"parent_id": too_deep_under["id"]}), 422)
    moved = await alice.patch(url, json={"parent_id": fits_under["id"]})
    assert moved.status_code == 200, moved.text
    assert (await sql.task_row(pair[1]["id"]))["parent_id"] == uuid.UUID(pair[0]["id"])


async def test_a_task_cannot_become_its_own_ancestor(alice: Api, sql: Sql) -> None:
    tasks = await chain(alice, 3)
    top = f"/api/tasks/{tasks[0]['id']}"

    for under in (tasks[0], tasks[1], tasks[2]):
        problem = assert_problem(await alice.patch(top, json={"parent_id": under["id"]}), 422)
        assert problem["errors"][0]["field"] == "parent_id"
    assert (await sql.task_row(tasks[0]["id"]))["parent_id"] is None
    assert (await alice.patch(f"/api/tasks/{tasks[2]['id']}", json={"parent_id": None})).json()[
        "parent_id"
    ] is None


async def test_completing_a_parent_completes_its_open_subtasks_with_one_event_each(
    alice: Api, sql: Sql
) -> None:
    tasks = await chain(alice, 3)
    sibling = await subtask(alice, tasks[0], title="done already")
    await alice.post(f"/api/tasks/{sibling['id']}/complete")
    ids = [t["id"] for t in tasks]

    completed = await alice.post(f"/api/tasks/{ids[0]}/complete")

    assert completed.status_code == 200, completed.text
    rows = await events_of(sql, [*ids, sibling["id"]], "completed")
    assert sorted(r["subject"] for r in rows if r["subject"] != sibling["id"]) == sorted(ids)
    assert [r["subject"] for r in rows].count(sibling["id"]) == 1  # its own, earlier completion
    assert len({r["xid"] for r in rows if r["subject"] in ids}) == 1  # one transaction
    assert [(await alice.get(f"/api/tasks/{i}")).json()["completed"] for i in ids] == [True] * len(ids)
    # Reopening the parent leaves its subtasks as they are.
    await alice.patch(f"/api/tasks/{ids[0]}", json={"completed": False})
    assert (await alice.get(f"/api/tasks/{ids[1]}")).json()["completed"] is True


async def test_deleting_a_parent_deletes_its_subtasks_with_one_event_each(alice: Api, sql: Sql) -> None:
    tasks = await chain(alice, MAX_DEPTH + 1)
    side = await subtask(alice, tasks[1], title="side")
    await alice.post(f"/api/tasks/{side['id']}/comments", json={"body": "goes too"})
    doomed = [t["id"] for t in tasks[1:]] + [side["id"]]

    assert (await alice.delete(f"/api/tasks/{tasks[1]['id']}")).status_code == 204

    rows = await events_of(sql, doomed, "deleted")
    assert sorted(r["subject"] for r in rows) == sorted(doomed) and len({r["xid"] for r in rows}) == 1
    assert rows[-1]["subject"] == tasks[1]["id"]  # subtasks first, the task asked for last
    assert [await sql.task_row(i) for i in doomed] == [None] * len(doomed)
    assert (await alice.get(f"/api/tasks/{tasks[0]['id']}")).status_code == 200


async def test_moving_a_task_takes_its_subtasks_and_clears_assignees_who_are_not_members(
    alice: Api, bob: Api, sql: Sql
) -> None:
    source, target = await new_project(alice), await new_project(alice)
    carol = alice.as_user(f"carol-{uuid.uuid4()}")
    for project in (source, target):
        await add(alice, project, bob.user_id, "editor")
    await add(alice, source, carol.user_id, "editor")
    stays = await alice.create(title="stays", project_id=source)
    task = await subtask(alice, stays, title="moves", assignee_id=bob.user_id)
    child = await subtask(alice, task, title="moves along", assignee_id=carol.user_id)

    moved = await bob.patch(f"/api/tasks/{task['id']}", json={"project_id": target})

    assert moved.status_code == 200, moved.text
    assert moved.json()["project_id"] == target and moved.json()["parent_id"] is None  # left its parent
    assert moved.json()["assignee_id"] == bob.user_id  # a member of both
    moved_child = (await bob.get(f"/api/tasks/{child['id']}")).json()
    assert moved_child["project_id"] == target and moved_child["parent_id"] == task["id"]
    assert moved_child["assignee_id"] is None  # carol is not in the target
    assert_problem(await carol.get(f"/api/tasks/{child['id']}"), 404)
    rows = await events_of(sql, [task["id"], child["id"]], "updated")
    assert {r["subject"]: set(r["data"]["changed"]) for r in rows} == {
        task["id"]: {"project_id", "parent_id"},
        child["id"]: {"project_id", "assignee_id"},
    }
    assert (await sql.task_row(stays["id"]))["project_id"] == uuid.UUID(source)


async def test_moving_and_completing_at_once_gives_each_subtask_one_event(alice: Api, sql: Sql) -> None:
    source, target = await new_project(alice), await new_project(alice)
    task = await alice.create(project_id=source)
    child = await subtask(alice, task)

    done = await alice.patch(f"/api/tasks/{task['id']}", json={"project_id": target, "completed": True})

    assert done.status_code == 200, done.text
    rows = await sql.pool.fetch(
        "SELECT type, data->'changed' AS changed FROM task_event WHERE subject = $1 ORDER BY sequence",
        child["id"],
    )
    assert [(r["type"], r["changed"]) for r in rows] == [
        ("dev.todo.task.created", None),
        ("dev.todo.task.completed", ["project_id", "completed"]),
    ]


async def test_moving_needs_editor_rights_on_both_projects_and_only_to_a_project(
    alice: Api, bob: Api, sql: Sql
) -> None:
    source, viewed, foreign = await new_project(alice), await new_project(alice), await new_project(bob)
    await add(alice, source, bob.user_id, "editor")
    await add(alice, viewed, bob.user_id, "viewer")
    task = await alice.create(project_id=source)
    url = f"/api/tasks/{task['id']}"

    assert_problem(await bob.patch(url, json={"project_id": viewed}), 403)
    assert_problem(await alice.patch(url, json={"project_id": foreign}), 404)
    assert_problem(await alice.patch(url, json={"project_id": None}), 422)
    assert (await sql.task_row(task["id"]))["project_id"] == uuid.UUID(source)
    inbox = await bob.create(title="from my inbox")
    assert (await bob.patch(f"/api/tasks/{inbox['id']}", json={"project_id": source})).status_code == 200
    assert (await alice.get(f"/api/tasks/{inbox['id']}")).json()["project_id"] == source


async def test_racing_re_parents_never_close_a_cycle(alice: Api, sql: Sql) -> None:
    for _ in range(10):
        a, b = await alice.create(title="a"), await alice.create(title="b")
        answers = await asyncio.gather(
            alice.patch(f"/api/tasks/{a['id']}", json={"parent_id": b["id"]}),
            alice.patch(f"/api/tasks/{b['id']}", json={"parent_id": a["id"]}),
        )
        assert sorted(r.status_code for r in answers) == [200, 422], [r.text for r in answers]
        parents = [(await sql.task_row(t["id"]))["parent_id"] for t in (a, b)]
        assert parents.count(None) == 1


async def test_a_subtask_created_while_its_ancestor_is_deleted_is_refused_or_deleted_too(
    alice: Api, sql: Sql
) -> None:
    for _ in range(10):
        top, middle = await chain(alice, 2)
        created, deleted = await asyncio.gather(
            alice.post("/api/tasks", json={"title": "late", "parent_id": middle["id"]}),
            alice.delete(f"/api/tasks/{top['id']}"),
        )
        assert deleted.status_code == 204, deleted.text
        assert created.status_code in (201, 404), created.text
        if created.status_code == 201:  # it came first: the delete took it along, with its event
            assert await sql.task_row(created.json()["id"]) is None
            assert len(await events_of(sql, [created.json()["id"]], "deleted")) == 1
    orphans = await sql.pool.fetchval(
        "SELECT count(*) FROM task t WHERE t.user_id = $1 AND t.parent_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM task p WHERE p.id = t.parent_id)",
        alice.user_id,
    )
    assert orphans == 0 and await sql.counts(alice.user_id) != (0, 0)


async def test_deleting_a_project_deletes_nested_subtasks_leaves_first(alice: Api, sql: Sql) -> None:
    project = await new_project(alice)
    tasks = await chain(alice, MAX_DEPTH + 1, project_id=project)
    await subtask(alice, tasks[0])

    assert (await alice.delete(f"/api/projects/{project}")).status_code == 204

    assert await sql.pool.fetchval("SELECT count(*) FROM task WHERE project_id = $1", uuid.UUID(project)) == 0


async def test_subtasks_made_and_moved_while_their_project_is_deleted_never_fail_or_linger(
    alice: Api, sql: Sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("todo_backend.projects.DELETE_BATCH", 3)  # several transactions to race
    project = await new_project(alice)
    tasks = await chain(alice, 3, project_id=project)
    loose = [await alice.create(project_id=project) for _ in range(4)]
    stop = asyncio.Event()
    answers: list[int] = []

    async def churn() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            made = await alice.post("/api/tasks", json={"title": "late", "parent_id": tasks[n % 3]["id"]})
            moved = await alice.patch(f"/api/tasks/{loose[n % 4]['id']}", json={"parent_id": tasks[0]["id"]})
            answers.extend((made.status_code, moved.status_code))

    churning = asyncio.create_task(churn())
    try:
        deleted = await alice.delete(f"/api/projects/{project}")
    finally:
        stop.set()
        await churning
    assert deleted.status_code == 204, deleted.text
    assert answers and set(answers) <= {200, 201, 404, 422}, answers  # refused or done, never a 5xx
    left = await sql.pool.fetchval("SELECT count(*) FROM task WHERE project_id = $1", uuid.UUID(project))
    orphans = await sql.pool.fetchval(
        "SELECT count(*) FROM task t WHERE t.parent_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM task p WHERE p.id = t.parent_id)"
    )
    assert (left, orphans) == (0, 0)


# --- against a model ------------------------------------------------------------------------------

OPS = st.lists(
    st.tuples(st.sampled_from(["create", "reparent", "detach", "complete", "delete"]), st.integers(0, 30)),
    min_size=1,
    max_size=14,
)


def _depth(parents: dict[str, str | None], task: str) -> int:
    depth = 0
    while (task := parents[task]) is not None:  # type: ignore[assignment]
        depth += 1
    return depth


def _subtree(parents: dict[str, str | None], task: str) -> set[str]:
    found, grown = {task}, True
    while grown:
        more = {t for t, p in parents.items() if p in found} - found
        found |= more
        grown = bool(more)
    return found


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
async def test_generated_tree_operations_agree_with_an_independent_model(alice: Api, ops: Any) -> None:
    user = alice.as_user(f"tree-{uuid.uuid4()}")
    parents: dict[str, str | None] = {}  # the model: each task's parent
    done: set[str] = set()
    for op, pick in ops:
        ids = sorted(parents)
        a = ids[pick % len(ids)] if ids else None
        b = ids[(pick * 7 + 3) % len(ids)] if ids else None
        if op == "create" or a is None:
            fits = a is not None and _depth(parents, a) < MAX_DEPTH
            response = await user.post("/api/tasks", json={"title": "t", **({"parent_id": a} if a else {})})
            assert response.status_code == (201 if fits or a is None else 422), response.text
            if response.status_code == 201:
                parents[response.json()["id"]] = a
        elif op in ("reparent", "detach"):
            target = b if op == "reparent" else None
            height = max(_depth(parents, t) for t in _subtree(parents, a)) - _depth(parents, a)
            ok = target is None or (
                target not in _subtree(parents, a) and _depth(parents, target) + 1 + height <= MAX_DEPTH
            )
            response = await user.patch(f"/api/tasks/{a}", json={"parent_id": target})
            assert response.status_code == (200 if ok else 422), response.text
            if ok:
                parents[a] = target
        elif op == "complete":
            assert (await user.post(f"/api/tasks/{a}/complete")).status_code == 200
            done |= _subtree(parents, a)
        else:
            assert (await user.delete(f"/api/tasks/{a}")).status_code == 204
            for gone in _subtree(parents, a):
                del parents[gone]
                done.discard(gone)
    stored = {t["id"]: (t["parent_id"], t["completed"]) for t in await user.list_all()}
    assert stored == {t: (p, t in done) for t, p in parents.items()}
