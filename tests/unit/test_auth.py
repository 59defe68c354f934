"""Bearer JWT authentication: only a current HS256 token signed with our secret names a user."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from todo_backend.auth import Unauthorized, authenticate
from todo_backend.settings import Settings

# 64 bytes: long enough for HS512 too, which one test signs with.
SECRET = "unit-test-secret-" * 4
OTHER_SECRET = "another-secret--" * 4


def settings(issuer: str | None = None, audience: str | None = None) -> Settings:
    return Settings(
        todo_env="test",
        database_url="postgresql://unused@127.0.0.1/unused",
        jwt_secret=SECRET,
        jwt_issuer=issuer,
        jwt_audience=audience,
    )


def token(
    claims: dict[str, Any] | None = None, secret: str = SECRET, algorithm: str = "HS256", **extra: Any
) -> str:
    payload: dict[str, Any] = {"sub": "alice", "exp": int(time.time()) + 300}
    payload.update(claims or {})
    payload.update(extra)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm)


def unsigned(payload: dict[str, Any]) -> str:
    """A token with `alg: none` and no signature, as an attacker would hand-craft it."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def test_a_current_token_signed_with_the_secret_yields_its_subject() -> None:
    assert authenticate(f"Bearer {token(sub='user-42')}", settings()) == "user-42"


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert authenticate(f"bearer {token(sub='user-7')}", settings()) == "user-7"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc"],
    ids=["absent", "empty", "scheme-only", "empty-token", "blank-token", "basic-scheme", "other-scheme"],
)
def test_a_missing_bearer_token_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized, match="bearer token is required"):
        authenticate(header, settings())


@pytest.mark.parametrize("raw", ["not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30", "...."])
def test_a_malformed_token_is_unauthorized(raw: str) -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {raw}", settings())


def test_an_expired_token_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="expired"):
        authenticate(f"Bearer {token(exp=int(time.time()) - 5)}", settings())


def test_a_token_signed_with_another_secret_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {token(secret=OTHER_SECRET)}", settings())


def test_an_unsigned_alg_none_token_is_unauthorized() -> None:
    forged = unsigned({"sub": "alice", "exp": int(time.time()) + 300})
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {forged}", settings())


def test_a_token_with_another_hmac_algorithm_is_unauthorized() -> None:
    # Same secret, but the algorithm is fixed server-side: the token does not get to pick it.
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {token(algorithm='HS512')}", settings())


def test_a_token_without_exp_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="exp"):
        authenticate(f"Bearer {token(exp=None)}", settings())


def test_a_token_without_sub_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="sub"):
        authenticate(f"Bearer {token(sub=None)}", settings())


def test_a_token_that_is_not_yet_valid_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {token(nbf=int(time.time()) + 600)}", settings())


def test_a_token_whose_sub_is_not_a_string_is_unauthorized() -> None:
    with pytest.raises(Unauthorized):
        authenticate(f"Bearer {token(sub=42)}", settings())


@pytest.mark.parametrize("sub", ["", "   "])
def test_a_token_with_a_blank_sub_is_unauthorized(sub: str) -> None:
    with pytest.raises(Unauthorized):
        authenticate(f"Bearer {token(sub=sub)}", settings())


@pytest.mark.parametrize("iss", [None, "https://evil.example"], ids=["missing", "wrong"])
def test_the_issuer_is_checked_when_configured(iss: str | None) -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {token(iss=iss)}", settings(issuer="https://issuer.example"))


def test_a_token_from_the_configured_issuer_yields_its_subject() -> None:
    good = token(sub="carol", iss="https://issuer.example")
    assert authenticate(f"Bearer {good}", settings(issuer="https://issuer.example")) == "carol"


@pytest.mark.parametrize("aud", [None, "someone-else"], ids=["missing", "wrong"])
def test_the_audience_is_checked_when_configured(aud: str | None) -> None:
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(f"Bearer {token(aud=aud)}", settings(audience="todo-api"))


def test_a_token_for_the_configured_audience_yields_its_subject() -> None:
    assert (
        authenticate(f"Bearer {token(sub='dave', aud='todo-api')}", settings(audience="todo-api")) == "dave"
    )


def test_issuer_and_audience_are_not_required_when_not_configured() -> None:
    foreign = token(sub="erin", iss="https://anyone.example", aud="anything")
    assert authenticate(f"Bearer {foreign}", settings()) == "erin"


@pytest.mark.parametrize(
    "sub",
    ["nul\x00user", "surrogate\ud800", "\udfff", "u" * 256, "u" * 3000, "\U0001f600" * 256],
    ids=["nul", "high-surrogate", "low-surrogate", "256-chars", "3000-chars", "256-emoji"],
)
def test_a_signed_sub_that_cannot_be_stored_or_indexed_is_unauthorized(sub: str) -> None:
    # A user id is stored in text columns and b-tree indexes: NUL and unpaired surrogates have no place
    # there, and an index entry holds at most ~2.7 kB.
    with pytest.raises(Unauthorized, match="sub"):
        authenticate(f"Bearer {token(sub=sub)}", settings())


def test_a_sub_of_255_characters_of_any_script_is_a_user_id() -> None:
    sub = "\U0001f600" * 200 + "u" * 55
    assert authenticate(f"Bearer {token(sub=sub)}", settings()) == sub
