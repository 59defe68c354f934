"""Webhook subscriptions: the create, list and delete handlers, and the listing of a subscription's
deliveries. A URL is checked against the address policy before it is stored."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, select, text

from todo_backend.catalog import by_name
from todo_backend.errors import Conflict, NotFound, Unprocessable
from todo_backend.models import Webhook, WebhookCreate, WebhookDelivery, WebhookDeliveryPublic, WebhookPublic
from todo_backend.paging import Page, PageQuery, by_creation, creation_page
from todo_backend.uow import UnitOfWork
from todo_backend.webhooks.destinations import (
    Resolver,
    UnsafeDestination,
    check_destination,
    is_production,
    parse_url,
    system_resolver,
)

# The event types a subscription may name: those deliver-webhooks is declared to consume.
SUBSCRIBABLE_TYPES: tuple[str, ...] = by_name("deliver-webhooks").event_types


class WebhookLimitReached(Conflict):
    # 409, not 422: the request is valid; the user's current subscriptions are what forbid it.
    slug = "webhook-limit-reached"


@dataclass(frozen=True)
class CreateWebhook:
    user_id: str
    fields: WebhookCreate


@dataclass(frozen=True)
class DeleteWebhook:
    user_id: str
    webhook_id: uuid.UUID


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return WebhookPublic.model_validate(hook).model_dump(mode="json")


def validate_event_types(requested: list[str]) -> list[str]:
    unknown = [t for t in requested if t not in SUBSCRIBABLE_TYPES]
    if unknown:
        raise Unprocessable(
            f"unknown event types {unknown}; subscribable: {list(SUBSCRIBABLE_TYPES)}", "event_types"
        )
    return list(dict.fromkeys(requested))


async def create_webhook(
    cmd: CreateWebhook, uow: UnitOfWork, resolve: Resolver = system_resolver
) -> dict[str, Any]:
    """The new subscription's JSON with its secret: the only response that ever shows the secret."""
    settings = uow.settings
    event_types = validate_event_types(cmd.fields.event_types)
    try:
        if is_production(settings):
            # Resolved before the transaction: no lock is held across a DNS lookup.
            await check_destination(cmd.fields.url, production=True, resolve=resolve)
        else:
            parse_url(cmd.fields.url, https_only=False)  # a receiver in development may not exist yet
    except UnsafeDestination as exc:
        raise Unprocessable(str(exc), "url") from exc
    if cmd.fields.secret is not None and not cmd.fields.secret.isprintable():
        raise Unprocessable("the secret must not contain control characters", "secret")
    secret = cmd.fields.secret or secrets.token_urlsafe(32)
    async with uow:
        # One creator per user at a time, so two concurrent creates cannot both pass the count.
        await uow.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"webhook-limit:{cmd.user_id}"},
        )
        count = await uow.session.scalar(
            select(func.count()).select_from(Webhook).where(Webhook.user_id == cmd.user_id)
        )
        if (count or 0) >= settings.webhook_max_per_user:
            raise WebhookLimitReached(
                f"a user may have at most {settings.webhook_max_per_user} webhooks; delete one first"
            )
        hook = Webhook(user_id=cmd.user_id, url=cmd.fields.url, event_types=event_types, secret=secret)
        uow.session.add(hook)
        await uow.commit()
    return {**webhook_json(hook), "secret": secret}


async def delete_webhook(cmd: DeleteWebhook, uow: UnitOfWork) -> None:
    """Deletes the subscription and (by cascade) its deliveries; an attempt in flight records nothing."""
    async with uow:
        deleted = await uow.session.execute(
            delete(Webhook)
            .where(Webhook.id == cmd.webhook_id, Webhook.user_id == cmd.user_id)
            .returning(Webhook.id)
        )
        if deleted.first() is None:
            raise NotFound("no such webhook")  # another user's webhook is indistinguishable from none
        await uow.commit()


async def list_webhooks(user_id: str, query: PageQuery, uow: UnitOfWork) -> Page:
    """The user's subscriptions, oldest first (without their secrets)."""
    stmt = by_creation(select(Webhook).where(Webhook.user_id == user_id), Webhook, query, newest_first=False)
    async with uow:
        rows = list((await uow.session.execute(stmt)).scalars())
    return creation_page(rows, query.limit, webhook_json)


class DeliveryQuery(PageQuery):
    """list-webhook-deliveries query parameters."""

    status: Literal["pending", "succeeded", "failed"] | None = None


async def list_deliveries(user_id: str, webhook_id: uuid.UUID, query: DeliveryQuery, uow: UnitOfWork) -> Page:
    """A subscription's deliveries, newest first."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if query.status:
        stmt = stmt.where(WebhookDelivery.status == query.status)
    stmt = by_creation(stmt, WebhookDelivery, query, newest_first=True)
    async with uow:
        owner = await uow.session.scalar(select(Webhook.user_id).where(Webhook.id == webhook_id))
        if owner != user_id:
            raise NotFound("no such webhook")
        rows = list((await uow.session.execute(stmt)).scalars())
    return creation_page(
        rows, query.limit, lambda r: WebhookDeliveryPublic.model_validate(r).model_dump(mode="json")
    )
