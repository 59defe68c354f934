"""Projects, members and roles (issue 12): who may see and do what, through every project function.

A user who is not a member gets 404 for the project and everything in it, exactly as for another
user's task; a member whose role does not allow an action gets 403 naming the role it needs; removal
takes effect at once; a project has exactly one owner at all times, however requests race. The
membership rules are also checked against an independent model over generated request sequences.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taskapi import Api, Sql, assert_problem, b64

from todo_backend import catalog
from todo_backend.catalog import Function
from todo_backend.consumers import InboundEvent, consume, receive
from todo_backend.errors import PoisonEvent
from todo_backend.stored import to_cloudevent_json
from todo_backend.uow import UnitOfWork

RANK = {"viewer": 0, "editor": 1, "admin": 2, "owner": 3}


async def new_project(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/projects", json={"name": "Launch", **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def add(api: Api, project_id: str, user_id: str, role: str) -> None:
    response = await api.post(f"/api/projects/{project_id}/members", json={"user_id": user_id, "role": role})
    assert response.status_code == 201, response.text


async def owners(sql: Sql, project_id: str) -> list[str]:
    rows = await sql.pool.fetch(
        "SELECT user_id FROM project_member WHERE project_id = $1 AND role = 'owner'", uuid.UUID(project_id)
    )
    return [row["user_id"] for row in rows]


async def members(api: Api, project_id: str) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in await api.list_all(f"/api/projects/{project_id}/members")}


async def test_the_creator_owns_a_new_project_and_sees_it_with_that_role(alice: Api) -> None:
    response = await alice.post("/api/projects", json={"name": "  Launch  ", "color": "#1A2b3C"})

    assert response.status_code == 201, response.text
    project = response.json()
    assert response.headers["location"] == f"/api/projects/{project['id']}"
    assert response.headers["etag"] == '"1"'
    assert project["name"] == "Launch" and project["color"] == "#1A2b3C" and project["role"] == "owner"
    assert (await alice.get(f"/api/projects/{project['id']}")).json() == project
    assert project in await alice.list_all("/api/projects")
    assert await members(alice, project["id"]) == {alice.user_id: "owner"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "ok", "color": "red"}, "color"),
        ({"name": "ok", "color": "#12345"}, "color"),
        ({"name": "ok", "owner": "me"}, "owner"),
    ],
)
async def test_a_bad_project_is_refused_with_the_field_at_fault(
    alice: Api, sql: Sql, body: dict[str, Any], field: str
) -> None:
    before = await sql.pool.fetchval("SELECT count(*) FROM project")
    problem = assert_problem(await alice.post("/api/projects", json=body), 422)
    assert field in [error["field"] for error in problem["errors"]]
    assert await sql.pool.fetchval("SELECT count(*) FROM project") == before


def project_routes() -> list[tuple[str, str]]:
    return [
        (route.method, route.path)
        for fn in catalog.FUNCTIONS
        for route in fn.routes
        if route.path.startswith("/api/projects/")
    ]


BODIES = {
    ("PATCH", "/api/projects/{id}"): {"name": "taken over"},
    ("POST", "/api/projects/{id}/members"): {"user_id": "intruder", "role": "admin"},
    ("PATCH", "/api/projects/{id}/members/{user_id}"): {"role": "admin"},
    ("POST", "/api/projects/{id}/transfer"): {"user_id": "intruder"},
}


@pytest.mark.parametrize("method, path", project_routes())
async def test_a_non_member_gets_404_on_every_project_route_and_changes_nothing(
    alice: Api, bob: Api, sql: Sql, method: str, path: str
) -> None:
    project = await new_project(alice)
    await add(alice, project["id"], "carol", "editor")
    url = path.format(id=project["id"], user_id="carol")
    before = await sql.pool.fetchval("SELECT count(*) FROM task_event WHERE project_id = $1", project["id"])

    response = await bob.request(method, url, json=BODIES.get((method, path)))

    assert_problem(response, 404)
    assert (await alice.get(f"/api/projects/{project['id']}")).json() == project
    assert await members(alice, project["id"]) == {alice.user_id: "owner", "carol": "editor"}
    after = await sql.pool.fetchval("SELECT count(*) FROM task_event WHERE project_id = $1", project["id"])
    assert after == before


# What each role may do: (method, path, body, the least role allowed).
ACTIONS = [
    ("GET", "/api/projects/{id}", None, "viewer"),
    ("GET", "/api/projects/{id}/members", None, "viewer"),
    ("GET", "/api/projects/{id}/events", None, "viewer"),
    ("PATCH", "/api/projects/{id}", {"name": "renamed"}, "admin"),
    ("POST", "/api/projects/{id}/members", {"user_id": "newcomer", "role": "viewer"}, "admin"),
    ("PATCH", "/api/projects/{id}/members/target", {"role": "viewer"}, "admin"),
    ("DELETE", "/api/projects/{id}/members/target", None, "admin"),
    ("POST", "/api/projects/{id}/transfer", {"user_id": "target"}, "owner"),
    ("DELETE", "/api/projects/{id}", None, "owner"),
]


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
@pytest.mark.parametrize("method, path, body, least", ACTIONS)
async def test_a_member_may_do_what_their_role_allows_and_gets_403_naming_the_role_otherwise(
    alice: Api, role: str, method: str, path: str, body: dict[str, Any] | None, least: str
) -> None:
    project = await new_project(alice)
    member = alice.as_user(f"member-{uuid.uuid4()}")
    await add(alice, project["id"], member.user_id, role)
    await add(alice, project["id"], "target", "editor")

    response = await member.request(method, path.format(id=project["id"]), json=body)

    if RANK[role] >= RANK[least]:
        assert response.status_code < 300, response.text
    else:
        problem = assert_problem(response, 403)
        assert f"the {least} role" in problem["detail"] and role in problem["detail"]


async def test_a_removed_member_gets_404_on_their_very_next_request(alice: Api) -> None:
    project = await new_project(alice)
    bob = alice.as_user(f"bob-{uuid.uuid4()}")
    await add(alice, project["id"], bob.user_id, "admin")
    assert (await bob.get(f"/api/projects/{project['id']}")).status_code == 200

    response = await alice.delete(f"/api/projects/{project['id']}/members/{bob.user_id}")

    assert response.status_code == 204
    assert_problem(await bob.get(f"/api/projects/{project['id']}"), 404)
    assert_problem(await bob.get(f"/api/projects/{project['id']}/events"), 404)
    assert project["id"] not in [p["id"] for p in await bob.list_all("/api/projects")]


async def test_a_member_may_leave_but_the_owner_only_after_a_transfer(alice: Api, sql: Sql) -> None:
    project = await new_project(alice)
    bob = alice.as_user(f"bob-{uuid.uuid4()}")
    carol = alice.as_user(f"carol-{uuid.uuid4()}")
    await add(alice, project["id"], bob.user_id, "viewer")
    await add(alice, project["id"], carol.user_id, "editor")
    members_url = f"/api/projects/{project['id']}/members"

    assert (await bob.delete(f"{members_url}/{bob.user_id}")).status_code == 204  # a viewer leaves
    assert_problem(await alice.delete(f"{members_url}/{alice.user_id}"), 409)  # the owner cannot
    assert_problem(await alice.patch(f"{members_url}/{alice.user_id}", json={"role": "admin"}), 403)
    assert_problem(await alice.post(members_url, json={"user_id": carol.user_id, "role": "owner"}), 422)
    assert_problem(await alice.patch(f"{members_url}/{carol.user_id}", json={"role": "owner"}), 422)

    transferred = await alice.post(f"/api/projects/{project['id']}/transfer", json={"user_id": carol.user_id})

    assert transferred.status_code == 200, transferred.text
    assert transferred.json()["role"] == "admin"
    assert await members(alice, project["id"]) == {alice.user_id: "admin", carol.user_id: "owner"}
    assert (await alice.delete(f"{members_url}/{alice.user_id}")).status_code == 204  # now they may
    assert await owners(sql, project["id"]) == [carol.user_id]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"user_id": "", "role": "viewer"}, 422),
        ({"user_id": "   ", "role": "viewer"}, 422),
        ({"user_id": "x" * 256, "role": "viewer"}, 422),
        ({"user_id": "a\x00b", "role": "viewer"}, 422),
        ({"user_id": 7, "role": "viewer"}, 422),
        ({"user_id": "dave", "role": "superuser"}, 422),
        ({"user_id": "dave"}, 422),
        ({"user_id": "dave", "role": "viewer", "extra": 1}, 422),
    ],
)
async def test_a_bad_member_is_refused_and_added_nobody(
    alice: Api, body: dict[str, Any], status: int
) -> None:
    project = await new_project(alice)
    assert_problem(await alice.post(f"/api/projects/{project['id']}/members", json=body), status)
    assert await members(alice, project["id"]) == {alice.user_id: "owner"}


async def test_adding_a_member_twice_is_a_conflict(alice: Api) -> None:
    project = await new_project(alice)
    await add(alice, project["id"], "dave", "viewer")
    problem = assert_problem(
        await alice.post(f"/api/projects/{project['id']}/members", json={"user_id": "dave", "role": "admin"}),
        409,
    )
    assert problem["errors"][0]["field"] == "user_id"
    assert await members(alice, project["id"]) == {alice.user_id: "owner", "dave": "viewer"}


async def test_a_transfer_goes_only_to_another_member(alice: Api) -> None:
    project = await new_project(alice)
    url = f"/api/projects/{project['id']}/transfer"
    assert_problem(await alice.post(url, json={"user_id": "stranger"}), 422)
    assert_problem(await alice.post(url, json={"user_id": alice.user_id}), 422)
    assert await members(alice, project["id"]) == {alice.user_id: "owner"}


async def test_racing_transfers_leaves_and_role_changes_leave_exactly_one_owner(alice: Api, sql: Sql) -> None:
    project = await new_project(alice)
    heirs = [f"heir-{n}-{uuid.uuid4()}" for n in range(6)]
    for heir in heirs:
        await add(alice, project["id"], heir, "admin")
    url = f"/api/projects/{project['id']}"

    async def chaos(heir: str) -> None:
        # Each heir grabs the project if it owns it, demotes others, and tries to leave.
        as_heir = alice.as_user(heir)
        await as_heir.post(f"{url}/transfer", json={"user_id": heirs[(heirs.index(heir) + 1) % len(heirs)]})
        await as_heir.patch(f"{url}/members/{alice.user_id}", json={"role": "viewer"})
        await as_heir.delete(f"{url}/members/{heir}")

    transfers = [alice.post(f"{url}/transfer", json={"user_id": heir}) for heir in heirs]
    results = await asyncio.gather(*transfers, *(chaos(heir) for heir in heirs))

    assert [r.status_code for r in results[: len(heirs)]].count(
        200
    ) == 1  # one transfer wins; then alice is an admin
    [owner] = await owners(sql, project["id"])
    listed = await members(alice.as_user(owner), project["id"])
    assert [user for user, role in listed.items() if role == "owner"] == [owner]


async def test_update_and_delete_honour_if_match_and_delete_keeps_the_history(alice: Api, sql: Sql) -> None:
    project = await new_project(alice)
    url = f"/api/projects/{project['id']}"
    assert_problem(await alice.patch(url, json={"name": "x"}, headers={"If-Match": '"7"'}), 412)
    renamed = await alice.patch(url, json={"name": "Renamed", "color": None}, headers={"If-Match": '"1"'})
    assert renamed.status_code == 200 and renamed.json()["version"] == 2 and renamed.headers["etag"] == '"2"'
    assert_problem(await alice.delete(url, headers={"If-Match": '"1"'}), 412)

    assert (await alice.delete(url, headers={"If-Match": '"2"'})).status_code == 204

    assert_problem(await alice.get(url), 404)
    assert (
        await sql.pool.fetchval(
            "SELECT count(*) FROM project_member WHERE project_id = $1", uuid.UUID(project["id"])
        )
        == 0
    )
    types = [
        row["type"]
        for row in await sql.pool.fetch(
            "SELECT type FROM task_event WHERE project_id = $1 ORDER BY sequence", project["id"]
        )
    ]
    assert types == [
        "dev.todo.project.created",
        "dev.todo.project-member.added",
        "dev.todo.project.updated",
        "dev.todo.project.deleted",
    ]


async def test_the_activity_feed_pages_through_every_event_of_the_project_in_order(alice: Api) -> None:
    project = await new_project(alice)
    for n in range(5):
        await add(alice, project["id"], f"member-{n}", "viewer")
    await alice.patch(f"/api/projects/{project['id']}/members/member-0", json={"role": "editor"})
    await alice.delete(f"/api/projects/{project['id']}/members/member-1")

    feed = await alice.list_all(f"/api/projects/{project['id']}/events", limit=2)

    assert [e["type"] for e in feed] == [
        "dev.todo.project.created",
        *["dev.todo.project-member.added"] * 6,
        "dev.todo.project-member.updated",
        "dev.todo.project-member.removed",
    ]
    assert all(e["projectid"] == project["id"] and e["userid"] == alice.user_id for e in feed)
    assert [e["data"]["member"]["user_id"] for e in feed[1:]] == [
        alice.user_id, *[f"member-{n}" for n in range(5)], "member-0", "member-1"
    ]  # fmt: skip
    assert [int(e["sequence"]) for e in feed] == sorted(int(e["sequence"]) for e in feed)
    assert_problem(await alice.get(f"/api/projects/{project['id']}/events", params={"cursor": "bm9wZQ"}), 422)


async def test_the_feed_pages_in_order_without_repeats_or_holes_while_members_write(
    alice: Api, sql: Sql
) -> None:
    project, editor, _, _ = await team(alice)
    feed_url = f"/api/projects/{project['id']}/events"
    body = {"title": "t", "project_id": project["id"]}
    for _ in range(6):
        assert (await editor.post("/api/tasks", json=body)).status_code == 201
    rows = await sql.pool.fetch("SELECT id FROM task_event WHERE project_id = $1", project["id"])
    before = {str(row["id"]) for row in rows}
    stop = asyncio.Event()

    async def write(api: Api) -> None:
        while not stop.is_set():
            task = (await api.post("/api/tasks", json=body)).json()
            await api.patch(f"/api/tasks/{task['id']}", json={"title": "t2"})

    writers = [asyncio.create_task(write(api)) for api in (alice, editor, editor)]
    try:
        walks = [await alice.list_all(feed_url, limit=3) for _ in range(3)]
    finally:
        stop.set()
        await asyncio.gather(*writers)

    for walk in walks:
        sequences = [int(e["sequence"]) for e in walk]
        assert sequences == sorted(set(sequences))  # in order, none twice
        assert before <= {e["id"] for e in walk}  # all that was there when it began
    final = await alice.list_all(feed_url, limit=7)
    stored = await sql.pool.fetchval("SELECT count(*) FROM task_event WHERE project_id = $1", project["id"])
    assert len(final) == stored > len(before)


async def test_a_member_changes_appear_under_the_acting_user(alice: Api, sql: Sql) -> None:
    project = await new_project(alice)
    bob = alice.as_user(f"bob-{uuid.uuid4()}")
    await add(alice, project["id"], bob.user_id, "admin")
    await add(bob, project["id"], "carol", "viewer")

    row = await sql.pool.fetchrow(
        "SELECT user_id, subject, partition_key FROM task_event WHERE project_id = $1"
        " ORDER BY sequence DESC LIMIT 1",
        project["id"],
    )
    assert row is not None and row["user_id"] == bob.user_id
    assert row["subject"] == row["partition_key"] == project["id"]


# --- the membership rules against a model -------------------------------------------------------

USERS = ("u0", "u1", "u2", "u3")
ROLES = ("viewer", "editor", "admin", "owner")
OPERATIONS = st.tuples(
    st.sampled_from(USERS),  # who acts
    st.sampled_from(("add", "change", "remove", "transfer")),
    st.sampled_from(USERS),  # whom it is about
    st.sampled_from(ROLES),
)


def model(members: dict[str, str], actor: str, op: str, target: str, role: str) -> int:
    """The status the rules give, applying the change to `members`: an independent statement of them."""
    if op in ("add", "change") and role == "owner":
        return 422
    if actor not in members:
        return 404
    rank = RANK[members[actor]]
    if op == "add":
        if rank < RANK["admin"]:
            return 403
        if target in members:
            return 409
        members[target] = role
        return 201
    if op == "change":
        if rank < RANK["admin"]:
            return 403
        if target not in members:
            return 404
        if members[target] == "owner":
            return 403
        members[target] = role
        return 200
    if op == "remove":
        if target != actor and rank < RANK["admin"]:
            return 403
        if target not in members:
            return 404
        if members[target] == "owner":
            return 409 if target == actor else 403
        del members[target]
        return 204
    if members[actor] != "owner":
        return 403
    if target == actor or target not in members:
        return 422
    members[actor], members[target] = "admin", "owner"
    return 200


def request(op: str, project_id: str, target: str, role: str) -> tuple[str, str, dict[str, Any] | None]:
    url = f"/api/projects/{project_id}"
    return {
        "add": ("POST", f"{url}/members", {"user_id": target, "role": role}),
        "change": ("PATCH", f"{url}/members/{target}", {"role": role}),
        "remove": ("DELETE", f"{url}/members/{target}", None),
        "transfer": ("POST", f"{url}/transfer", {"user_id": target}),
    }[op]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=12))
async def test_every_sequence_of_membership_requests_follows_the_rules(
    new_user: Callable[[], Api], operations: list[tuple[str, str, str, str]]
) -> None:
    creator = new_user()
    users = {name: creator.as_user(f"{name}-{creator.user_id}") for name in USERS}
    owner = users["u0"]
    project = await new_project(owner)
    expected = {owner.user_id: "owner"}
    for actor, op, target, role in operations:
        method, url, body = request(op, project["id"], users[target].user_id, role)
        status = model(expected, users[actor].user_id, op, users[target].user_id, role)
        response = await users[actor].request(method, url, json=body)
        assert response.status_code == status, (actor, op, target, role, response.text)
    [holder] = [user for user, role in expected.items() if role == "owner"]
    assert await members(creator.as_user(holder), project["id"]) == expected


# --- tasks in projects ---------------------------------------------------------------------------


async def team(alice: Api) -> tuple[dict[str, Any], Api, Api, Api]:
    """A project of alice's with an editor and a viewer, and someone who is not a member."""
    project = await new_project(alice)
    editor, viewer, outsider = (alice.as_user(f"{name}-{uuid.uuid4()}") for name in ("ed", "vi", "out"))
    await add(alice, project["id"], editor.user_id, "editor")
    await add(alice, project["id"], viewer.user_id, "viewer")
    return project, editor, viewer, outsider


async def test_editors_add_and_change_a_projects_tasks_viewers_read_them_others_get_404(alice: Api) -> None:
    project, editor, viewer, outsider = await team(alice)
    body = {"title": "ship it", "project_id": project["id"]}

    created = await editor.post("/api/tasks", json=body)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["project_id"] == project["id"]
    assert "editor role" in assert_problem(await viewer.post("/api/tasks", json=body), 403)["detail"]
    problem = assert_problem(await outsider.post("/api/tasks", json=body), 404)
    assert problem["errors"][0]["field"] == "project_id"

    url = f"/api/tasks/{task['id']}"
    assert (await viewer.get(url)).json() == task
    assert (await viewer.get(f"{url}/events")).status_code == 200
    for method, path, payload in (
        ("PATCH", url, {"title": "mine now"}),
        ("POST", f"{url}/complete", None),
        ("DELETE", url, None),
    ):
        assert_problem(await viewer.request(method, path, json=payload), 403)
        assert_problem(await outsider.request(method, path, json=payload), 404)
    assert_problem(await outsider.get(url), 404)
    assert_problem(await outsider.get(f"{url}/events"), 404)
    assert (await alice.patch(url, json={"title": "renamed"})).status_code == 200
    assert (await editor.post(f"{url}/complete")).status_code == 200
    assert (await viewer.get(url)).json()["completed"] is True


async def test_lists_show_my_inbox_and_my_projects_tasks_and_filter_by_project(alice: Api) -> None:
    project, editor, viewer, outsider = await team(alice)
    shared = (await editor.post("/api/tasks", json={"title": "shared", "project_id": project["id"]})).json()
    own = await viewer.create(title="own")
    theirs = await outsider.create(title="theirs")

    assert {t["id"] for t in await viewer.list_all()} == {shared["id"], own["id"]}
    assert [t["id"] for t in await viewer.list_all(project=project["id"])] == [shared["id"]]
    assert [t["id"] for t in await viewer.list_all(project="inbox")] == [own["id"]]
    assert [t["id"] for t in await outsider.list_all()] == [theirs["id"]]
    assert_problem(await outsider.get("/api/tasks", params={"project": project["id"]}), 404)
    assert_problem(await viewer.get("/api/tasks", params={"project": "someone's"}), 422)


async def test_a_removed_member_loses_the_projects_tasks_at_once(alice: Api) -> None:
    project, editor, viewer, _ = await team(alice)
    task = (await editor.post("/api/tasks", json={"title": "t", "project_id": project["id"]})).json()

    await alice.delete(f"/api/projects/{project['id']}/members/{viewer.user_id}")

    assert_problem(await viewer.get(f"/api/tasks/{task['id']}"), 404)
    assert_problem(await viewer.get(f"/api/tasks/{task['id']}/events"), 404)
    assert await viewer.list_all() == []


async def test_a_projects_task_events_carry_the_project_and_who_acted(alice: Api) -> None:
    project, editor, _, _ = await team(alice)
    task = (await editor.post("/api/tasks", json={"title": "t", "project_id": project["id"]})).json()
    await alice.patch(f"/api/tasks/{task['id']}", json={"priority": "high"})

    history = await editor.list_all(f"/api/tasks/{task['id']}/events")
    feed = await alice.list_all(f"/api/projects/{project['id']}/events")

    assert [(e["type"], e["userid"]) for e in history] == [
        ("dev.todo.task.created", editor.user_id),
        ("dev.todo.task.updated", alice.user_id),
    ]
    assert all(e["projectid"] == project["id"] for e in history)
    assert [e["id"] for e in feed if e["subject"] == task["id"]] == [e["id"] for e in history]


async def test_a_projects_task_moves_to_another_project_never_to_an_inbox(alice: Api) -> None:
    project, editor, _, _ = await team(alice)
    task = (await editor.post("/api/tasks", json={"title": "t", "project_id": project["id"]})).json()
    url = f"/api/tasks/{task['id']}"

    problem = assert_problem(await editor.put(url, json={"title": "t"}), 422)  # a PUT resets it: moving
    assert problem["errors"][0]["field"] == "project_id"
    assert_problem(await editor.patch(url, json={"project_id": None}), 422)
    replaced = await editor.put(url, json={"title": "t2", "project_id": project["id"]})
    assert replaced.status_code == 200 and replaced.json()["project_id"] == project["id"]


async def test_deleting_a_project_deletes_its_tasks_batch_by_batch_each_with_its_event(
    alice: Api, sql: Sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("todo_backend.projects.DELETE_BATCH", 2)
    project, editor, _, _ = await team(alice)
    ids = [
        (await editor.post("/api/tasks", json={"title": f"t{n}", "project_id": project["id"]})).json()["id"]
        for n in range(5)
    ]
    inbox = await editor.create(title="stays")

    assert (await alice.delete(f"/api/projects/{project['id']}")).status_code == 204

    assert (
        await sql.pool.fetchval("SELECT count(*) FROM task WHERE project_id = $1", uuid.UUID(project["id"]))
        == 0
    )
    assert (await editor.get(f"/api/tasks/{inbox['id']}")).status_code == 200
    rows = await sql.pool.fetch(
        "SELECT type, subject, user_id, xmin::text AS xid FROM task_event WHERE project_id = $1"
        " AND type IN ('dev.todo.task.deleted', 'dev.todo.project.deleted') ORDER BY sequence",
        project["id"],
    )
    assert sorted(r["subject"] for r in rows if r["type"] == "dev.todo.task.deleted") == sorted(ids)
    assert rows[-1]["type"] == "dev.todo.project.deleted" and {r["user_id"] for r in rows} == {alice.user_id}
    assert len({r["xid"] for r in rows}) == 3  # 2 + 2 + (1 and the project)


async def test_tasks_created_while_their_project_is_deleted_are_refused_or_deleted_never_left(
    alice: Api, sql: Sql
) -> None:
    project, editor, _, _ = await team(alice)
    body = {"title": "racing", "project_id": project["id"]}
    answers: list[Any] = []
    under_way = asyncio.Event()

    async def keep_creating() -> None:  # until the project is gone
        while not answers or answers[-1].status_code != 404:
            answers.append(await editor.post("/api/tasks", json=body))
            if len(answers) >= 12:
                under_way.set()

    creators = [asyncio.create_task(keep_creating()) for _ in range(4)]
    await under_way.wait()
    deleted = await alice.delete(f"/api/projects/{project['id']}")
    await asyncio.gather(*creators)

    assert deleted.status_code == 204, deleted.text
    assert {r.status_code for r in answers} == {201, 404}
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM task WHERE project_id = $1", uuid.UUID(project["id"]))
        == 0
    )
    created = {r.json()["id"] for r in answers if r.status_code == 201}
    gone = {
        row["subject"]
        for row in await sql.pool.fetch(
            "SELECT subject FROM task_event WHERE project_id = $1 AND type = 'dev.todo.task.deleted'",
            project["id"],
        )
    }
    assert created == gone  # every task that got in went out again, with its event


async def test_a_removed_member_cannot_read_the_projects_events_through_any_history(alice: Api) -> None:
    project = await new_project(alice)
    bob = alice.as_user(f"bob-{uuid.uuid4()}")
    await add(alice, project["id"], bob.user_id, "admin")
    await add(bob, project["id"], "carol", "viewer")
    await bob.patch(f"/api/projects/{project['id']}", json={"name": "bob's now"})

    await alice.delete(f"/api/projects/{project['id']}/members/{bob.user_id}")

    # The events bob wrote carry his user id; the project's id is their subject.
    assert_problem(await bob.get(f"/api/tasks/{project['id']}/events"), 404)
    assert_problem(await bob.get(f"/api/projects/{project['id']}/events"), 404)


@pytest.mark.parametrize("member", ["%00", "a%00b", "%ED%A0%80", "%20%20"])
async def test_a_member_path_no_user_id_could_be_names_nobody(alice: Api, member: str) -> None:
    project = await new_project(alice)
    url = f"/api/projects/{project['id']}/members/{member}"
    assert_problem(await alice.patch(url, json={"role": "viewer"}), 404)
    assert_problem(await alice.delete(url), 404)


@pytest.mark.parametrize("after", ["\u0000", "\ud800", 7, None])
async def test_a_forged_members_cursor_is_a_422(alice: Api, after: Any) -> None:
    project = await new_project(alice)
    cursor = b64({"after": after}) if after != "\ud800" else "eyJhZnRlciI6Ilx1ZDgwMCJ9"
    response = await alice.get(f"/api/projects/{project['id']}/members", params={"cursor": cursor})
    assert_problem(response, 422)


# --- assignees -----------------------------------------------------------------------------------


async def test_a_projects_task_is_assigned_to_a_member_or_to_nobody(alice: Api, sql: Sql) -> None:
    project, editor, viewer, outsider = await team(alice)
    body = {"title": "t", "project_id": project["id"]}

    refused = await editor.post("/api/tasks", json={**body, "assignee_id": outsider.user_id})
    assert assert_problem(refused, 422)["errors"][0]["field"] == "assignee_id"
    assert (
        await sql.pool.fetchval("SELECT count(*) FROM task WHERE project_id = $1", uuid.UUID(project["id"]))
        == 0
    )
    created = await editor.post("/api/tasks", json={**body, "assignee_id": viewer.user_id})
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["assignee_id"] == viewer.user_id
    url = f"/api/tasks/{task['id']}"

    assert_problem(await editor.patch(url, json={"assignee_id": outsider.user_id}), 422)
    assert (await editor.get(url)).json()["assignee_id"] == viewer.user_id
    moved = await editor.patch(url, json={"assignee_id": alice.user_id})
    assert moved.status_code == 200 and moved.json()["assignee_id"] == alice.user_id
    cleared = await editor.patch(url, json={"assignee_id": None})
    assert cleared.status_code == 200 and cleared.json()["assignee_id"] is None
    history = await editor.list_all(f"{url}/events")
    assert [e["data"].get("changed") for e in history[1:]] == [["assignee_id"], ["assignee_id"]]


async def test_a_member_who_leaves_or_is_removed_is_unassigned_from_the_projects_tasks(
    alice: Api, sql: Sql
) -> None:
    project, editor, viewer, _ = await team(alice)
    body = {"title": "t", "project_id": project["id"]}
    tasks = [
        (await editor.post("/api/tasks", json={**body, "assignee_id": who})).json()
        for who in (
            viewer.user_id,
            viewer.user_id,
            editor.user_id,
        )
    ]
    elsewhere = await viewer.create(title="inbox", assignee_id=viewer.user_id)

    assert (await viewer.delete(f"/api/projects/{project['id']}/members/{viewer.user_id}")).status_code == 204

    assert [(await editor.get(f"/api/tasks/{t['id']}")).json()["assignee_id"] for t in tasks] == [
        None,
        None,
        editor.user_id,
    ]
    assert (await viewer.get(f"/api/tasks/{elsewhere['id']}")).json()["assignee_id"] == viewer.user_id
    rows = await sql.pool.fetch(
        "SELECT subject, user_id, data->'changed' AS changed, xmin::text AS xid FROM task_event"
        " WHERE project_id = $1 AND type IN ('dev.todo.task.updated', 'dev.todo.project-member.removed')"
        " ORDER BY sequence",
        project["id"],
    )
    assert [r["subject"] for r in rows[1:]] == [tasks[0]["id"], tasks[1]["id"]]
    assert all(r["changed"] == ["assignee_id"] for r in rows[1:]) and len({r["xid"] for r in rows}) == 1
    assert {r["user_id"] for r in rows} == {viewer.user_id}  # who acted: the one who left


async def test_an_assignment_racing_the_assignees_removal_never_leaves_a_non_member_assigned(
    alice: Api, sql: Sql
) -> None:
    project, editor, _, _ = await team(alice)
    members = f"/api/projects/{project['id']}/members"
    for _ in range(8):
        leaver = alice.as_user(f"leaver-{uuid.uuid4()}")
        await add(alice, project["id"], leaver.user_id, "editor")
        task = (await editor.post("/api/tasks", json={"title": "t", "project_id": project["id"]})).json()
        assigned, removed = await asyncio.gather(
            editor.patch(f"/api/tasks/{task['id']}", json={"assignee_id": leaver.user_id}),
            alice.delete(f"{members}/{leaver.user_id}"),
        )
        assert removed.status_code == 204 and assigned.status_code in (200, 422), assigned.text
    strays = await sql.pool.fetchval(
        "SELECT count(*) FROM task t WHERE t.project_id = $1 AND t.assignee_id IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM project_member m WHERE m.project_id = t.project_id AND m.user_id = t.assignee_id)",
        uuid.UUID(project["id"]),
    )
    assert strays == 0


async def test_an_inbox_task_is_assigned_to_its_owner_or_to_nobody(alice: Api, bob: Api) -> None:
    refused = await alice.post("/api/tasks", json={"title": "t", "assignee_id": bob.user_id})
    assert assert_problem(refused, 422)["errors"][0]["field"] == "assignee_id"
    task = await alice.create(assignee_id=alice.user_id)
    assert task["assignee_id"] == alice.user_id
    assert_problem(await alice.patch(f"/api/tasks/{task['id']}", json={"assignee_id": bob.user_id}), 422)


async def test_lists_filter_by_assignee(alice: Api) -> None:
    project, editor, viewer, _ = await team(alice)
    body = {"title": "t", "project_id": project["id"]}
    to_viewer = (await editor.post("/api/tasks", json={**body, "assignee_id": viewer.user_id})).json()
    to_editor = (await editor.post("/api/tasks", json={**body, "assignee_id": editor.user_id})).json()
    nobodys = (await editor.post("/api/tasks", json=body)).json()

    assert [t["id"] for t in await viewer.list_all(assignee="me")] == [to_viewer["id"]]
    assert [t["id"] for t in await viewer.list_all(assignee=editor.user_id)] == [to_editor["id"]]
    assert [t["id"] for t in await viewer.list_all(assignee="none")] == [nobodys["id"]]


async def test_a_consumer_takes_a_members_event_after_they_left_and_refuses_a_forged_one(
    alice: Api, sql: Sql
) -> None:
    project, editor, _, _ = await team(alice)
    task = (await editor.post("/api/tasks", json={"title": "t", "project_id": project["id"]})).json()
    await alice.delete(f"/api/projects/{project['id']}/members/{editor.user_id}")
    [row] = await sql.pool.fetch(
        "SELECT sequence, id, type, source, subject, time, partition_key, user_id, data,"
        " project_id, traceparent, tracestate FROM task_event WHERE subject = $1",
        task["id"],
    )
    stored = SimpleNamespace(**dict(row))
    takes = Function("takes-created", "test", event_types=("dev.todo.task.created",))
    handled: list[str] = []

    async def effect(event: InboundEvent, uow: UnitOfWork) -> None:
        handled.append(event.user_id)

    as_written = to_cloudevent_json(stored)
    await consume("test-consumer", receive(takes, CloudEvent(as_written, as_written.pop("data"))), effect)
    forged = {**to_cloudevent_json(stored), "id": str(uuid.uuid4())}
    with pytest.raises(PoisonEvent):
        await consume("test-consumer", receive(takes, CloudEvent(forged, forged.pop("data"))), effect)

    assert handled == [editor.user_id]
