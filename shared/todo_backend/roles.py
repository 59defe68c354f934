"""A project member's role and what it allows: pure, so that create-task's cold path can check a role
without the models."""

from __future__ import annotations

import enum

from todo_backend.errors import Forbidden


class ProjectRole(enum.StrEnum):
    # Declaration order is the rank: each role may do what the ones before it may.
    viewer = "viewer"
    editor = "editor"
    admin = "admin"
    owner = "owner"


RANK = {role: rank for rank, role in enumerate(ProjectRole)}


def require(role: ProjectRole, needed: ProjectRole, action: str) -> None:
    """Forbidden, naming the role `action` needs, unless `role` ranks at least as high."""
    if RANK[role] < RANK[needed]:
        raise Forbidden(f"{action} needs the {needed} role in this project; yours is {role}")
