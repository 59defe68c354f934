"""create-task's handler, on asyncpg directly: the busiest write, with no ORM unit of work and no
SQLAlchemy on its cold path. The task, its outbox row and (with an Idempotency-Key) the stored response
are one statement; the task's JSON is rendered once, for the response, the event and the stored reply."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from todo_backend import tracing
from todo_backend.commits import announce
from todo_backend.derived import (
    CLAIM_IDEMPOTENCY_KEY,
    CREATE_TASK,
    CREATE_TASK_WITH_KEY,
    LOCK_TREE,
    MEMBER_ROLE,
    PRIOR_RESPONSE,
    PROJECT_KEPT,
    TASK_COLUMNS,
    TASK_CREATED,
    TASK_EVENT_COLUMNS,
    TASK_LINEAGE,
    TASK_TREE,
    TaskCreate,
    task_public,
)
from todo_backend.errors import NotFound, Unprocessable
from todo_backend.fields import utcnow
from todo_backend.roles import ProjectRole, require
from todo_backend.settings import Settings
from todo_backend.subtasks import MAX_DEPTH, NO_PARENT, check_parent, tree_key


@dataclass(frozen=True)
class CreateTask:
    user_id: str
    fields: TaskCreate
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Created:
    id: str
    json: str  # the task's JSON as the first response gave it, replayed for a repeated key
    replayed: bool = False


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def reminder_instant(due_date: datetime | None, minutes: int | None, default_minutes: int) -> datetime | None:
    """When a task's reminder falls due: its due date less its lead time, DEFAULT_REMIND_BEFORE_MINUTES
    (`default_minutes`) for a task that names none. None without a due date."""
    if due_date is None:
        return None
    return due_date - timedelta(minutes=default_minutes if minutes is None else minutes)


async def create_task(cmd: CreateTask, pool: asyncpg.Pool, source: str, settings: Settings) -> Created:
    """`source` is the emitting function's name (the CloudEvent source is /functions/<name>)."""
    fields = cmd.fields
    if cmd.idempotency_key is None and fields.project_id is None and fields.parent_id is None:
        _check_inbox_assignee(fields.assignee_id, cmd.user_id)
        created = _new_task(cmd, None, source, settings)
        await pool.fetchval(CREATE_TASK, *created.params)  # an inbox task: one round trip
    else:
        async with pool.acquire() as conn, conn.transaction():
            if fields.parent_id is not None:
                project_id = await _under_parent(conn, fields.parent_id, fields, cmd.user_id)
            else:
                project_id = fields.project_id
                if project_id is not None:
                    await _may_add_tasks(conn, project_id, cmd.user_id, fields.assignee_id)
            if project_id is None:
                _check_inbox_assignee(fields.assignee_id, cmd.user_id)
            created = _new_task(cmd, project_id, source, settings)
            if cmd.idempotency_key is None:
                await conn.fetchval(CREATE_TASK, *created.params)
            else:
                prior = await _claim_idempotency_key(cmd, conn, settings)
                if prior is not None:
                    return Created(json.loads(prior)["id"], prior, replayed=True)
                await conn.fetchval(CREATE_TASK_WITH_KEY, *created.params, created.json, cmd.idempotency_key)
    await announce([created.id])
    return Created(created.id, created.json)


@dataclass(frozen=True)
class _NewTask:
    id: str
    json: str
    params: list[Any]  # CREATE_TASK's


def _new_task(cmd: CreateTask, project_id: uuid.UUID | None, source: str, settings: Settings) -> _NewTask:
    """The task's row and its task.created event's, the task's JSON rendered once for both."""
    now = utcnow()
    task: dict[str, Any] = {
        **cmd.fields.model_dump(),
        "id": uuid.uuid4(),
        "user_id": cmd.user_id,
        "project_id": project_id,
        "reminded_at": None,
        "recurring_task_id": None,
        "occurrence_at": None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    task["completed_at"] = now if task["completed"] else None
    task["remind_at"] = reminder_instant(
        task["due_date"], task["remind_before_minutes"], settings.default_remind_before_minutes
    )
    body = _dumps(task_public(task))
    trace = tracing.current()
    subject = str(task["id"])
    event = {
        "id": uuid.uuid4(),
        "type": TASK_CREATED,
        "source": f"/functions/{source}",
        "subject": subject,
        "time": now,
        "partition_key": subject,
        "user_id": cmd.user_id,
        "data": f'{{"task":{body}}}',
        "project_id": None if project_id is None else str(project_id),
        "traceparent": trace and trace.traceparent,
        "tracestate": trace and trace.tracestate,
    }
    return _NewTask(subject, body, [task[c] for c in TASK_COLUMNS] + [event[c] for c in TASK_EVENT_COLUMNS])


def _check_inbox_assignee(assignee_id: str | None, user_id: str) -> None:
    if assignee_id not in (None, user_id):
        raise Unprocessable("an inbox task is assigned to its owner or to nobody", "assignee_id")


async def _under_parent(
    conn: asyncpg.Connection, parent_id: uuid.UUID, fields: TaskCreate, user_id: str
) -> uuid.UUID | None:
    """A subtask's project: its parent's (a request naming another is refused), once the user may add
    tasks to it, its tree is locked (after the project, as everywhere: subtasks.py), and the parent may
    take one more subtask."""
    tree = await conn.fetchrow(TASK_TREE, parent_id)
    named = "project_id" in fields.model_fields_set
    project_id = fields.project_id if named or tree is None else tree["project_id"]
    if project_id is not None:
        try:
            await _may_add_tasks(conn, project_id, user_id, fields.assignee_id)
        except NotFound:
            if named:
                raise
            raise NotFound(NO_PARENT, "parent_id") from None  # the parent is unseen
    await conn.execute(LOCK_TREE, tree_key(project_id, user_id))
    check_parent(await conn.fetch(TASK_LINEAGE, parent_id, MAX_DEPTH), project_id, user_id)
    return project_id


async def _may_add_tasks(
    conn: asyncpg.Connection, project_id: uuid.UUID, user_id: str, assignee_id: str | None
) -> None:
    """Editors and above add a project's tasks, assigned to a member or to nobody; a non-member is told
    there is no such project. The project and the memberships stay locked until the task is in (a
    deletion or a removal waits for it, or comes first)."""
    kept = await conn.fetchval(PROJECT_KEPT, project_id)
    role = None if kept is None else await conn.fetchval(MEMBER_ROLE, project_id, user_id)
    if role is None:
        raise NotFound("no such project", "project_id")
    require(ProjectRole(role), ProjectRole.editor, "adding tasks")
    if (
        assignee_id not in (None, user_id)
        and await conn.fetchval(MEMBER_ROLE, project_id, assignee_id) is None
    ):
        raise Unprocessable("the assignee must be a member of the task's project", "assignee_id")


async def _claim_idempotency_key(cmd: CreateTask, conn: asyncpg.Connection, settings: Settings) -> str | None:
    """Claim the key in this transaction, or return the stored response of its first use.

    A concurrent request with the same key blocks on the primary key until the first commits, then
    sees its response; an expired key is claimed afresh.
    """
    digest = hashlib.sha256(
        json.dumps(cmd.fields.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    now = utcnow()
    expired = now - timedelta(hours=settings.idempotency_key_ttl_hours)
    key = cmd.idempotency_key
    if await conn.fetchval(CLAIM_IDEMPOTENCY_KEY, cmd.user_id, key, digest, now, expired) is not None:
        return None
    request_hash, response = await conn.fetchrow(PRIOR_RESPONSE, cmd.user_id, key)
    if request_hash != digest or response is None:
        raise Unprocessable(
            "this Idempotency-Key was already used with a different request body", "Idempotency-Key"
        )
    return response
