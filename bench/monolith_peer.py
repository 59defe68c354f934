"""The peer create_throughput.py measures create-task against: a FastAPI + SQLModel monolith doing the
same create the way such an application usually does (issue 11): one worker process, an async SQLModel
session on asyncpg with the function's pool size, the same HS256 JWT check, the task row and its
outbox row added through the ORM and committed together, the task's JSON in the 201.

    DATABASE_URL=... JWT_SECRET=... uvicorn monolith_peer:app --port P   (from bench/)
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from todo_backend.db import async_url
from todo_backend.models import Task, TaskCreate, TaskEvent, TaskPublic
from todo_backend.settings import Settings
from todo_backend.task_create import reminder_instant

settings = Settings()  # the function's own: DATABASE_URL, JWT_SECRET, DB_POOL_SIZE...
engine = create_async_engine(
    async_url(os.environ["DATABASE_URL"]),
    pool_size=settings.db_pool_size,
    max_overflow=settings.db_max_overflow,
)
sessions = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI()


async def session() -> Any:
    async with sessions() as s:
        yield s


def user(authorization: Annotated[str, Header()] = "") -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required")
    try:
        claims = jwt.decode(
            token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.InvalidTokenError as exc:
        raise HTTPException(401, "invalid token") from exc
    return str(claims["sub"])


@app.post("/api/tasks", status_code=201)
async def create_task(
    body: TaskCreate,
    user_id: Annotated[str, Depends(user)],
    db: Annotated[AsyncSession, Depends(session)],
) -> JSONResponse:
    task = Task(user_id=user_id, **body.model_dump())
    task.updated_at = task.created_at
    task.remind_at = reminder_instant(
        task.due_date, task.remind_before_minutes, settings.default_remind_before_minutes
    )
    public = TaskPublic.model_validate(task).model_dump(mode="json")
    db.add(task)
    db.add(
        TaskEvent(
            type="dev.todo.task.created",
            source="/monolith",
            subject=str(task.id),
            partition_key=str(task.id),
            user_id=user_id,
            data={"task": public},
        )
    )
    await db.commit()
    return JSONResponse(public, 201, {"Location": f"/api/tasks/{task.id}"})
