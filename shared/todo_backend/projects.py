"""Projects shared between users: the projects and their members, and who may do what in them.

Authorization is membership, read from the database on every request: a user who is not a member of a
project gets 404 for it and everything in it (as for another user's task), and a member whose role
does not allow an action gets 403 naming the role it needs. Roles rank viewer < editor < admin < owner.

Every change to a project or its members locks the project's row first, so such changes are serialized
per project: checks and changes cannot interleave, and the partial unique index on owners together with
the rules here keep exactly one owner at all times (the owner can neither leave nor be removed or
demoted; only a transfer moves ownership, in one transaction).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from todo_backend.derived import LOCK_TREE
from todo_backend.errors import Conflict, Forbidden, NotFound, Unprocessable, at_version
from todo_backend.events import (
    ProjectCreated,
    ProjectDeleted,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberUpdated,
    ProjectUpdated,
    TaskUpdated,
    member_json,
    project_json,
)
from todo_backend.fields import user_id_problem
from todo_backend.models import Project, ProjectCreate, ProjectMember, Task, TaskEvent, touch
from todo_backend.paging import (
    Page,
    PageQuery,
    after_sequence,
    by_creation,
    creation_page,
    decode_cursor,
    encode_cursor,
    events_page,
)
from todo_backend.roles import ProjectRole, require
from todo_backend.subtasks import tree_key
from todo_backend.uow import UnitOfWork

# A project's tasks are deleted this many to a transaction (and event batch) when it is deleted.
DELETE_BATCH = 500


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateProject:
    user_id: str
    fields: ProjectCreate


@dataclass(frozen=True)
class UpdateProject:
    user_id: str
    project_id: uuid.UUID
    changes: dict[str, Any]
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class DeleteProject:
    user_id: str
    project_id: uuid.UUID
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class AddMember:
    user_id: str  # who adds
    project_id: uuid.UUID
    member_id: str
    role: ProjectRole


@dataclass(frozen=True)
class ChangeRole:
    user_id: str
    project_id: uuid.UUID
    member_id: str
    role: ProjectRole


@dataclass(frozen=True)
class RemoveMember:
    user_id: str  # who removes; the member themselves when they leave
    project_id: uuid.UUID
    member_id: str


@dataclass(frozen=True)
class TransferProject:
    user_id: str  # the owner
    project_id: uuid.UUID
    member_id: str  # the new owner


# --- access ---------------------------------------------------------------------------------------


async def member_role(uow: UnitOfWork, user_id: str, project_id: uuid.UUID) -> ProjectRole | None:
    """The user's role in the project, None if they are not a member. Locks the membership row against
    removal (FOR SHARE), so a removal commits before this transaction's check or after its change,
    never between."""
    role = await uow.session.scalar(
        select(ProjectMember.role)
        .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
        .with_for_update(read=True)
    )
    return None if role is None else ProjectRole(role)


async def role_of(uow: UnitOfWork, user_id: str, project_id: uuid.UUID) -> ProjectRole:
    """member_role, or NotFound for a non-member (or no such project: the two are indistinguishable)."""
    role = await member_role(uow, user_id, project_id)
    if role is None:
        raise NotFound("no such project")
    return role


async def _locked(
    uow: UnitOfWork, user_id: str, project_id: uuid.UUID, needed: ProjectRole, action: str
) -> tuple[Project, ProjectRole]:
    """The project, its row locked for a change to it or its members, once the user may make it."""
    project = await uow.session.get(Project, project_id, with_for_update=True)
    if project is None:
        raise NotFound("no such project")
    role = await role_of(uow, user_id, project_id)
    require(role, needed, action)
    return project, role


async def _member(uow: UnitOfWork, project_id: uuid.UUID, member_id: str) -> ProjectMember:
    member = await uow.session.get(ProjectMember, (project_id, member_id))
    if member is None:
        raise NotFound("no such member of this project")
    return member


# --- handlers -------------------------------------------------------------------------------------


async def create_project(cmd: CreateProject, uow: UnitOfWork) -> dict[str, Any]:
    async with uow:
        project = Project(**cmd.fields.model_dump())
        uow.session.add(project)
        await uow.session.flush()
        owner = ProjectMember(project_id=project.id, user_id=cmd.user_id, role=ProjectRole.owner)
        uow.session.add(owner)
        uow.emit(ProjectCreated(project, cmd.user_id))
        uow.emit(ProjectMemberAdded(project.id, owner, cmd.user_id))
        await uow.commit()
    return project_json(project, ProjectRole.owner)


async def get_project(user_id: str, project_id: uuid.UUID, uow: UnitOfWork) -> dict[str, Any]:
    async with uow:
        role = await role_of(uow, user_id, project_id)
        project = await uow.session.get(Project, project_id)
        assert project is not None  # a membership row has its project (foreign key)
        return project_json(project, role)


async def list_projects(user_id: str, query: PageQuery, uow: UnitOfWork) -> Page:
    """The projects the user is a member of, oldest first, each with the user's role in it."""
    stmt = select(Project, ProjectMember.role).join(ProjectMember).where(ProjectMember.user_id == user_id)
    async with uow:
        rows = list((await uow.session.execute(by_creation(stmt, Project, query, newest_first=False))).all())
    roles = {project.id: ProjectRole(role) for project, role in rows}
    return creation_page(
        [project for project, _ in rows], query.limit, lambda p: project_json(p, roles[p.id])
    )


async def update_project(cmd: UpdateProject, uow: UnitOfWork) -> dict[str, Any]:
    async with uow:
        project, role = await _locked(uow, cmd.user_id, cmd.project_id, ProjectRole.admin, "renaming it")
        at_version("project", project.version, cmd.if_match)
        changed = [name for name, value in cmd.changes.items() if getattr(project, name) != value]
        if changed:
            for name in changed:
                setattr(project, name, cmd.changes[name])
            touch(project)
            uow.emit(ProjectUpdated(project, cmd.user_id, tuple(changed)))
            await uow.commit()
        return project_json(project, role)


async def delete_project(cmd: DeleteProject, uow: UnitOfWork) -> None:
    """The owner deletes the project: its tasks first, DELETE_BATCH to a transaction, subtasks before
    their parents, each with its task.deleted event; then, with the last of them, the project and its
    memberships. Every transaction leaves a whole project (fewer tasks, all else intact), so a
    request cut short is finished by deleting again. The history stays in the audit log. The project's
    tasks are deleted under their tree's lock (subtasks.py)."""
    from todo_backend.tasks import remove_all  # tasks builds on this module

    subtask = aliased(Task)
    while True:
        async with uow:
            project, _ = await _locked(uow, cmd.user_id, cmd.project_id, ProjectRole.owner, "deleting it")
            at_version("project", project.version, cmd.if_match)
            await (await uow.session.connection()).exec_driver_sql(
                LOCK_TREE, (tree_key(project.id, cmd.user_id),)
            )
            leaves = select(Task).where(
                Task.project_id == project.id, ~exists().where(subtask.parent_id == Task.id)
            )
            tasks = list(await uow.session.scalars(leaves.limit(DELETE_BATCH).with_for_update(of=Task)))
            if tasks:
                await remove_all(tasks, uow, cmd.user_id)
            remaining = select(exists().where(Task.project_id == project.id))
            last = len(tasks) < DELETE_BATCH and not await uow.session.scalar(remaining)
            if last:
                await uow.session.flush()  # the tasks' deletes first: they reference the project
                uow.emit(ProjectDeleted(project, cmd.user_id))
                await uow.session.delete(project)  # its memberships go with it (ON DELETE CASCADE)
            await uow.commit()
        if last:
            return


async def list_members(user_id: str, project_id: uuid.UUID, query: PageQuery, uow: UnitOfWork) -> Page:
    """The members, by user id, for any member to see."""
    after: str | None = None
    if query.cursor:
        after = decode_cursor(query.cursor).get("after")
        if not isinstance(after, str) or user_id_problem(after):
            raise Unprocessable("the cursor is not one this API issued", "cursor")
    stmt = select(ProjectMember).where(ProjectMember.project_id == project_id)
    if after is not None:
        stmt = stmt.where(ProjectMember.user_id > after)
    async with uow:
        await role_of(uow, user_id, project_id)
        rows = list(await uow.session.scalars(stmt.order_by(ProjectMember.user_id).limit(query.limit + 1)))
    cursor = encode_cursor({"after": rows[query.limit - 1].user_id}) if len(rows) > query.limit else None
    return Page([member_json(m) for m in rows[: query.limit]], cursor)


async def add_member(cmd: AddMember, uow: UnitOfWork) -> dict[str, Any]:
    if cmd.role is ProjectRole.owner:
        raise Unprocessable("a project has one owner; transfer ownership to a member instead", "role")
    async with uow:
        await _locked(uow, cmd.user_id, cmd.project_id, ProjectRole.admin, "adding members")
        if await uow.session.get(ProjectMember, (cmd.project_id, cmd.member_id)) is not None:
            raise Conflict(f"{cmd.member_id!r} is a member of this project already", "user_id")
        member = ProjectMember(project_id=cmd.project_id, user_id=cmd.member_id, role=cmd.role)
        uow.session.add(member)
        uow.emit(ProjectMemberAdded(cmd.project_id, member, cmd.user_id))
        await uow.commit()
        return member_json(member)


async def change_role(cmd: ChangeRole, uow: UnitOfWork) -> dict[str, Any]:
    if cmd.role is ProjectRole.owner:
        raise Unprocessable("ownership moves only by a transfer (POST .../transfer)", "role")
    async with uow:
        await _locked(uow, cmd.user_id, cmd.project_id, ProjectRole.admin, "changing roles")
        member = await _member(uow, cmd.project_id, cmd.member_id)
        if member.role == ProjectRole.owner:
            raise Forbidden("the owner's role changes only when they transfer ownership")
        if member.role != cmd.role:
            member.role = cmd.role
            uow.emit(ProjectMemberUpdated(cmd.project_id, member, cmd.user_id))
            await uow.commit()
        return member_json(member)


async def remove_member(cmd: RemoveMember, uow: UnitOfWork) -> None:
    """An admin removes a member below owner; any member but the owner may remove themselves (leave).
    The project's tasks assigned to them are unassigned with it, each with its task.updated."""
    leaving = cmd.member_id == cmd.user_id
    async with uow:
        needed = ProjectRole.viewer if leaving else ProjectRole.admin
        await _locked(uow, cmd.user_id, cmd.project_id, needed, "removing members")
        member = await _member(uow, cmd.project_id, cmd.member_id)
        if member.role == ProjectRole.owner:
            if leaving:
                raise Conflict("the owner leaves only after transferring ownership to another member")
            raise Forbidden("the owner cannot be removed")
        assigned = select(Task).where(Task.project_id == cmd.project_id, Task.assignee_id == cmd.member_id)
        tasks = list(await uow.session.scalars(assigned.with_for_update()))
        await uow.session.delete(member)
        uow.emit(ProjectMemberRemoved(cmd.project_id, member, cmd.user_id))
        for task in tasks:
            task.assignee_id = None
            touch(task)
            uow.emit(TaskUpdated(task, ("assignee_id",), cmd.user_id))
        await uow.commit()


async def transfer_project(cmd: TransferProject, uow: UnitOfWork) -> dict[str, Any]:
    """The owner hands ownership to another member and becomes an admin."""
    async with uow:
        project, _ = await _locked(uow, cmd.user_id, cmd.project_id, ProjectRole.owner, "transferring it")
        if cmd.member_id == cmd.user_id:
            raise Unprocessable("you own this project already", "user_id")
        heir = await uow.session.get(ProjectMember, (cmd.project_id, cmd.member_id))
        if heir is None:
            raise Unprocessable(f"{cmd.member_id!r} is not a member of this project", "user_id")
        owner = await _member(uow, cmd.project_id, cmd.user_id)
        owner.role = ProjectRole.admin
        await uow.session.flush()  # the old owner steps down first: one owner at every statement
        heir.role = ProjectRole.owner
        uow.emit(ProjectMemberUpdated(cmd.project_id, owner, cmd.user_id))
        uow.emit(ProjectMemberUpdated(cmd.project_id, heir, cmd.user_id))
        await uow.commit()
        return project_json(project, ProjectRole.admin)


async def project_events(user_id: str, project_id: uuid.UUID, query: PageQuery, uow: UnitOfWork) -> Page:
    """The project's activity feed: every CloudEvent about it, oldest first, for any member."""
    stmt = select(TaskEvent).where(TaskEvent.project_id == str(project_id))
    if query.cursor:
        stmt = stmt.where(TaskEvent.sequence > after_sequence(query.cursor))
    async with uow:
        await role_of(uow, user_id, project_id)
        rows = list(await uow.session.scalars(stmt.order_by(TaskEvent.sequence).limit(query.limit + 1)))
    return events_page(rows, query.limit)
