"""Writes derived.py from models.py: what the hot paths need from the SQLModel declarations (request
validators, a row mapper, SQL over the tables' columns) as plain pydantic and strings, so that their
cold path imports neither SQLModel nor SQLAlchemy. `python -m todo_backend.derive` rewrites it;
tests/unit/test_derived.py fails when the committed file drifts from what this renders.
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel
from sqlalchemy import Table
from sqlmodel import SQLModel

from todo_backend import fields, models
from todo_backend.events import CLOUDEVENT_TYPES, TaskCreated

TARGET = Path(__file__).with_name("derived.py")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def validator(model: type[SQLModel]) -> tuple[str, set[str]]:
    """A pydantic class with `model`'s fields (their annotations as written, over fields.py's types)
    on fields.Input, and the names it needs. Only what this can render faithfully is taken: a family
    with validators or schema edits of its own is refused rather than copied without them."""
    assert issubclass(model, fields.Input), f"{model.__name__} is not a request body"
    own = model.__pydantic_decorators__.field_validators.keys() - {"_storable"}
    assert not own and "json_schema_extra" not in model.model_config, f"{model.__name__}: own rules"
    lines = [f"class {model.__name__}(Input):", f'    """{model.__doc__}"""', ""]
    names = {"Input"}
    for name, info in model.model_fields.items():
        annotation = model.__annotations__[name]
        names |= set(NAME.findall(annotation)) - {"None"}
        if info.default_factory is not None:
            assert info.default_factory is list, f"{model.__name__}.{name}: default factory"
            lines.append(f"    {name}: {annotation} = Field(default_factory=list)")
            names.add("Field")
        elif info.is_required():
            lines.append(f"    {name}: {annotation}")
        else:
            lines.append(f"    {name}: {annotation} = {_literal(info.default)}")
    return "\n".join(lines), names


def _literal(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    assert value is None or isinstance(value, str | int | bool), value
    return repr(value)


def mapper(name: str, model: type[BaseModel]) -> str:
    """`name(row)`: the JSON form of `model` from a row's columns, as
    `model.model_validate(row).model_dump(mode="json")` gives it (tests/unit/test_derived.py holds the
    two equal): instants in RFC 3339 UTC, UUIDs and enums as strings."""
    lines = [f"def {name}(row: Mapping[str, Any]) -> dict[str, Any]:", "    return {"]
    for field, annotation in model.__annotations__.items():
        value = f'row["{field}"]'
        optional = annotation.endswith("| None")
        if "UtcDatetime" in annotation:
            value = f"_rfc3339({value})" if optional else f"rfc3339({value})"
        elif "uuid.UUID" in annotation or "Priority" in annotation:
            value = f"_str({value})" if optional else f"str({value})"
        elif annotation.startswith("list["):
            value = f"list({value})"
        lines.append(f'        "{field}": {value},')
    return "\n".join([*lines, "    }"])


def _insert(table: Table, skip: set[str], first: int = 1) -> tuple[str, int]:
    """INSERT INTO table (...) VALUES ($first, ...), its columns in declaration order, `skip` left out."""
    columns = [c for c in table.columns if c.name not in skip]
    params = [f"${i}" for i in range(first, first + len(columns))]
    for i, column in enumerate(columns):
        if column.name == "data":
            params[i] += "::jsonb"
    sql = f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) VALUES ({', '.join(params)})"
    return sql, first + len(columns)


def statements() -> list[str]:
    task, event, key = models.Task.__table__, models.TaskEvent.__table__, models.IdempotencyKey.__table__
    outbox, member = models.UnpublishedEvent.__table__, models.ProjectMember.__table__
    project = models.Project.__table__
    insert_task, after = _insert(task, set())
    insert_event, after = _insert(event, {"sequence"}, after)
    event_columns = [c.name for c in event.columns if c.name != "sequence"]
    readable = [c.name if c.name != "data" else "data::text AS data" for c in event.columns]
    # The task, its outbox row and (with an Idempotency-Key) the stored response: one statement, one
    # round trip, atomic even outside a transaction.
    create = f"WITH created AS ({insert_task}) {insert_event} RETURNING sequence"
    store = f"UPDATE {key.name} SET status_code = 201, response = ${after}::jsonb"
    user_id = 1 + [c.name for c in task.columns].index("user_id")
    store += f" WHERE user_id = ${user_id} AND key = ${after + 1}"
    keyed = f"WITH created AS ({insert_task}), stored AS ({store}) {insert_event} RETURNING sequence"
    return [
        f"TASK_COLUMNS = {tuple(c.name for c in task.columns)!r}",
        f"TASK_EVENT_COLUMNS = {tuple(event_columns)!r}",
        f'TASK_CREATED = "{CLOUDEVENT_TYPES[TaskCreated]}"',
        "# $1.. the task's columns, then the outbox row's.",
        f"CREATE_TASK = {create!r}",
        "# CREATE_TASK's parameters, then the response to store and the Idempotency-Key.",
        f"CREATE_TASK_WITH_KEY = {keyed!r}",
        "# A key's first use claims it; a key past its retention (created before $5) is claimed afresh.",
        "CLAIM_IDEMPOTENCY_KEY = "
        + repr(
            f"INSERT INTO {key.name} (user_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash,"
            " created_at = excluded.created_at, status_code = NULL, response = NULL"
            f" WHERE {key.name}.created_at < $5 RETURNING key"
        ),
        "PRIOR_RESPONSE = "
        + repr(f"SELECT request_hash, response::text FROM {key.name} WHERE user_id = $1 AND key = $2"),
        "UNPUBLISHED_OF_KEYS = "
        + repr(
            f"SELECT {', '.join(readable)} FROM {event.name} WHERE sequence = ANY(ARRAY("
            f"SELECT sequence FROM {outbox.name} WHERE partition_key = ANY($1::text[]))) ORDER BY sequence"
        ),
        "# A project kept from being deleted, then a member's role kept from being removed, until the",
        "# transaction ends: in that order, the order delete-project takes them in.",
        "PROJECT_KEPT = " + repr(f"SELECT id FROM {project.name} WHERE id = $1 FOR KEY SHARE"),
        "MEMBER_ROLE = "
        + repr(f"SELECT role::text FROM {member.name} WHERE project_id = $1 AND user_id = $2 FOR SHARE"),
        "MARK_PUBLISHED = " + repr(f"DELETE FROM {outbox.name} WHERE sequence = ANY($1::bigint[])"),
        "# A task's tree (subtasks.py): which one it is in, its lock, and a task's ancestors, nearest first",
        "# (itself and $2 more at most).",
        "TASK_TREE = " + repr(f"SELECT project_id, user_id FROM {task.name} WHERE id = $1"),
        "# Seed 1: apart from the relay's locks on partition keys (seed 0).",
        "LOCK_TREE = 'SELECT pg_advisory_xact_lock(hashtextextended($1, 1))'",
        "TASK_LINEAGE = "
        + repr(
            f"WITH RECURSIVE up AS (SELECT id, parent_id, project_id, user_id, 0 AS level FROM {task.name}"
            f" WHERE id = $1 UNION ALL SELECT t.id, t.parent_id, t.project_id, t.user_id, up.level + 1"
            f" FROM {task.name} t JOIN up ON t.id = up.parent_id WHERE up.level < $2)"
            " SELECT id, project_id, user_id FROM up ORDER BY level"
        ),
    ]


def render() -> str:
    create, names = validator(models.TaskCreate)
    names -= {"uuid", "UUID"}  # uuid.UUID: the module is imported whole
    from_pydantic = sorted(n for n in names if hasattr(pydantic, n))
    from_fields = sorted(names - set(from_pydantic))
    header = (
        '"""Derived from models.py by `python -m todo_backend.derive`: do not edit. The hot paths\'\n'
        "request validators, row mappers and SQL, in pydantic and strings alone (their cold path imports\n"
        "neither SQLModel nor SQLAlchemy). tests/unit/test_derived.py holds it equal to what the generator\n"
        'renders."""'
    )
    parts = [
        header,
        "from __future__ import annotations",
        "import uuid\nfrom collections.abc import Mapping\nfrom datetime import datetime\n"
        "from typing import Any",
        f"from pydantic import {', '.join(from_pydantic)}",
        f"from todo_backend.fields import {', '.join([*from_fields, 'rfc3339'])}",
        "\n".join(statements()),
        create,
        "def _rfc3339(value: datetime | None) -> str | None:\n"
        "    return None if value is None else rfc3339(value)",
        "def _str(value: object) -> str | None:\n    return None if value is None else str(value)",
        mapper("task_public", models.TaskPublic),
    ]
    return re.sub("\n\n\n(from|import) ", "\n\n\\1 ", "\n\n\n".join(parts)) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}", file=sys.stderr)
