"""Bearer JWT authentication: HS256 only, `sub` is the user id, `exp` required."""

from __future__ import annotations

import jwt

from todo_backend.fields import user_id_problem
from todo_backend.settings import Settings


class Unauthorized(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def authenticate(authorization: str | None, settings: Settings) -> str:
    """The user id the `Authorization` header proves, or Unauthorized saying why not."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    try:
        claims = jwt.decode(
            token.strip(),
            settings.jwt_secret,
            algorithms=["HS256"],  # fixed: never let the token pick (alg "none", key confusion)
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": ["exp", "sub"], "verify_aud": settings.jwt_audience is not None},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"the token is invalid: {exc}") from exc
    sub = claims["sub"]
    problem = user_id_problem(sub) if isinstance(sub, str) else "must be a non-empty string"
    if problem:
        raise Unauthorized(f"the token's sub claim {problem}")
    return sub
