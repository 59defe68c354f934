"""Errors a handler raises; the adapters turn each into a status: an RFC 9457 problem for a request,
the answer the dispatcher acts on for an event."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    title = "Bad Request"
    slug = "bad-request"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(DomainError):
    status, title, slug = 404, "Not Found", "not-found"


class Forbidden(DomainError):
    """Seen, but not the caller's to do: a project member whose role does not allow the action. Someone
    who may not even see the resource gets NotFound instead."""

    status, title, slug = 403, "Forbidden", "forbidden"


class Conflict(DomainError):
    """A valid request the current state refuses (a member added twice, an owner leaving)."""

    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(DomainError):
    status, title, slug = 412, "Precondition Failed", "precondition-failed"


def at_version(what: str, version: int, if_match: frozenset[int] | None) -> None:
    """PreconditionFailed unless If-Match (the versions it accepts; None: any) names `version`."""
    if if_match is not None and version not in if_match:
        raise PreconditionFailed(f"the {what} is at version {version}; reload and retry")


class Unprocessable(DomainError):
    status, title, slug = 422, "Unprocessable Content", "validation-error"


class RetryLater(DomainError):
    """A dependency failed in a way that may pass (the email sidecar is not up yet): try again."""

    status, title, slug = 503, "Service Unavailable", "retry-later"


class PoisonEvent(DomainError):
    """An event that can never be handled (unknown type, data that is not what its type promises, an
    identity that does not hold): answered 422, so the dispatcher dead-letters it instead of retrying."""

    status, title, slug = 422, "Unprocessable Content", "poison-event"
