"""derived.py is what the generator renders from models.py, and what it derived behaves as the SQLModel
declarations it came from: the request validator accepts and refuses what the family does, with the
same fields at fault, and the row mapper renders what the Public model renders. create-task's cold path
imports neither SQLModel nor SQLAlchemy (issue 11: they were ~90% of its extra cold-start time)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from todo_backend import derive, derived, models
from todo_backend.fields import Priority

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_module_is_what_the_generator_renders() -> None:
    assert derive.TARGET.read_text() == derive.render(), "run `python -m todo_backend.derive`"


def test_the_statements_name_every_column_of_their_tables() -> None:
    assert derived.TASK_COLUMNS == tuple(c.name for c in models.Task.__table__.columns)
    assert set(derived.TASK_EVENT_COLUMNS) == {c.name for c in models.TaskEvent.__table__.columns} - {
        "sequence"
    }


def test_a_family_with_rules_of_its_own_is_refused_rather_than_copied_without_them() -> None:
    try:
        derive.validator(models.TaskUpdate)  # its own not-null validator and schema edit
    except AssertionError as exc:
        assert "own rules" in str(exc)
    else:
        raise AssertionError("TaskUpdate was rendered without its rules")


def _outcome(model: type[Any], body: Any) -> Any:
    try:
        return ("ok", model.model_validate(body).model_dump(mode="json"))
    except ValidationError as exc:
        return ("refused", [(e["loc"], e["type"], e["msg"]) for e in exc.errors()])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
FIELD_VALUES = {
    "title": st.text() | JSON,
    "description": st.text() | JSON,
    "due_date": st.sampled_from(["2030-01-01T09:00:00Z", "2030-01-01T09:00:00+0100", "1800-01-01T00:00:00Z"])
    | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    | JSON,
    "priority": st.sampled_from(["low", "medium", "high", "urgent"]) | JSON,
    "tags": st.lists(st.text(max_size=60), max_size=25) | JSON,
    "remind_before_minutes": st.integers(-5, 600_000) | JSON,
    "completed": st.booleans() | JSON,
    "project_id": st.uuids().map(str) | st.sampled_from(["inbox", "", "0"]) | JSON,
    "assignee_id": st.text(max_size=300) | st.sampled_from(["", "  ", "a\x00"]) | JSON,
    "parent_id": st.uuids().map(str) | st.sampled_from(["none", ""]) | JSON,
    "unknown": JSON,
}
# Dicts only: read_json refuses any other body before the validator sees it.
BODIES = st.fixed_dictionaries({}, optional=FIELD_VALUES)


@settings(max_examples=400, deadline=None)
@given(BODIES)
def test_the_derived_validator_decides_as_the_sqlmodel_family_does(body: Any) -> None:
    assert _outcome(derived.TaskCreate, body) == _outcome(models.TaskCreate, body)


def test_the_derived_validator_has_the_familys_json_schema() -> None:
    assert derived.TaskCreate.model_json_schema() == models.TaskCreate.model_json_schema()


INSTANT = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.timezones()
)
INSTANTS = st.none() | INSTANT
TASKS = st.fixed_dictionaries(
    {
        "id": st.uuids(),
        "user_id": st.text(min_size=1),
        "title": st.text(min_size=1),
        "description": st.text(),
        "completed": st.booleans(),
        "completed_at": INSTANTS,
        "due_date": INSTANTS,
        "priority": st.sampled_from(list(Priority)) | st.sampled_from([p.value for p in Priority]),
        "tags": st.lists(st.text()),
        "remind_before_minutes": st.none() | st.integers(0, 525_600),
        "reminded_at": INSTANTS,
        "remind_at": INSTANTS,
        "recurring_task_id": st.none() | st.uuids(),
        "occurrence_at": INSTANTS,
        "project_id": st.none() | st.uuids(),
        "assignee_id": st.none() | st.text(min_size=1),
        "parent_id": st.none() | st.uuids(),
        "created_at": INSTANT,
        "updated_at": INSTANT,
        "version": st.integers(1, 2**31 - 1),
    }
)


@settings(max_examples=300, deadline=None)
@given(TASKS)
def test_the_row_mapper_renders_what_the_public_model_renders(row: dict[str, Any]) -> None:
    expected = models.TaskPublic.model_validate(row).model_dump(mode="json")
    assert derived.task_public(row) == expected
    assert json.loads(json.dumps(derived.task_public(row))) == expected


def test_the_row_mapper_takes_a_task_as_create_task_builds_it() -> None:
    now = datetime.now(UTC)
    row = {c: None for c in derived.TASK_COLUMNS} | {
        "id": uuid.uuid4(),
        "title": "t",
        "description": "",
        "completed": False,
        "priority": Priority.high,
        "tags": ["a"],
        "due_date": now + timedelta(days=1),
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    assert derived.task_public(row) == models.TaskPublic.model_validate(row).model_dump(mode="json")


def test_create_tasks_cold_path_imports_neither_sqlmodel_nor_sqlalchemy() -> None:
    code = (
        "import sys\n"
        "from functions_framework.aio import create_asgi_app\n"
        f"create_asgi_app('create_task', {str(ROOT / 'functions/create_task/main.py')!r}, 'http')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlmodel', 'sqlalchemy', 'aiokafka'}))\n"
    )
    env = {"DATABASE_URL": "postgresql://nowhere/x", "JWT_SECRET": "s" * 40, "TODO_ENV": "test"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
