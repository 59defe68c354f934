"""Errors a handler raises; the HTTP layer turns each into an RFC 9457 problem."""

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


class PreconditionFailed(DomainError):
    status, title, slug = 412, "Precondition Failed", "precondition-failed"


class Unprocessable(DomainError):
    status, title, slug = 422, "Unprocessable Content", "validation-error"
