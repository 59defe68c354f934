"""The catalog of functions: each declared function exists as code, and routes resolve like the ingress."""

from __future__ import annotations

import importlib.util
import inspect
import re
import uuid

import pytest
from functions_framework import _function_registry

from todo_backend import catalog
from todo_backend.catalog import FUNCTIONS, Function, match_route


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_each_declared_function_has_a_main_py_in_its_folder(fn: Function) -> None:
    assert fn.source == catalog.source_checkout() / "functions" / fn.folder / "main.py"
    assert fn.source.is_file(), f"{fn.name} is declared but {fn.source} does not exist"


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_each_declared_function_defines_its_entry_decorated_for_its_signature_type(fn: Function) -> None:
    if not fn.source.is_file():
        pytest.fail(f"{fn.source} does not exist")
    # Import under a unique name, as functions-framework would load it, and see what the decorator registered.
    _function_registry.REGISTRY_MAP.pop(fn.entry, None)
    spec = importlib.util.spec_from_file_location(f"catalog_check_{fn.folder}", fn.source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = getattr(module, fn.entry, None)
    assert entry is not None, f"{fn.source} defines no {fn.entry}"
    assert inspect.iscoroutinefunction(entry), f"{fn.entry} must be async (functions_framework.aio)"
    assert _function_registry.REGISTRY_MAP.get(fn.entry) == fn.signature_type
    assert fn.entry in _function_registry.ASGI_FUNCTIONS


def test_function_names_are_unique_kebab_case() -> None:
    names = [fn.name for fn in FUNCTIONS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name) for name in names)


def test_no_two_functions_serve_the_same_method_and_path() -> None:
    routes = [(r.method, r.path) for fn in FUNCTIONS for r in fn.routes]
    assert len(routes) == len(set(routes))


def test_the_task_api_routes_are_served_by_the_documented_functions() -> None:
    task_id = str(uuid.uuid4())
    expected = {
        ("POST", "/api/tasks"): "create-task",
        ("GET", "/api/tasks"): "list-tasks",
        ("GET", f"/api/tasks/{task_id}"): "get-task",
        ("PATCH", f"/api/tasks/{task_id}"): "update-task",
        ("PUT", f"/api/tasks/{task_id}"): "update-task",
        ("DELETE", f"/api/tasks/{task_id}"): "delete-task",
        ("POST", f"/api/tasks/{task_id}/complete"): "complete-task",
        ("GET", f"/api/tasks/{task_id}/events"): "get-task-history",
    }
    for (method, path), name in expected.items():
        match = match_route(method, path)
        assert match is not None, f"{method} {path} has no route"
        fn, params = match
        assert fn.name == name, f"{method} {path}"
        assert params == ({"id": task_id} if path != "/api/tasks" else {})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/tasks"),
        ("GET", "/api/tasks/abc/complete"),
        ("POST", "/api/tasks/abc"),
        ("GET", "/api/tasks/abc/def"),
        ("GET", "/api/tasks/"),
        ("GET", "/api/tasks/abc/events/extra"),
        ("GET", "/tasks"),
    ],
)
def test_requests_no_function_serves_match_no_route(method: str, path: str) -> None:
    assert match_route(method, path) is None


def test_http_functions_have_routes_and_event_functions_have_types_or_a_schedule() -> None:
    for fn in FUNCTIONS:
        assert fn.trigger == "http" if fn.routes else fn.trigger in {"cloudevent", "cron"}, fn.name
        assert fn.signature_type == ("cloudevent" if fn.event_types else "http"), fn.name
        assert fn.entry == fn.name.replace("-", "_")
