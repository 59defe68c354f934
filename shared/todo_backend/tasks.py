"""Task commands, queries and their handlers: plain async functions, the message first, then the uow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, Select, Text, and_, cast, delete, func, literal, or_, select

from todo_backend.derived import LOCK_TREE, PROJECT_KEPT, TASK_LINEAGE, TASK_TREE
from todo_backend.errors import Conflict, NotFound, Unprocessable, at_version
from todo_backend.events import (
    TaskCompleted,
    TaskDeleted,
    TaskUpdated,
    task_json,
)
from todo_backend.fields import Instant, Priority, storable_text, utcnow
from todo_backend.models import ProjectMember, RecurringTask, Task, TaskEvent, touch
from todo_backend.paging import Page, PageQuery, after_sequence, decode_cursor, encode_cursor, events_page
from todo_backend.projects import member_role
from todo_backend.roles import ProjectRole, require
from todo_backend.subtasks import MAX_DEPTH, check_parent, tree_key
from todo_backend.task_create import reminder_instant
from todo_backend.uow import UnitOfWork

# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateTask:
    user_id: str
    task_id: uuid.UUID
    changes: dict[str, Any]  # validated fields; for a replace, every editable field
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class CompleteTask:
    user_id: str
    task_id: uuid.UUID
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class DeleteTask:
    user_id: str
    task_id: uuid.UUID
    if_match: frozenset[int] | None = None


# --- handlers -------------------------------------------------------------------------------------


async def update_task(cmd: UpdateTask, uow: UnitOfWork) -> Task:
    async with uow:
        changes = dict(cmd.changes)
        trees = None
        if _RESHAPING & changes.keys():
            trees = await _lock_trees(uow, cmd.task_id, changes.get("project_id"))
        task = await _get_for_update(uow, cmd.user_id, cmd.task_id, cmd.if_match, trees)
        moved = await _move(uow, task, changes, cmd.user_id)
        changed = [name for name, value in changes.items() if getattr(task, name) != value]
        if changed or moved is not None:
            completing = "completed" in changed and changes["completed"]
            reopened_from = task.completed_at if "completed" in changed and not completing else None
            if "parent_id" in changed and changes["parent_id"] is not None:
                # Before the change is flushed: the tree read has no cycle yet.
                height = max(level for _, level in await _subtree(uow, task.id))
                lineage = await _lineage(uow, changes["parent_id"])
                check_parent(lineage, task.project_id, task.user_id, task.id, height)
            for name in changed:
                setattr(task, name, changes[name])
            if "completed" in changed:
                task.completed_at = utcnow() if task.completed else None
            if "assignee_id" in changed:
                await check_assignee(uow, task)
            if {"due_date", "remind_before_minutes"} & set(changed):
                rearm_reminder(task, uow.settings.default_remind_before_minutes)
            touch(task)
            event = TaskCompleted if completing else TaskUpdated
            named = ("project_id", *changed) if moved is not None else tuple(changed)
            uow.emit(event(task, named, cmd.user_id))
            carried = {subtask.id: (subtask, changed) for subtask, changed in moved or ()}
            if completing:
                await _complete_subtasks(uow, task, cmd.user_id, carried)
            for subtask, subtask_changed in carried.values():
                touch(subtask)
                uow.emit(TaskUpdated(subtask, subtask_changed, cmd.user_id))
            if reopened_from is not None and task.recurring_task_id is not None:
                # Imported here: recurring builds on this module (its occurrences are tasks).
                from todo_backend.recurring import withdraw_successor

                assert trees is not None  # reopening is a reshaping change
                await withdraw_successor(task, reopened_from, trees, uow)
            await uow.commit()
    return task


async def complete_task(cmd: CompleteTask, uow: UnitOfWork) -> Task:
    """Idempotent: completing a completed task changes nothing and emits nothing."""
    return await update_task(UpdateTask(cmd.user_id, cmd.task_id, {"completed": True}, cmd.if_match), uow)


async def delete_task(cmd: DeleteTask, uow: UnitOfWork) -> None:
    async with uow:
        trees = await _lock_trees(uow, cmd.task_id)
        task = await _get_for_update(uow, cmd.user_id, cmd.task_id, cmd.if_match, trees)
        await remove(task, uow, cmd.user_id)
        await uow.commit()


async def get_task(user_id: str, task_id: uuid.UUID, uow: UnitOfWork) -> Task:
    async with uow:
        task = await uow.session.get(Task, task_id)
        if task is None:
            raise NotFound("no such task")
        await task_role(uow, user_id, task)
        return task


async def task_role(uow: UnitOfWork, user_id: str, task: Task) -> ProjectRole:
    """The user's role over the task: an inbox task is its owner's alone (the owner of everything in
    it); a project's task is its members', by their role. Anyone else is told there is no such task."""
    if task.project_id is None:
        if task.user_id != user_id:
            raise NotFound("no such task")  # another user's task is indistinguishable from none
        return ProjectRole.owner
    role = await member_role(uow, user_id, task.project_id)
    if role is None:
        raise NotFound("no such task")
    return role


async def check_assignee(uow: UnitOfWork, row: Task | RecurringTask) -> None:
    """A task (or a series' occurrences) is assigned to a member of its project, locked against
    removal until the commit; in an inbox to its owner; or to nobody."""
    if row.assignee_id is None:
        return
    if row.project_id is None:
        allowed = row.assignee_id == row.user_id
    else:
        allowed = await member_role(uow, row.assignee_id, row.project_id) is not None
    if not allowed:
        where = "a member of its project" if row.project_id else "its owner"
        raise Unprocessable(f"the assignee must be {where}", "assignee_id")


def rearm_reminder(task: Task, default_minutes: int) -> None:
    """A new due date or lead time means a new reminder: fix its instant and forget the old one.
    `default_minutes` is the lead time of a task that names none (DEFAULT_REMIND_BEFORE_MINUTES)."""
    task.remind_at = reminder_instant(task.due_date, task.remind_before_minutes, default_minutes)
    task.reminded_at = None


async def remove(task: Task, uow: UnitOfWork, actor: str | None = None) -> None:
    """Delete the task and its subtasks in the unit of work's transaction, each announced like any
    delete. The task's tree is locked (subtasks.py), or its project is (deleting the project)."""
    await remove_all([subtask for subtask, _ in await _subtree(uow, task.id)], uow, actor)


async def remove_all(tasks: list[Task], uow: UnitOfWork, actor: str | None = None) -> None:
    """Delete these tasks, each announced: one statement, so a subtask may go with its parent."""
    for task in tasks:
        uow.emit(TaskDeleted(task, actor))
    await uow.session.execute(delete(Task).where(Task.id.in_([task.id for task in tasks])))


async def _get_for_update(
    uow: UnitOfWork,
    user_id: str,
    task_id: uuid.UUID,
    if_match: frozenset[int] | None,
    trees: frozenset[str] | None = None,
) -> Task:
    """The task, row-locked, once the user may change it. `trees`: the tree locks taken for the change
    (_lock_trees), which must still include the task's tree."""
    # The row lock serializes concurrent changes to one task, so versions and event order agree.
    task = await uow.session.get(Task, task_id, with_for_update=True)
    if task is None:
        raise NotFound("no such task")
    require(await task_role(uow, user_id, task), ProjectRole.editor, "changing tasks")
    at_version("task", task.version, if_match)
    if trees is not None and tree_key(task.project_id, task.user_id) not in trees:
        raise Conflict("the task moved to another project meanwhile; retry")
    return task


# --- trees ----------------------------------------------------------------------------------------

# What changes a tree or spans several of its tasks (subtasks.py), or names a member (who may be being
# removed, which locks the project first): these take the project's row and the tree's lock first.
_RESHAPING = {"completed", "parent_id", "project_id", "assignee_id"}


async def _lock_trees(
    uow: UnitOfWork, task_id: uuid.UUID, target: uuid.UUID | None = None
) -> frozenset[str] | None:
    """Lock the task's tree, and the tree of the project it moves to, in the one order (subtasks.py):
    the projects kept from deletion, then the trees. Their keys, or None for no such task."""
    conn = await uow.session.connection()
    tree = (await conn.exec_driver_sql(TASK_TREE, (task_id,))).first()
    if tree is None:
        return None  # _get_for_update says so
    for project_id in sorted({p for p in (tree.project_id, target) if p is not None}):
        await conn.exec_driver_sql(PROJECT_KEPT, (project_id,))
    keys = {tree_key(tree.project_id, tree.user_id)}
    if target is not None:
        keys.add(tree_key(target, tree.user_id))
    for key in sorted(keys):
        await conn.exec_driver_sql(LOCK_TREE, (key,))
    return frozenset(keys)


async def _lineage(uow: UnitOfWork, task_id: uuid.UUID) -> list[Any]:
    conn = await uow.session.connection()
    return list((await conn.exec_driver_sql(TASK_LINEAGE, (task_id, MAX_DEPTH))).mappings())


async def _subtree(uow: UnitOfWork, task_id: uuid.UUID) -> list[tuple[Task, int]]:
    """The task and its subtasks, each with its level below the task, deepest first; row-locked."""
    down = select(Task.id, literal(0).label("level")).where(Task.id == task_id).cte("down", recursive=True)
    down = down.union_all(select(Task.id, down.c.level + 1).join(down, Task.parent_id == down.c.id))
    stmt = select(Task, down.c.level).join(down, Task.id == down.c.id).order_by(down.c.level.desc())
    return [(task, level) for task, level in await uow.session.execute(stmt.with_for_update(of=Task))]


async def _move(
    uow: UnitOfWork, task: Task, changes: dict[str, Any], user_id: str
) -> list[tuple[Task, tuple[str, ...]]] | None:
    """Move the task to the project `changes` names (with its subtasks, an editor of both), taking
    `project_id` out of `changes`: the moved subtasks and what changed in each, or None if it stays.
    The task leaves its parent unless `changes` names one; an assignee who is not a member of the
    target is cleared."""
    target = changes.pop("project_id", task.project_id)
    if target == task.project_id:
        return None
    if target is None:
        raise Unprocessable("a project's task moves only to another project", "project_id")
    role = await member_role(uow, user_id, target)  # the project is kept (_lock_trees)
    if role is None:
        raise NotFound("no such project", "project_id")
    require(role, ProjectRole.editor, "moving tasks into it")
    members: dict[str, bool] = {}

    async def keeps(assignee: str | None) -> bool:
        if assignee is not None and assignee not in members:
            members[assignee] = await member_role(uow, assignee, target) is not None
        return assignee is None or members[assignee]

    task.project_id = target
    changes.setdefault("parent_id", None)
    if "assignee_id" not in changes and not await keeps(task.assignee_id):
        changes["assignee_id"] = None
    moved = []
    for subtask, level in await _subtree(uow, task.id):
        if level:
            subtask.project_id = target
            changed: tuple[str, ...] = ("project_id",)
            if not await keeps(subtask.assignee_id):
                subtask.assignee_id = None
                changed += ("assignee_id",)
            moved.append((subtask, changed))
    return moved


async def _complete_subtasks(
    uow: UnitOfWork, task: Task, actor: str, moved: dict[uuid.UUID, tuple[Task, tuple[str, ...]]]
) -> None:
    """A completed task's open subtasks are completed with it, each with its own event: one event,
    naming the move too, for a subtask this change also moved (taken out of `moved`)."""
    for subtask, level in reversed(await _subtree(uow, task.id)):
        if level and not subtask.completed:
            subtask.completed = True
            subtask.completed_at = task.completed_at
            touch(subtask)
            _, changed = moved.pop(subtask.id, (subtask, ()))
            uow.emit(TaskCompleted(subtask, (*changed, "completed"), actor))


# --- queries --------------------------------------------------------------------------------------

Sort = Literal[
    "due_date", "-due_date", "priority", "-priority", "created_at", "-created_at", "title", "-title"
]


class TaskQuery(PageQuery):
    """list-tasks query parameters."""

    status: Literal["all", "pending", "completed"] = "all"
    priority: list[Priority] = Field(default_factory=list)
    tag: list[Annotated[str, AfterValidator(storable_text)]] = Field(default_factory=list)
    q: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(storable_text)] | None = None
    due_before: Instant | None = None
    due_after: Instant | None = None
    overdue: bool = False
    sort: Sort = "created_at"
    project: Literal["inbox"] | uuid.UUID | None = None
    parent: Literal["none"] | uuid.UUID | None = None
    assignee: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(storable_text)] | None = None


class _Cursor(BaseModel):
    """What list-tasks puts in its cursor: the last row's sort keys. Forged values are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sort: str
    id: Annotated[uuid.UUID, Field(strict=False)]
    no_due: bool | None = None
    due_date: Annotated[Instant, Field(strict=False)] | None = None
    priority: Annotated[Priority, Field(strict=False)] | None = None
    created_at: Annotated[Instant, Field(strict=False)] | None = None
    title: str | None = None


def _sort_keys(sort: str) -> tuple[list[tuple[str, ColumnElement[Any]]], bool]:
    """The (name, expression) keyset for a sort, ending in id so the order is total; and desc."""
    desc = sort.startswith("-")
    name = sort.lstrip("-")
    column: ColumnElement[Any] = {
        "due_date": Task.due_date,
        "priority": Task.priority,
        "created_at": Task.created_at,
        "title": func.lower(Task.title),
    }[name]
    keys: list[tuple[str, ColumnElement[Any]]] = [(name, column), ("id", Task.id)]
    if name == "due_date":
        # Tasks without a due date come last in both directions.
        keys.insert(0, ("no_due", Task.due_date.is_(None)))
    return keys, desc


def _after(keys: list[tuple[str, ColumnElement[Any]]], desc: bool, cursor: dict[str, Any]) -> Any:
    """Rows strictly after the cursor in the sort order: k1 > v1, or k1 = v1 and k2 > v2, ..."""
    clauses: list[ColumnElement[bool]] = []
    for i, (name, expr) in enumerate(keys):
        value = cursor[name]
        if name == "no_due":
            if value is False:  # past the last dated task come the undated ones
                clauses.append(expr.is_(True))
            continue
        if value is None:
            continue  # within the undated tasks, only the id orders them
        beyond = expr < value if desc else expr > value
        equal = [e.is_(None) if cursor[n] is None else e == cursor[n] for n, e in keys[:i]]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def _order(keys: list[tuple[str, ColumnElement[Any]]], desc: bool) -> list[Any]:
    return [expr if name == "no_due" or not desc else expr.desc() for name, expr in keys]


def _cursor_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Priority):
        return str(value)
    return value


def _decoded(keys: list[tuple[str, ColumnElement[Any]]], sort: str, raw: str) -> dict[str, Any]:
    try:
        cursor = _Cursor.model_validate(decode_cursor(raw))
    except ValidationError as exc:
        raise Unprocessable("the cursor is not one this API issued", "cursor") from exc
    names = {name for name, _ in keys}
    if cursor.sort != sort or not names <= cursor.model_fields_set | {"due_date"}:
        raise Unprocessable("the cursor belongs to another sort order", "cursor")
    values = cursor.model_dump()
    if any(values[name] is None for name in names - {"due_date"}):
        raise Unprocessable("the cursor is not one this API issued", "cursor")
    return values


def _projects_of(user_id: str) -> Select[tuple[uuid.UUID]]:
    """The ids of the projects the user is a member of."""
    return select(ProjectMember.project_id).where(ProjectMember.user_id == user_id)


async def list_tasks(user_id: str, query: TaskQuery, uow: UnitOfWork) -> Page:
    """The user's inbox and the tasks of every project they are a member of (or `project`'s alone)."""
    keys, desc = _sort_keys(query.sort)
    inbox = and_(Task.project_id.is_(None), Task.user_id == user_id)
    if query.project == "inbox":
        visible = inbox
    elif query.project is not None:
        visible = Task.project_id == query.project
    else:
        visible = or_(inbox, Task.project_id.in_(_projects_of(user_id)))
    # The key expressions are selected too, so the cursor holds the database's own values.
    stmt = select(Task, *(expr for _, expr in keys)).where(visible)
    if query.parent == "none":
        stmt = stmt.where(Task.parent_id.is_(None))
    elif query.parent is not None:
        stmt = stmt.where(Task.parent_id == query.parent)
    if query.assignee == "none":
        stmt = stmt.where(Task.assignee_id.is_(None))
    elif query.assignee is not None:
        stmt = stmt.where(Task.assignee_id == (user_id if query.assignee == "me" else query.assignee))
    if query.status != "all":
        stmt = stmt.where(Task.completed.is_(query.status == "completed"))
    if query.priority:
        stmt = stmt.where(Task.priority.in_(query.priority))
    if query.tag:
        tags = list(dict.fromkeys(t.strip().lower() for t in query.tag))
        stmt = stmt.where(Task.tags.contains(tags))
    if query.q:
        pattern = "%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Task.title.ilike(pattern), Task.description.ilike(pattern)))
    if query.due_before:
        stmt = stmt.where(Task.due_date < query.due_before)
    if query.due_after:
        stmt = stmt.where(Task.due_date > query.due_after)
    if query.overdue:
        stmt = stmt.where(Task.completed.is_(False), Task.due_date < utcnow())
    if query.cursor:
        stmt = stmt.where(_after(keys, desc, _decoded(keys, query.sort, query.cursor)))
    stmt = stmt.order_by(*_order(keys, desc)).limit(query.limit + 1)
    async with uow:
        if isinstance(query.project, uuid.UUID) and await member_role(uow, user_id, query.project) is None:
            raise NotFound("no such project", "project")
        rows = list(await uow.session.execute(stmt))
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1][1:]
        next_cursor = encode_cursor(
            {
                "sort": query.sort,
                **{name: _cursor_value(v) for (name, _), v in zip(keys, last, strict=True)},
            }
        )
    return Page([task_json(row[0]) for row in rows], next_cursor)


async def task_history(
    user_id: str, task_id: uuid.UUID, limit: int, cursor: str | None, uow: UnitOfWork
) -> Page:
    """The task's CloudEvents, oldest first; kept after the task is deleted (the audit log). An inbox
    task's for its owner; a project task's for the project's members, while they are members."""
    projects = _projects_of(user_id).with_only_columns(cast(ProjectMember.project_id, Text))
    mine = or_(
        and_(TaskEvent.project_id.is_(None), TaskEvent.user_id == user_id),
        TaskEvent.project_id.in_(projects),
    )
    stmt = (
        select(TaskEvent)
        .where(TaskEvent.subject == str(task_id), mine)
        .order_by(TaskEvent.sequence)
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(TaskEvent.sequence > after_sequence(cursor))
    async with uow:
        rows = list((await uow.session.execute(stmt)).scalars())
        if not rows:
            # An empty page is only an answer for a task this user has a history of.
            any_event = select(TaskEvent.sequence).where(TaskEvent.subject == str(task_id), mine)
            if cursor is None or (await uow.session.execute(any_event.limit(1))).first() is None:
                raise NotFound("no such task")
    return events_page(rows, limit)
