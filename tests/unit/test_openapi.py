"""The OpenAPI document is valid 3.1 and describes every declared HTTP route."""

from openapi_spec_validator import validate

from todo_backend.catalog import FUNCTIONS
from todo_backend.openapi import build_openapi


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_openapi()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_declared_route_is_documented_with_its_function() -> None:
    paths = build_openapi()["paths"]
    declared = {(r.path, r.method.lower()): fn.name for fn in FUNCTIONS for r in fn.routes}
    documented = {(p, m): op["description"] for p, ops in paths.items() for m, op in ops.items()}
    assert set(documented) == set(declared)
    for key, name in declared.items():
        assert f"`{name}`" in documented[key]


def test_validation_problems_name_the_field_at_fault() -> None:
    problem = build_openapi()["components"]["schemas"]["Problem"]
    assert problem["properties"]["errors"]["items"]["properties"]["field"] == {"type": "string"}
    create = build_openapi()["paths"]["/api/tasks"]["post"]
    assert {"400", "413", "415", "422", "401"} <= set(create["responses"])
