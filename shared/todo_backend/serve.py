"""`python -m todo_backend.serve <folder>`: start one function under functions-framework, as its image does.

Settings are read and checked first, in the process that then serves (gunicorn's master, before it
forks the worker): a missing DATABASE_URL, or outside local development a missing, short or local
JWT_SECRET, stops the container at start instead of failing every request. The first request pays
nothing more for it: it would read the same settings. Logging is configured next, once (logs.py), and
the garbage collector's threshold set: the worker gunicorn forks inherits both.

The local stack starts its functions the same way, with PORT, HOST (127.0.0.1) and FUNCTION_SOURCE (the
checkout's functions/<folder>/main.py) in their environment; an image leaves HOST and FUNCTION_SOURCE
unset, and serves functions/<folder>/main.py under /app on every interface.
"""

from __future__ import annotations

import gc
import os
import sys

from pydantic import ValidationError

from todo_backend import logs, tracing
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
        settings = get_settings()
    except ValidationError as exc:
        raise SystemExit(f"{fn.name} refuses to start: {exc}") from exc
    logs.configure(settings, fn.name)
    tracing.configure(settings, fn.name)
    # At the default threshold (a young collection every 700 allocations) the collector walked the
    # objects a fast-path publish holds again and again: a third of the CPU the fast path added per
    # create (bench/create_throughput.py). Cycles wait a little longer to be freed; refcounting frees
    # everything else at once, as before.
    gc.set_threshold(20_000, 20, 20)
    from functions_framework._cli import _cli

    port = os.environ.get("PORT", "8080")
    source, host = os.environ.get("FUNCTION_SOURCE"), os.environ.get("HOST")
    _cli.main(functions_framework_args(fn, port, source=source, host=host))


if __name__ == "__main__":
    main(sys.argv[1:])
