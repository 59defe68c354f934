"""The helpers CI, the image build and the infra scripts call: which functions a change affects, a
committed manifest with its image filled in, the image's start script, and a function's health probe."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from todo_backend.catalog import FUNCTIONS, Function
from todo_backend.deploy.knative import CONTAINER_PORT, IMAGE_PATTERN

# A change under any of these rebuilds every function: each image carries all of them.
ALL_FUNCTIONS_PATHS = ("shared/", "Dockerfile", ".dockerignore", "pyproject.toml")
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def affected(changed: Iterable[str]) -> list[Function]:
    """The functions whose image or Service a change to `changed` (repo-relative paths) affects."""
    changed = list(changed)
    if any(p == prefix or p.startswith(prefix) for p in changed for prefix in ALL_FUNCTIONS_PATHS):
        return list(FUNCTIONS)
    hit = set()
    for path in changed:
        parts = PurePosixPath(path).parts
        if len(parts) >= 2 and parts[0] == "functions":
            hit.add(parts[1])
        elif len(parts) == 3 and parts[:2] == ("knative", "services"):
            hit.add(PurePosixPath(parts[2]).stem.replace("-", "_"))
    return [fn for fn in FUNCTIONS if fn.folder in hit]


def changed_paths(base: str, head: str, repo: Path) -> list[str] | None:
    """Paths changed between two commits of `repo`; None when `base` is unknown (first push, rewritten
    history)."""
    if not base or set(base) == {"0"}:
        return None
    known = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{base}^{{commit}}"], capture_output=True, check=False
    )
    if known.returncode != 0:
        return None
    diff = subprocess.run(
        ["git", "-C", str(repo), "diff", "--name-only", base, head],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in diff.stdout.splitlines() if line]


def matrix_entry(fn: Function) -> dict[str, str]:
    """One function of the CI matrix: its Service name and its folder (the image's FUNCTION build arg)."""
    return {"name": fn.name, "folder": fn.folder}


def render(text: str, owner: str, tag: str, image_of: str | None = None) -> str:
    """A committed manifest with its image placeholder(s) set to ghcr.io/<owner>/todo-<name>:<tag>;
    `image_of` names another function whose image to use (the migration Job runs from any of them)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", owner):
        raise ValueError(f"registry owner must be lowercase (GHCR requires it): {owner!r}")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        raise ValueError(f"not an image tag: {tag!r}")
    if image_of is not None and image_of not in {fn.name for fn in FUNCTIONS}:
        raise ValueError(f"no catalog function named {image_of!r}")
    rendered, count = IMAGE_PATTERN.subn(
        lambda m: f"ghcr.io/{owner}/todo-{image_of or m['name']}:{tag}", text
    )
    if count == 0:
        raise ValueError("no image placeholder in this manifest")
    return rendered


def launcher(folder: str) -> str:
    """The image's start script: todo_backend.serve (settings checked, then functions-framework) for the
    catalog function in functions/<folder>."""
    # serve's own lookup, so the build refuses exactly the folders the container would. Imported here:
    # serve needs the package's dependencies (the image has them), the other helpers run without them.
    from todo_backend.serve import function_in

    fn = function_in(folder)
    return (
        "#!/bin/sh\n"
        f"# {fn.name}: written at image build by `python -m todo_backend.deploy launcher {folder}`.\n"
        f'PORT="${{PORT:-{CONTAINER_PORT}}}" exec python -m todo_backend.serve {shlex.quote(fn.folder)}\n'
    )


@dataclass(frozen=True)
class Probe:
    """A request that proves a deployed function serves: HTTP functions answer an unauthenticated call
    to their own route with 401 (their code ran and read its settings); the others answer GET
    /robots.txt from functions-framework itself (404 for HTTP signatures, 405 for CloudEvents) without
    running a job or a handler."""

    method: str
    path: str
    status: int


def probe(fn: Function) -> Probe:
    if fn.trigger == "http":
        route = fn.routes[0]
        return Probe(route.method, re.sub(r"\{\w+\}", NIL_UUID, route.path), 401)
    return Probe("GET", "/robots.txt", 405 if fn.signature_type == "cloudevent" else 404)
