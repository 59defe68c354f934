"""Comments on tasks. Whoever may see a task reads its comments, oldest first; whoever may change it (its
owner, a project's editors and above) comments on it, and edits and deletes their own; a project's
admins delete any (an author demoted to viewer does neither). A comment's events are about its
task: subject and partition key are the task's, so they are ordered with the task's own events and
appear in its history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from todo_backend.errors import Forbidden, NotFound, at_version
from todo_backend.events import CommentCreated, CommentDeleted, CommentUpdated, comment_json
from todo_backend.models import Comment, Task, touch
from todo_backend.paging import Page, PageQuery, by_creation, creation_page
from todo_backend.roles import ProjectRole, require
from todo_backend.tasks import task_role
from todo_backend.uow import UnitOfWork


@dataclass(frozen=True)
class CreateComment:
    user_id: str
    task_id: uuid.UUID
    body: str


@dataclass(frozen=True)
class UpdateComment:
    user_id: str
    task_id: uuid.UUID
    comment_id: uuid.UUID
    body: str
    if_match: frozenset[int] | None = None


@dataclass(frozen=True)
class DeleteComment:
    user_id: str
    task_id: uuid.UUID
    comment_id: uuid.UUID
    if_match: frozenset[int] | None = None


async def _task(
    uow: UnitOfWork, user_id: str, task_id: uuid.UUID, *, writing: bool = True
) -> tuple[Task, ProjectRole]:
    """The task and the user's role over it. A write keeps the task from being deleted until it commits
    (FOR KEY SHARE), taken before the membership: the order delete-task and delete-project lock in, so
    a comment racing a delete waits for it and finds no task, instead of failing its foreign key."""
    lock = {"read": True, "key_share": True} if writing else False
    task = await uow.session.get(Task, task_id, with_for_update=lock)
    if task is None:
        raise NotFound("no such task")
    return task, await task_role(uow, user_id, task)


async def _comment(
    uow: UnitOfWork, task: Task, comment_id: uuid.UUID, if_match: frozenset[int] | None
) -> Comment:
    comment = await uow.session.get(Comment, comment_id, with_for_update=True)
    if comment is None or comment.task_id != task.id:
        raise NotFound("no such comment")
    at_version("comment", comment.version, if_match)
    return comment


async def create_comment(cmd: CreateComment, uow: UnitOfWork) -> dict[str, Any]:
    async with uow:
        task, role = await _task(uow, cmd.user_id, cmd.task_id)
        require(role, ProjectRole.editor, "commenting")
        comment = Comment(task_id=task.id, author_id=cmd.user_id, body=cmd.body)
        uow.session.add(comment)
        uow.emit(CommentCreated(comment, task.project_id, cmd.user_id))
        await uow.commit()
        return comment_json(comment)


async def list_comments(user_id: str, task_id: uuid.UUID, query: PageQuery, uow: UnitOfWork) -> Page:
    stmt = by_creation(select(Comment).where(Comment.task_id == task_id), Comment, query, newest_first=False)
    async with uow:
        await _task(uow, user_id, task_id, writing=False)
        rows = list(await uow.session.scalars(stmt))
    return creation_page(rows, query.limit, comment_json)


async def update_comment(cmd: UpdateComment, uow: UnitOfWork) -> dict[str, Any]:
    async with uow:
        task, role = await _task(uow, cmd.user_id, cmd.task_id)
        require(role, ProjectRole.editor, "editing comments")
        comment = await _comment(uow, task, cmd.comment_id, cmd.if_match)
        if comment.author_id != cmd.user_id:
            raise Forbidden("only its author edits a comment")
        if comment.body != cmd.body:
            comment.body = cmd.body
            touch(comment)
            uow.emit(CommentUpdated(comment, task.project_id, cmd.user_id))
            await uow.commit()
        return comment_json(comment)


async def delete_comment(cmd: DeleteComment, uow: UnitOfWork) -> None:
    async with uow:
        task, role = await _task(uow, cmd.user_id, cmd.task_id)
        comment = await _comment(uow, task, cmd.comment_id, cmd.if_match)
        if comment.author_id == cmd.user_id:
            require(role, ProjectRole.editor, "deleting comments")  # as for editing them
        else:
            require(role, ProjectRole.admin, "deleting another member's comment")
        await uow.session.delete(comment)
        uow.emit(CommentDeleted(comment, task.project_id, cmd.user_id))
        await uow.commit()
