"""Bearer JWT authentication: HS256 only, `sub` is the user id, `exp` required."""

from __future__ import annotations

import jwt

from todo_backend.fields import UNSTORABLE
from todo_backend.settings import Settings

# The OIDC limit for `sub`; user ids sit in b-tree indexes, whose entries hold at most ~2.7 kB
# (255 characters are at most 1,020 bytes of UTF-8).
MAX_USER_ID = 255


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
    if not isinstance(sub, str) or not sub.strip():
        raise Unauthorized("the token's sub claim must be a non-empty string")
    if len(sub) > MAX_USER_ID or UNSTORABLE.search(sub):
        raise Unauthorized(
            f"the token's sub claim must be at most {MAX_USER_ID} characters,"
            " without NUL characters or unpaired surrogates"
        )
    return sub
