"""A user's settings (GET|PUT /api/me/settings): the time zone and locale that what they read is
written in (notifications, reminder emails: locales.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.dialects.postgresql import insert

from todo_backend.events import SettingsReplaced
from todo_backend.fields import utcnow
from todo_backend.models import SettingsPublic, SettingsWrite, UserSettings
from todo_backend.uow import UnitOfWork


@dataclass(frozen=True)
class ReplaceSettings:
    user_id: str
    fields: SettingsWrite


def settings_json(settings: UserSettings) -> dict[str, Any]:
    return SettingsPublic.model_validate(settings).model_dump(mode="json")


async def settings_of(uow: UnitOfWork, user_id: str) -> UserSettings:
    """The user's settings, the defaults if they set none; inside an open unit of work."""
    return await uow.session.get(UserSettings, user_id) or UserSettings(user_id=user_id)


async def my_settings(user_id: str, uow: UnitOfWork) -> dict[str, Any]:
    async with uow:
        return settings_json(await settings_of(uow, user_id))


async def replace_settings(cmd: ReplaceSettings, uow: UnitOfWork) -> dict[str, Any]:
    """Every setting replaced at once (one statement, whoever else writes them), with its event; a PUT
    that changes nothing writes nothing."""
    wanted = cmd.fields.model_dump()
    values = {**wanted, "updated_at": utcnow()}
    stmt = (
        insert(UserSettings)
        .values(user_id=cmd.user_id, **values)
        .on_conflict_do_update(
            index_elements=["user_id"],
            set_=values,
            where=tuple_(UserSettings.timezone, UserSettings.locale)
            != (wanted["timezone"], wanted["locale"]),
        )
        .returning(UserSettings)
    )
    async with uow:
        settings = (await uow.session.execute(stmt)).scalar_one_or_none()
        if settings is None:  # as they were
            return wanted
        uow.emit(SettingsReplaced(settings))
        await uow.commit()
    return settings_json(settings)
