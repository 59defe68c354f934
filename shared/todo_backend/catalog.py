"""The one declaration of every function: name, entry point and trigger.

The local runner, the gateway's routing table, the OpenAPI paths, the Knative and Dapr manifests and
the CI matrix are all derived from FUNCTIONS; tests fail when a function folder or a manifest drifts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal


def source_checkout() -> Path:
    """The repository this package was imported from: the local stack, the tests and the deploy scripts
    run from one. An installed wheel (a function image) has none, and asking there is an error rather
    than a path inside site-packages."""
    here = Path(__file__).resolve()  # <root>/shared/todo_backend/catalog.py in a checkout
    root = here.parents[2]
    if here.parents[1].name != "shared" or not (root / "pyproject.toml").is_file():
        raise RuntimeError(f"{here} is installed, not in a source checkout: there is no repository root")
    return root


@dataclass(frozen=True)
class Route:
    PARAM: ClassVar[re.Pattern[str]] = re.compile(r"\{(\w+)\}")

    method: str
    path: str  # template with {name} segments, e.g. /api/tasks/{id}

    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + self.PARAM.sub(r"(?P<\1>[^/]+)", self.path) + "$")


@dataclass(frozen=True)
class Function:
    name: str  # kebab case: the Knative Service name
    summary: str
    routes: tuple[Route, ...] = ()
    event_types: tuple[str, ...] = ()
    schedule: str | None = None  # 5-field cron, UTC
    # False: a route of it names its user another way than a bearer token (the calendar feed's secret).
    bearer: bool = True

    @property
    def folder(self) -> str:
        return self.name.replace("-", "_")

    @property
    def entry(self) -> str:
        """The decorated function in functions/<folder>/main.py (functions-framework --target)."""
        return self.folder

    @property
    def source(self) -> Path:
        """functions/<folder>/main.py in the source checkout (an image has it under /app instead)."""
        return source_checkout() / "functions" / self.folder / "main.py"

    @property
    def trigger(self) -> Literal["http", "cloudevent", "cron"]:
        if self.event_types:
            return "cloudevent"
        if self.schedule:
            return "cron"
        return "http"

    @property
    def signature_type(self) -> Literal["http", "cloudevent"]:
        return "cloudevent" if self.trigger == "cloudevent" else "http"


@dataclass(frozen=True)
class Delivery:
    """How events are delivered to a consumer: the Knative Trigger's `delivery` and the local dispatcher."""

    # Exponential, 0.5 s doubling 8 times: about two minutes of retries (a database restart, a deploy)
    # before an event that keeps failing goes to the dead-letter topic.
    retries: int = 8
    backoff_seconds: float = 0.5


DELIVERY = Delivery()

TASK = "/api/tasks/{id}"
WEBHOOK = "/api/webhooks/{id}"
RECURRING = "/api/recurring-tasks/{id}"
COMMENT = TASK + "/comments/{comment_id}"
PROJECT = "/api/projects/{id}"
MEMBER = PROJECT + "/members/{user_id}"
TASK_EVENT_TYPES = (
    "dev.todo.task.created",
    "dev.todo.task.updated",
    "dev.todo.task.completed",
    "dev.todo.task.deleted",
)
REMINDER_DUE = "dev.todo.reminder.due"

FUNCTIONS: tuple[Function, ...] = (
    Function("create-task", "Create a task", (Route("POST", "/api/tasks"),)),
    Function("list-tasks", "List, filter, search and sort tasks", (Route("GET", "/api/tasks"),)),
    Function("get-task", "Get one task", (Route("GET", TASK),)),
    Function(
        "update-task",
        "Update a task (PATCH merges, PUT replaces)",
        (Route("PATCH", TASK), Route("PUT", TASK)),
    ),
    Function("delete-task", "Delete a task", (Route("DELETE", TASK),)),
    Function("complete-task", "Complete a task", (Route("POST", TASK + "/complete"),)),
    Function("get-task-history", "A task's CloudEvents", (Route("GET", TASK + "/events"),)),
    Function("create-comment", "Comment on a task", (Route("POST", TASK + "/comments"),)),
    Function("list-comments", "A task's comments", (Route("GET", TASK + "/comments"),)),
    Function("update-comment", "Edit a comment", (Route("PATCH", COMMENT),)),
    Function("delete-comment", "Delete a comment", (Route("DELETE", COMMENT),)),
    Function("create-webhook", "Subscribe an endpoint to events", (Route("POST", "/api/webhooks"),)),
    Function("list-webhooks", "List webhook subscriptions", (Route("GET", "/api/webhooks"),)),
    Function("delete-webhook", "Delete a webhook subscription", (Route("DELETE", WEBHOOK),)),
    Function(
        "list-webhook-deliveries",
        "A webhook's deliveries",
        (Route("GET", WEBHOOK + "/deliveries"),),
    ),
    Function(
        "deliver-webhooks",
        "POST events to subscribed endpoints",
        event_types=(*TASK_EVENT_TYPES, REMINDER_DUE),
    ),
    Function("retry-webhook-deliveries", "Retry failed webhook deliveries", schedule="* * * * *"),
    Function("relay-outbox", "Publish outbox rows the fast path missed", schedule="* * * * *"),
    Function("create-recurring-task", "Create a recurring task", (Route("POST", "/api/recurring-tasks"),)),
    Function("list-recurring-tasks", "List recurring tasks", (Route("GET", "/api/recurring-tasks"),)),
    Function("get-recurring-task", "Get one recurring task", (Route("GET", RECURRING),)),
    Function(
        "update-recurring-task",
        "Update a recurring task (PATCH merges, PUT replaces)",
        (Route("PATCH", RECURRING), Route("PUT", RECURRING)),
    ),
    Function("delete-recurring-task", "Stop a recurring task", (Route("DELETE", RECURRING),)),
    Function("materialize-recurrences", "Create the next occurrence of due series", schedule="* * * * *"),
    Function(
        "schedule-next-occurrence",
        "After a completion-anchored occurrence is completed (or deleted), create the next",
        event_types=("dev.todo.task.completed", "dev.todo.task.deleted"),
    ),
    Function("check-due-tasks", "Emit reminders that have fallen due", schedule="* * * * *"),
    # Every five minutes: nothing waits on it, and a tick's row cap still drains millions of rows a day.
    Function(
        "prune-expired-rows",
        "Delete tracking rows, idempotency keys, finished deliveries and read notifications past retention",
        schedule="*/5 * * * *",
    ),
    Function(
        "deliver-notification",
        "Notify of a reminder, an assignment or a new membership",
        event_types=(REMINDER_DUE, *TASK_EVENT_TYPES[:2], "dev.todo.project-member.added"),
    ),
    Function("list-notifications", "List notifications", (Route("GET", "/api/notifications"),)),
    Function("create-project", "Create a project (the creator owns it)", (Route("POST", "/api/projects"),)),
    Function("list-projects", "List the projects I am a member of", (Route("GET", "/api/projects"),)),
    Function("get-project", "Get one project, with my role in it", (Route("GET", PROJECT),)),
    Function("update-project", "Rename or recolor a project", (Route("PATCH", PROJECT),)),
    Function("delete-project", "Delete a project", (Route("DELETE", PROJECT),)),
    Function("list-project-members", "A project's members", (Route("GET", PROJECT + "/members"),)),
    Function("add-project-member", "Add a member to a project", (Route("POST", PROJECT + "/members"),)),
    Function("update-project-member", "Change a member's role", (Route("PATCH", MEMBER),)),
    Function(
        "remove-project-member",
        "Remove a member from a project, or leave it",
        (Route("DELETE", MEMBER),),
    ),
    Function(
        "transfer-project",
        "Hand a project's ownership to another member",
        (Route("POST", PROJECT + "/transfer"),),
    ),
    Function("get-project-events", "A project's activity feed", (Route("GET", PROJECT + "/events"),)),
    Function(
        "mark-notification-read",
        "Mark a notification read",
        (Route("POST", "/api/notifications/{id}/read"),),
    ),
    Function(
        "snooze-notification",
        "Remind me of a reminder's task again later",
        (Route("POST", "/api/notifications/{id}/snooze"),),
    ),
    Function("get-my-settings", "My time zone and locale", (Route("GET", "/api/me/settings"),)),
    Function("replace-my-settings", "Set my time zone and locale", (Route("PUT", "/api/me/settings"),)),
    Function(
        "rotate-calendar-token",
        "Create or rotate my calendar feed's secret",
        (Route("POST", "/api/me/calendar-token"),),
    ),
    Function(
        "get-calendar-feed",
        "My calendar feed (iCalendar)",
        (Route("GET", "/api/calendar.ics"),),
        bearer=False,
    ),
)


def by_name(name: str) -> Function:
    for fn in FUNCTIONS:
        if fn.name == name:
            return fn
    raise KeyError(name)


def match_route(method: str, path: str) -> tuple[Function, dict[str, str]] | None:
    """The function that serves `method path`, and the path parameters, as the ingress routes it."""
    for fn in FUNCTIONS:
        for route in fn.routes:
            m = route.pattern().match(path)
            if m and route.method == method:
                return fn, m.groupdict()
    return None
