"""create-task's cold path step by step, in this fresh interpreter; prints {step: seconds} as JSON.

Run by cold_start.py with the function's environment (DATABASE_URL, JWT_SECRET, TODO_ENV). Steps in
brackets are asides for comparison, not part of the function's own path. Nothing from the project
is imported before the step that times it.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "functions" / "create_task" / "main.py"
BODY = {"title": "cold start", "tags": ["bench"]}


async def steps() -> dict[str, float]:
    clock = time.perf_counter
    out: dict[str, float] = {}

    start = clock()
    from functions_framework.aio import create_asgi_app

    out["import functions_framework.aio (the hello world's too)"] = clock() - start
    start = clock()
    app = create_asgi_app("create_task", str(SOURCE), "http")
    out["import main.py and its dependencies, build the app"] = clock() - start

    start = clock()
    from todo_backend.pg import close_pool, get_pool

    pool = await get_pool()
    out["create the pool (no connection yet)"] = clock() - start
    start = clock()
    first = await pool.acquire()
    out["first connection: connect, codecs"] = clock() - start
    start = clock()
    second = await pool.acquire()
    out["second connection"] = clock() - start
    await pool.release(second)
    await pool.release(first)

    import asyncpg
    import jwt

    from todo_backend.settings import get_settings

    settings = get_settings()
    start = clock()
    raw = await asyncpg.connect(settings.database_url)
    out["[a plain asyncpg.connect]"] = clock() - start
    await raw.close()

    claims = {"sub": "bench-cold-probe", "exp": int(time.time()) + 600}
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    for label in ("first request", "second request"):
        sent, done = await _post(app, token)
        out[f"{label}: until the response is sent"] = sent
        out[f"{label}: its after-response work (fast path, metrics)"] = done - sent
    await close_pool()
    return out


async def _post(app: Callable[..., Awaitable[None]], token: str) -> tuple[float, float]:
    """POST /api/tasks straight to the ASGI app: seconds until the response body is sent, and until the
    app returns (Starlette runs background tasks in between, after the client has its answer)."""
    body = json.dumps(BODY).encode()
    headers = [
        (b"host", b"function"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/tasks",
        "raw_path": b"/api/tasks",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    finished = asyncio.Event()
    delivered = False
    status = 0
    sent_at = 0.0

    async def receive() -> dict[str, object]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        nonlocal status, sent_at
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            sent_at = time.perf_counter()

    start = time.perf_counter()
    await app(scope, receive, send)
    finished.set()
    if status != 201:
        raise RuntimeError(f"create-task answered {status}")
    return sent_at - start, time.perf_counter() - start


if __name__ == "__main__":
    print(json.dumps(asyncio.run(steps())))
