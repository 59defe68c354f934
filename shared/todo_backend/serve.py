"""`python -m todo_backend.serve <folder>`: start one function under functions-framework, as its image does.

Settings are read and checked first, in the process that then serves (gunicorn's master, before it
forks the worker): a missing DATABASE_URL, or outside local development a missing, short or local
JWT_SECRET, stops the container at start instead of failing every request. The first request pays
nothing more for it: it would read the same settings.
"""

from __future__ import annotations

import os
import sys

from pydantic import ValidationError

from todo_backend.catalog import FUNCTIONS, Function
from todo_backend.settings import get_settings


def function_in(folder: str) -> Function:
    for fn in FUNCTIONS:
        if fn.folder == folder:
            return fn
    raise SystemExit(f"no catalog function lives in functions/{folder}")


def functions_framework_args(
    fn: Function, port: int | str, *, source: str | None = None, host: str | None = None
) -> list[str]:
    """functions-framework's arguments for `fn`, for the image and the local stack alike. The source
    defaults to the image's layout (functions/<folder>/main.py under /app, the working directory)."""
    return [
        *("--target", fn.entry),
        *("--source", source or f"functions/{fn.folder}/main.py"),
        *("--signature-type", fn.signature_type),
        "--asgi",
        *(("--host", host) if host else ()),
        *("--port", str(port)),
    ]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m todo_backend.serve <function folder>")
    fn = function_in(argv[0])
    try:
        get_settings()
    except ValidationError as exc:
        raise SystemExit(f"{fn.name} refuses to start: {exc}") from exc
    from functions_framework._cli import _cli

    _cli.main(functions_framework_args(fn, os.environ.get("PORT", "8080")))


if __name__ == "__main__":
    main(sys.argv[1:])
