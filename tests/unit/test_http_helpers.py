"""HTTP helpers: If-Match parsing, opaque cursors, query strings, path ids and problem documents."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from starlette.requests import Request

from todo_backend.errors import NotFound, Unprocessable
from todo_backend.http import PROBLEM_JSON, Problem, etag, if_match, parse, path_uuid, query_params
from todo_backend.paging import PageQuery, decode_cursor, encode_cursor


def request(path: str = "/", query: str = "", headers: dict[str, str] | None = None) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    return Request(scope)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- If-Match --------------------------------------------------------------------------------------


def test_no_if_match_header_means_any_version() -> None:
    assert if_match(request()) is None


@pytest.mark.parametrize("value", ["*", " * "])
def test_if_match_star_means_any_version(value: str) -> None:
    assert if_match(request(headers={"If-Match": value})) is None


def test_if_match_with_one_strong_tag_accepts_that_version() -> None:
    assert if_match(request(headers={"If-Match": '"7"'})) == frozenset({7})


def test_if_match_with_a_list_accepts_each_listed_version() -> None:
    assert if_match(request(headers={"If-Match": '"3", "5" ,"8"'})) == frozenset({3, 5, 8})


def test_a_weak_tag_never_matches_under_if_match() -> None:
    assert if_match(request(headers={"If-Match": 'W/"3"'})) == frozenset()


def test_weak_tags_in_a_list_are_ignored_and_strong_ones_kept() -> None:
    assert if_match(request(headers={"If-Match": 'W/"3", "4"'})) == frozenset({4})


@pytest.mark.parametrize("value", ["3", '"abc"', '"-1"', '""', '"3', "garbage, more"])
def test_unparseable_if_match_tags_match_no_version(value: str) -> None:
    assert if_match(request(headers={"If-Match": value})) == frozenset()


def test_etag_is_the_quoted_version() -> None:
    assert etag(12) == '"12"'


# --- cursors ---------------------------------------------------------------------------------------


def test_a_cursor_decodes_to_the_values_it_was_encoded_from() -> None:
    values = {"sort": "-title", "title": "Ünïcode & ?/+=", "id": str(uuid.uuid4()), "no_due": False}
    assert decode_cursor(encode_cursor(values)) == values


def test_a_cursor_is_url_safe_and_unpadded() -> None:
    cursor = encode_cursor({"after": 123456789, "pad": "??>>"})
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!not base64!!!",
        "x",
        b64(b"not json"),
        b64(b"[1, 2, 3]"),
        b64(b'"a string"'),
        b64(b"42"),
        b64(b"\xff\xfe\x00garbage"),
    ],
    ids=[
        "empty",
        "not-base64",
        "truncated",
        "not-json",
        "json-list",
        "json-string",
        "json-number",
        "not-utf8",
    ],
)
def test_a_garbage_cursor_is_unprocessable(cursor: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        decode_cursor(cursor)
    assert raised.value.field == "cursor"


def test_page_limit_defaults_to_50() -> None:
    assert PageQuery().limit == 50


@pytest.mark.parametrize("limit", [0, -1, 201])
def test_page_limits_outside_1_to_200_are_refused(limit: int) -> None:
    with pytest.raises(Problem) as raised:
        parse(PageQuery, {"limit": limit})
    assert raised.value.status == 422
    assert raised.value.errors == [{"field": "limit", "message": raised.value.errors[0]["message"]}]


@pytest.mark.parametrize("limit", [1, 200])
def test_page_limits_at_the_bounds_are_accepted(limit: int) -> None:
    assert parse(PageQuery, {"limit": str(limit)}).limit == limit


# --- query strings and path ids --------------------------------------------------------------------


def test_repeatable_query_parameters_become_lists_in_order() -> None:
    params = query_params(request(query="tag=b&tag=a&priority=high"), repeatable=("tag", "priority"))
    assert params == {"tag": ["b", "a"], "priority": ["high"]}


def test_a_repeated_single_valued_parameter_keeps_its_last_value() -> None:
    params = query_params(request(query="sort=title&sort=-title&limit=5"), repeatable=("tag",))
    assert params == {"sort": "-title", "limit": "5"}


def test_absent_repeatable_parameters_are_not_invented() -> None:
    assert query_params(request(query="q=milk"), repeatable=("tag", "priority")) == {"q": "milk"}


def test_query_values_are_percent_decoded() -> None:
    assert query_params(request(query="q=50%25+off%26more"), repeatable=()) == {"q": "50% off&more"}


def test_the_path_id_is_parsed_as_a_uuid() -> None:
    task_id = uuid.uuid4()
    assert path_uuid(request(f"/api/tasks/{task_id}/complete"), 2) == task_id


@pytest.mark.parametrize("path", ["/api/tasks/not-a-uuid", "/api/tasks/123", "/api/tasks"])
def test_a_path_without_a_uuid_names_no_resource(path: str) -> None:
    with pytest.raises(NotFound):
        path_uuid(request(path), 2)


# --- problems --------------------------------------------------------------------------------------


def test_a_problem_renders_as_rfc_9457_problem_json() -> None:
    problem = Problem(
        422,
        "Unprocessable Content",
        "the request has invalid fields",
        "validation-error",
        [{"field": "title", "message": "must not be empty"}],
        {"X-Extra": "1"},
    )
    response = problem.response()
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["x-extra"] == "1"
    assert json.loads(response.body) == {
        "type": "/problems/validation-error",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "the request has invalid fields",
        "errors": [{"field": "title", "message": "must not be empty"}],
    }


def test_a_problem_without_a_slug_has_type_about_blank_and_no_errors_member() -> None:
    body = json.loads(Problem(503, "Service Unavailable", "retry later").response().body)
    assert body == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "retry later",
    }
