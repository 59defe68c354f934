"""The package's layers point one way: each module imports only from its own layer or the ones below,
and only the adapters know the web framework. Read from the source (ast), so an import inside a function
counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "todo_backend"

# Bottom to top. A module may import its own layer and the layers before it, never one after it.
LAYERS: list[tuple[str, set[str]]] = [
    # Pure: declarations, validation, cron evaluation, event types and cursors. No I/O.
    (
        "core",
        {
            "errors",
            "roles",
            "subtasks",
            "locales",
            "settings",
            "fields",
            "stored",
            "derived",
            "catalog",
            "recurrence",
            "models",
            "events",
            "paging",
            "auth",
            "logs",
            "tracing",
        },
    ),
    # Connections and the outbox: the database, the broker, the email binding, metrics, the bootstrap.
    ("infrastructure", {"db", "pg", "commits", "metrics", "email", "messaging", "uow", "relay", "bootstrap"}),
    # The consumer wrapping that event handlers build on: an inbound CloudEvent read once into its typed
    # event, the shared ownership check, tracking rows.
    ("consumption", {"consumers"}),
    # Handlers per aggregate and the cron ticks.
    (
        "handlers",
        {
            "task_create",
            "tasks",
            "comments",
            "recurring",
            "projects",
            "webhooks",
            "notifications",
            "preferences",
            "calendar_feed",
            "reminders",
            "retention",
        },
    ),
    # Request adapters: HTTP in and out, problem+json; the image's entry point.
    ("adapters", {"http", "serve"}),
    # What reads the package from outside: the OpenAPI document, the manifest generator, migrations,
    # the local stack.
    ("tools", {"openapi", "derive", "deploy", "migrations", "devstack"}),
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}
# The web framework belongs to the adapters (and the local stack that runs them), never below.
WEB = {"starlette", "functions_framework"}
KNOWS_THE_WEB = {"http", "serve", "devstack"}


def top_module(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports(path: Path) -> set[str]:
    """Every module `path` imports: `todo_backend.x` as `x`, anything else by its top-level name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "todo_backend":  # from todo_backend import x
                names = [f"todo_backend.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative: within its own package
            continue
        for name in names:
            parts = name.split(".")
            found.add(parts[1] if parts[0] == "todo_backend" and len(parts) > 1 else parts[0])
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if top_module(p) != "__init__")


def test_every_module_has_a_layer() -> None:
    assert {top_module(p) for p in SOURCES} <= set(RANK), "put new modules in LAYERS"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_layer_and_the_ones_below(path: Path) -> None:
    module = top_module(path)
    above = {m for m in imports(path) if m in RANK and RANK[m] > RANK[module]}
    assert not above, f"{module} ({LAYERS[RANK[module]][0]}) imports {sorted(above)} from a layer above it"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_adapters_know_the_web_framework(path: Path) -> None:
    if top_module(path) not in KNOWS_THE_WEB:
        assert not imports(path) & WEB


def test_the_reader_sees_imports_inside_functions_and_from_the_package(tmp_path: Path) -> None:
    source = tmp_path / "handler.py"
    source.write_text(
        "from todo_backend import paging\n"
        "def f():\n    from todo_backend.http import Problem\n    import starlette.requests\n"
    )
    assert imports(source) == {"paging", "http", "starlette"}
