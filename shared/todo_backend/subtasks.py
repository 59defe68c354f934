"""Subtasks: where a task may sit in its tree. A subtask is in its parent's project (or its owner's
inbox), at most MAX_DEPTH ancestors deep, and never its own ancestor.

Every change that shapes a tree or spans several of its tasks (creating a subtask, moving or
re-parenting a task, completing or deleting one with its subtasks, deleting a project) takes its
tree's lock (LOCK_TREE, one per project or inbox): after the project's row, before any task's. Such
changes are serialized per tree, so the checks here read a tree no concurrent change can reshape
before the commit, and the one lock order (project, tree, tasks) leaves nothing to deadlock. Plain
rules and strings: create-task's cold path imports this.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from todo_backend.errors import NotFound, Unprocessable

MAX_DEPTH = 4  # ancestors above the deepest subtask: five levels in all
# For every parent refused unseen (none, another's, in another project), so the answer tells nothing.
NO_PARENT = "no such task in the task's project (or inbox) to be its parent"


def tree_key(project_id: uuid.UUID | None, user_id: str) -> str:
    """The lock key of a project's tasks, or of a user's inbox."""
    return f"project:{project_id}" if project_id is not None else f"inbox:{user_id}"


def check_parent(
    lineage: Sequence[Mapping[str, Any]],
    project_id: uuid.UUID | None,
    user_id: str,
    task_id: uuid.UUID | None = None,
    height: int = 0,
) -> None:
    """Refuse a parent for a task of `project_id` (or of `user_id`'s inbox) whose own subtasks reach
    `height` levels below it. `lineage` is the parent and its ancestors, nearest first (TASK_LINEAGE);
    `task_id` the task being re-parented, None for a new one."""
    parent = lineage[0] if lineage else None
    if parent is None or tree_key(parent["project_id"], parent["user_id"]) != tree_key(project_id, user_id):
        # Elsewhere is as good as nowhere: a subtask's parent is in its own project or inbox.
        raise NotFound(NO_PARENT, "parent_id")
    if any(row["id"] == task_id for row in lineage):
        raise Unprocessable("a task cannot be a subtask of itself or of its own subtasks", "parent_id")
    if len(lineage) + height > MAX_DEPTH:
        raise Unprocessable(f"subtasks nest at most {MAX_DEPTH} levels below a top-level task", "parent_id")
