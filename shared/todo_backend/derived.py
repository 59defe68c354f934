"""Derived from models.py by `python -m todo_backend.derive`: do not edit. The hot paths'
request validators, row mappers and SQL, in pydantic and strings alone (their cold path imports
neither SQLModel nor SQLAlchemy). tests/unit/test_derived.py holds it equal to what the generator
renders."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, StrictBool

from todo_backend.fields import Description, Input, Instant, Priority, RemindBefore, Tags, Title, UserId, rfc3339


TASK_COLUMNS = ('title', 'description', 'due_date', 'priority', 'tags', 'remind_before_minutes', 'id', 'user_id', 'completed', 'completed_at', 'reminded_at', 'remind_at', 'recurring_task_id', 'occurrence_at', 'project_id', 'assignee_id', 'parent_id', 'created_at', 'updated_at', 'version')
TASK_EVENT_COLUMNS = ('id', 'type', 'source', 'subject', 'time', 'partition_key', 'user_id', 'data', 'project_id', 'traceparent', 'tracestate')
TASK_CREATED = "dev.todo.task.created"
# $1.. the task's columns, then the outbox row's.
CREATE_TASK = 'WITH created AS (INSERT INTO task (title, description, due_date, priority, tags, remind_before_minutes, id, user_id, completed, completed_at, reminded_at, remind_at, recurring_task_id, occurrence_at, project_id, assignee_id, parent_id, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)) INSERT INTO task_event (id, type, source, subject, time, partition_key, user_id, data, project_id, traceparent, tracestate) VALUES ($21, $22, $23, $24, $25, $26, $27, $28::jsonb, $29, $30, $31) RETURNING sequence'
# CREATE_TASK's parameters, then the response to store and the Idempotency-Key.
CREATE_TASK_WITH_KEY = 'WITH created AS (INSERT INTO task (title, description, due_date, priority, tags, remind_before_minutes, id, user_id, completed, completed_at, reminded_at, remind_at, recurring_task_id, occurrence_at, project_id, assignee_id, parent_id, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)), stored AS (UPDATE idempotency_key SET status_code = 201, response = $32::jsonb WHERE user_id = $8 AND key = $33) INSERT INTO task_event (id, type, source, subject, time, partition_key, user_id, data, project_id, traceparent, tracestate) VALUES ($21, $22, $23, $24, $25, $26, $27, $28::jsonb, $29, $30, $31) RETURNING sequence'
# A key's first use claims it; a key past its retention (created before $5) is claimed afresh.
CLAIM_IDEMPOTENCY_KEY = 'INSERT INTO idempotency_key (user_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, created_at = excluded.created_at, status_code = NULL, response = NULL WHERE idempotency_key.created_at < $5 RETURNING key'
PRIOR_RESPONSE = 'SELECT request_hash, response::text FROM idempotency_key WHERE user_id = $1 AND key = $2'
UNPUBLISHED_OF_KEYS = 'SELECT sequence, id, type, source, subject, time, partition_key, user_id, data::text AS data, project_id, traceparent, tracestate FROM task_event WHERE sequence = ANY(ARRAY(SELECT sequence FROM outbox WHERE partition_key = ANY($1::text[]))) ORDER BY sequence'
# A project kept from being deleted, then a member's role kept from being removed, until the
# transaction ends: in that order, the order delete-project takes them in.
PROJECT_KEPT = 'SELECT id FROM project WHERE id = $1 FOR KEY SHARE'
MEMBER_ROLE = 'SELECT role::text FROM project_member WHERE project_id = $1 AND user_id = $2 FOR SHARE'
MARK_PUBLISHED = 'DELETE FROM outbox WHERE sequence = ANY($1::bigint[])'
# A task's tree (subtasks.py): which one it is in, its lock, and a task's ancestors, nearest first
# (itself and $2 more at most).
TASK_TREE = 'SELECT project_id, user_id FROM task WHERE id = $1'
# Seed 1: apart from the relay's locks on partition keys (seed 0).
LOCK_TREE = 'SELECT pg_advisory_xact_lock(hashtextextended($1, 1))'
TASK_LINEAGE = 'WITH RECURSIVE up AS (SELECT id, parent_id, project_id, user_id, 0 AS level FROM task WHERE id = $1 UNION ALL SELECT t.id, t.parent_id, t.project_id, t.user_id, up.level + 1 FROM task t JOIN up ON t.id = up.parent_id WHERE up.level < $2) SELECT id, project_id, user_id FROM up ORDER BY level'


class TaskCreate(Input):
    """POST body, and PUT body (a PUT replaces every editable field; omitted ones reset)."""

    title: Title
    description: Description = ''
    due_date: Instant | None = None
    priority: Priority = Priority.medium
    tags: Tags = Field(default_factory=list)
    remind_before_minutes: RemindBefore | None = None
    completed: StrictBool = False
    project_id: uuid.UUID | None = None
    assignee_id: UserId | None = None
    parent_id: uuid.UUID | None = None


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def task_public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "description": row["description"],
        "completed": row["completed"],
        "completed_at": _rfc3339(row["completed_at"]),
        "due_date": _rfc3339(row["due_date"]),
        "priority": str(row["priority"]),
        "tags": list(row["tags"]),
        "remind_before_minutes": row["remind_before_minutes"],
        "reminded_at": _rfc3339(row["reminded_at"]),
        "recurring_task_id": _str(row["recurring_task_id"]),
        "occurrence_at": _rfc3339(row["occurrence_at"]),
        "project_id": _str(row["project_id"]),
        "assignee_id": row["assignee_id"],
        "parent_id": _str(row["parent_id"]),
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "version": row["version"],
    }
