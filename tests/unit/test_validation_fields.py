"""A validation problem names every field at fault, even one sent with an empty name."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from todo_backend.http import Problem, parse
from todo_backend.models import TaskUpdate
from todo_backend.paging import PageQuery


def fields(model: type[BaseModel], data: dict[str, object]) -> list[str]:
    with pytest.raises(Problem) as caught:
        parse(model, data)
    assert caught.value.status == 422 and caught.value.errors
    return [error["field"] for error in caught.value.errors]


def test_a_parameter_with_an_empty_name_is_named_as_such() -> None:
    # `?=null` (found by schemathesis): the field used to read "", naming nothing.
    assert fields(PageQuery, {"": "null"}) == ['""']


def test_a_patch_field_that_is_not_nullable_is_named_plainly() -> None:
    # The document hides their null branch; the type keeps it, so no union member's name leaks in.
    assert fields(TaskUpdate, {"tags": [""], "title": None}) == ["title", "tags"]
