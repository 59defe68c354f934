"""Alembic migrations, shipped inside the package so the migration Job runs from any function image."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# How autogenerate compares the models with a database, for `alembic revision --autogenerate` (env.py)
# and the drift test alike: column types and server defaults too (PostgreSQL's reflected defaults compare
# equal to the declared ones on this schema, so there are no false positives).
COMPARE = {"compare_type": True, "compare_server_default": True}


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema at `database_url` to `revision`. Its own step: never run in a cold start."""
    command.upgrade(alembic_config(database_url), revision)
