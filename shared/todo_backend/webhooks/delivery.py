"""Webhook deliveries: one event for one subscription, its own row, queued by the deliver-webhooks
consumer, claimed with a lease before each attempt, signed and POSTed, recorded after it, and retried with
backoff by the retry-webhook-deliveries cron until it succeeds or runs out of attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import httpx
from sqlalchemy import RowMapping, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from todo_backend import tracing
from todo_backend.consumers import InboundEvent
from todo_backend.errors import PoisonEvent
from todo_backend.models import ProjectMember, TaskEvent, Webhook, WebhookDelivery
from todo_backend.settings import Settings, get_settings
from todo_backend.uow import UnitOfWork
from todo_backend.webhooks.destinations import (
    Destination,
    Resolver,
    UnsafeDestination,
    check_destination,
    is_production,
    pinned_request,
    system_resolver,
)

log = logging.getLogger(__name__)

EXCERPT_CHARS = 512  # the most of a receiver's response body ever stored
CLAIM_BATCH = 100  # deliveries one retry tick claims
CLAIM_PER_WEBHOOK = 5  # ... at most this many of one subscription, so a dead receiver cannot fill a tick
MAX_BACKOFF_SECONDS = 3600


# --- queueing: the deliver-webhooks consumer's effect -------------------------------------------------


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


async def queue_deliveries(event: InboundEvent, uow: UnitOfWork) -> list[uuid.UUID]:
    """One pending delivery per subscription to the event's type of the users it concerns, due now:
    the members of its project at this moment (read from the outbox's row of it, never from the event),
    else its user. Runs inside the consumer's transaction. Returns the ids of the rows it created (none
    for one already queued)."""
    payload = {**event.attributes, "data": event.data}  # the structured-mode CloudEvent, as received
    if _holds_nul(payload):
        raise PoisonEvent("the event contains a NUL character, which no text column or JSONB can hold")
    sequence = payload.get("sequence")
    if sequence is not None and not (isinstance(sequence, str) and sequence.isascii() and sequence.isdigit()):
        raise PoisonEvent(f"the sequence extension must be a decimal integer, not {sequence!r}")
    project = await uow.session.scalar(select(TaskEvent.project_id).where(TaskEvent.id == event.id))
    users = (
        [event.user_id]
        if project is None
        else select(ProjectMember.user_id).where(ProjectMember.project_id == uuid.UUID(project))
    )
    hooks = select(Webhook.id, Webhook.user_id).where(
        Webhook.user_id.in_(users), Webhook.event_types.contains([event.type])
    )
    subscribed = list(await uow.session.execute(hooks))
    if not subscribed:
        return []
    stmt = (
        insert(WebhookDelivery)
        .values(
            [
                {
                    "id": uuid.uuid4(),
                    "webhook_id": hook_id,
                    "user_id": user_id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": func.now(),
                    "created_at": func.now(),
                }
                for hook_id, user_id in subscribed
            ]
        )
        .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return list((await uow.session.execute(stmt)).scalars())


# --- claiming -----------------------------------------------------------------------------------------

# Choosing and leasing are apart, so that a lease starts only when its POST does. A retry tick first
# picks its batch (oldest first, a few per subscription, so a dead receiver cannot fill a tick) without
# locking anything; then, each time attempt slots are free, it leases that many of the picked rows that
# are still due: UPDATE ... SET next_attempt_at = now() + lease WHERE id IN (SELECT ... FOR UPDATE SKIP
# LOCKED) RETURNING, committed before the POSTs. A row another worker holds is skipped, and a leased row
# is not due again until its lease lapses, which a live worker never lets happen (the attempt is cut off
# at webhook_timeout_seconds, well inside the lease). A worker that dies mid-attempt leaves the row to
# be retried when the lease lapses.
_PICK_DUE = text(
    """
    WITH due AS (
        SELECT id, webhook_id, next_attempt_at FROM webhook_delivery
        WHERE status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT :scan
    )
    SELECT id FROM (
        SELECT id, next_attempt_at,
               row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS nth
        FROM due
    ) ranked
    WHERE nth <= :per_webhook ORDER BY next_attempt_at LIMIT :batch
    """
)
_LEASE = text(
    """
    WITH leased AS (
        SELECT d.id FROM webhook_delivery d
        WHERE d.id = ANY(CAST(:ids AS uuid[])) AND d.status = 'pending' AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_delivery d SET next_attempt_at = now() + CAST(:lease AS interval)
    FROM webhook w
    WHERE d.id IN (SELECT id FROM leased) AND w.id = d.webhook_id
    RETURNING d.id, d.attempts, d.payload, w.url, w.secret
    """
)


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID  # X-Todo-Delivery: the same on every attempt
    attempts: int  # made before this one
    payload: dict[str, Any]
    url: str
    secret: str

    @classmethod
    def from_row(cls, row: RowMapping) -> Claim:
        return cls(row["id"], row["attempts"], row["payload"], row["url"], row["secret"])


def lease(settings: Settings) -> timedelta:
    return timedelta(seconds=max(60.0, 4 * settings.webhook_timeout_seconds))


async def pick_due(sessions: async_sessionmaker[AsyncSession], batch: int = CLAIM_BATCH) -> list[uuid.UUID]:
    """The ids of one tick's due deliveries, oldest first, a few per subscription; nothing is leased."""
    params = {"scan": batch * 10, "batch": batch, "per_webhook": CLAIM_PER_WEBHOOK}
    async with sessions() as session:
        return list((await session.execute(_PICK_DUE, params)).scalars())


async def claim(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, ids: Sequence[uuid.UUID], limit: int
) -> list[Claim]:
    """Lease at most `limit` of the deliveries `ids` that are still pending, due and not held elsewhere."""
    params = {"ids": list(ids), "limit": limit, "lease": lease(settings)}
    async with sessions() as session, session.begin():
        return [Claim.from_row(row) for row in (await session.execute(_LEASE, params)).mappings()]


# --- attempting -------------------------------------------------------------------------------------


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """X-Todo-Signature: the receiver recomputes it over the exact body bytes it received."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_seconds(attempts: int, jitter: float) -> float:
    """Delay before attempt `attempts + 1`: 2^attempts s capped at an hour, `jitter` in [0, 1) taking
    up to half of it off, so receivers coming back up are not hit by every retry at once."""
    base = float(min(2 ** min(attempts, 32), MAX_BACKOFF_SECONDS))
    return base * (1 - jitter / 2)


def excerpt(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # built once: loading the CA bundle costs milliseconds


async def post(delivery: Claim, settings: Settings, resolve: Resolver = system_resolver) -> Outcome:
    """One attempt: never raises for anything the receiver or the network does. It is a span of its own
    (CLIENT) in the event's trace, whose context the receiver gets, so its tracing joins that trace."""
    parent = tracing.parse(delivery.payload.get("traceparent"), delivery.payload.get("tracestate"))
    with tracing.span("POST webhook", parent, kind="CLIENT") as attempt:
        return await _post(delivery, settings, resolve, attempt)


async def _post(
    delivery: Claim, settings: Settings, resolve: Resolver, trace: tracing.TraceContext
) -> Outcome:
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/cloudevents+json",
        "X-Todo-Signature": signature(delivery.secret, body),
        "X-Todo-Delivery": str(delivery.id),
        # The event's place among its subject's events: deliveries are unordered, so a receiver that
        # cares orders by it (or drops one older than what it has). Events from before it existed lack it.
        **({"X-Todo-Sequence": str(delivery.payload["sequence"])} if "sequence" in delivery.payload else {}),
        "traceparent": trace.traceparent,
        **({"tracestate": trace.tracestate} if trace.tracestate else {}),
        "User-Agent": "todo-backend-webhooks/1",
        "Accept-Encoding": "identity",  # the excerpt is read raw: no decompression of what we keep
    }
    timeout = settings.webhook_timeout_seconds
    try:
        # One deadline for the whole attempt (DNS, connect, send, response head and excerpt): httpx's
        # own timeouts are per operation, which a receiver trickling bytes would stretch indefinitely.
        async with asyncio.timeout(timeout):
            dest = await check_destination(delivery.url, production=is_production(settings), resolve=resolve)
            # trust_env=False: no proxy from the environment, which would connect by name again.
            # httpx's timeout is only a backstop behind the deadline above.
            async with httpx.AsyncClient(
                verify=_tls(), follow_redirects=False, trust_env=False, timeout=2 * timeout
            ) as client:
                response = await _send_to_first_reachable(client, dest, headers, body)
                try:
                    raw = b""
                    async for chunk in response.aiter_raw():
                        raw += chunk
                        if len(raw) >= 4 * EXCERPT_CHARS:  # enough bytes for 512 characters of UTF-8
                            break
                finally:
                    await response.aclose()
    except UnsafeDestination as exc:
        return Outcome(False, error=f"not sent: {exc}"[:EXCERPT_CHARS])
    except TimeoutError:
        return Outcome(False, error=f"timed out after {timeout:g}s")
    except (httpx.HTTPError, OSError) as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])
    code, shown = response.status_code, excerpt(raw)
    if 200 <= code < 300:
        return Outcome(True, code, None, shown)
    if 300 <= code < 400:
        location = response.headers.get("location", "")
        error = f"HTTP {code}: redirect to {location!r} not followed"[:EXCERPT_CHARS]
        return Outcome(False, code, error, shown)
    return Outcome(False, code, f"HTTP {code}", shown)


async def _send_to_first_reachable(
    client: httpx.AsyncClient, dest: Destination, headers: dict[str, str], body: bytes
) -> httpx.Response:
    """Each checked address in turn until one accepts the connection (localhost may be ::1 first)."""
    refused: httpx.ConnectError | None = None
    for address in dest.addresses:
        try:
            return await client.send(pinned_request(dest, address, headers, body), stream=True)
        except httpx.ConnectError as exc:
            refused = exc
    assert refused is not None  # check_destination never returns no addresses
    raise refused


async def record(
    sessions: async_sessionmaker[AsyncSession], delivery: Claim, outcome: Outcome, settings: Settings
) -> str:
    """Store an attempt's outcome in the delivery's own row; returns its status afterwards."""
    attempts = delivery.attempts + 1
    next_at: Any = None
    if outcome.ok:
        status = "succeeded"
    elif attempts >= settings.webhook_max_attempts:
        status = "failed"
    else:
        status = "pending"
        jitter = random.random()  # noqa: S311 - spreading retries, not a secret
        next_at = func.now() + timedelta(seconds=backoff_seconds(attempts, jitter))
    async with sessions() as session, session.begin():
        await session.execute(
            update(WebhookDelivery)
            # The attempts guard: a worker whose lease lapsed (so another claimed the row) records nothing.
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.attempts == delivery.attempts,
            )
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=next_at,
                last_attempt_at=func.now(),
                last_status_code=outcome.status_code,
                last_error=outcome.error,
                response_excerpt=outcome.excerpt,
            )
        )
    if not outcome.ok:
        log.info("webhook delivery %s attempt %d: %s -> %s", delivery.id, attempts, outcome.error, status)
    return status


@dataclass(frozen=True)
class AttemptCounts:
    claimed: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    errors: int = 0  # attempts whose outcome could not be recorded: retried when their lease lapses


@lru_cache(maxsize=1)
def _slots() -> asyncio.Semaphore:
    """The process's one bound on attempts in flight, shared by the fast path and the retry tick: each
    attempt holds a slot from its lease to its record, and nothing queues for a slot beyond one tick."""
    return asyncio.Semaphore(get_settings().webhook_max_in_flight)


async def _take_free(wanted: int) -> int:
    """Take up to `wanted` slots without waiting; how many were taken."""
    slots, taken = _slots(), 0
    while taken < wanted and not slots.locked():
        await slots.acquire()  # returns at once: a slot is free
        taken += 1
    return taken


def _release(count: int) -> None:
    for _ in range(count):
        _slots().release()


async def _attempt(
    sessions: async_sessionmaker[AsyncSession], delivery: Claim, settings: Settings, resolve: Resolver
) -> str:
    """POST one leased delivery and record the outcome; its slot is given back either way."""
    try:
        outcome = await post(delivery, settings, resolve)
        return await record(sessions, delivery, outcome, settings)
    finally:
        _release(1)


async def _claim_and_start(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ids: Sequence[uuid.UUID],
    held: int,
    resolve: Resolver,
) -> list[tuple[Claim, asyncio.Task[str]]]:
    """Lease as many of `ids` as the `held` slots allow and start their attempts; unused slots go back."""
    try:
        claims = await claim(sessions, settings, ids, held)
    except BaseException:
        _release(held)
        raise
    _release(held - len(claims))
    loop = asyncio.get_running_loop()
    return [(c, loop.create_task(_attempt(sessions, c, settings, resolve))) for c in claims]


async def _counts(started: Sequence[tuple[Claim, asyncio.Task[str]]]) -> AttemptCounts:
    results = await asyncio.gather(*(task for _, task in started), return_exceptions=True)
    statuses: list[str] = []
    for (delivery, _), result in zip(started, results, strict=True):
        if isinstance(result, BaseException):
            log.error("webhook delivery %s: attempt not recorded", delivery.id, exc_info=result)
        else:
            statuses.append(result)
    return AttemptCounts(
        claimed=len(started),
        succeeded=statuses.count("succeeded"),
        retrying=statuses.count("pending"),
        failed=statuses.count("failed"),
        errors=len(started) - len(statuses),
    )


async def deliver_now(
    sessions: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID], resolve: Resolver = system_resolver
) -> AttemptCounts:
    """The fast path after the consumer's commit: attempt as many of the deliveries it just created as
    there are free slots; the others stay due, for retry-webhook-deliveries."""
    settings = get_settings()
    held = await _take_free(len(ids))
    if held < len(ids):
        log.info("%d webhook deliveries wait for the retry tick: attempts at the bound", len(ids) - held)
    if not held:
        return AttemptCounts()
    return await _counts(await _claim_and_start(sessions, settings, ids, held, resolve))


async def retry_due(
    sessions: async_sessionmaker[AsyncSession], resolve: Resolver = system_resolver
) -> AttemptCounts:
    """One cron tick: pick one bounded batch of due deliveries and attempt them as slots come free, each
    leased only when its slot is (a row another worker attempts meanwhile is skipped, not POSTed)."""
    settings = get_settings()
    waiting = await pick_due(sessions)
    started: list[tuple[Claim, asyncio.Task[str]]] = []
    try:
        while waiting:
            await _slots().acquire()
            held = 1 + await _take_free(len(waiting) - 1)
            batch = await _claim_and_start(sessions, settings, waiting, held, resolve)
            started += batch
            if len(batch) < held:
                break  # the rest were attempted elsewhere (or are no longer due)
            leased = {c.id for c, _ in batch}
            waiting = [i for i in waiting if i not in leased]
    finally:
        counts = await _counts(started)  # a tick that fails still waits for the attempts it started
    return counts


# Fast-path attempts run detached from the event's acknowledgement, so a slow receiver never holds up
# the dispatcher (which delivers a partition's events one at a time). Their rows are committed first:
# an attempt lost with the process is retried by the cron once its lease lapses. The set is bounded by
# the slots: an event that finds none leaves its rows to the cron and its task ends at once.
_detached: set[asyncio.Task[Any]] = set()


def deliver_in_background(sessions: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID]) -> None:
    task = asyncio.get_running_loop().create_task(_deliver_logged(sessions, ids))
    _detached.add(task)
    task.add_done_callback(_detached.discard)


async def _deliver_logged(sessions: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID]) -> None:
    try:
        await deliver_now(sessions, ids)
    except Exception:
        log.exception("fast-path webhook delivery failed; retry-webhook-deliveries will retry")
