"""The OpenAPI document is valid 3.1 and describes every declared HTTP route."""

from openapi_spec_validator import validate

from todo_backend.catalog import FUNCTIONS
from todo_backend.openapi import _QUERY, _query_schema, build_openapi


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


def test_the_document_is_as_strict_as_the_server_where_it_can_say_so() -> None:
    document = build_openapi()
    schemas = document["components"]["schemas"]
    title = schemas["TaskCreate"]["properties"]["title"]
    assert (title["maxLength"], title["pattern"]) == (500, r"\S")  # not blank
    patch = schemas["TaskUpdate"]["properties"]
    # Optional but not nullable: the server refuses null for these.
    assert "anyOf" not in patch["title"] and "anyOf" not in patch["tags"] and "default" not in patch["title"]
    assert {"type": "null"} in patch["due_date"]["anyOf"]  # null clears the due date
    assert "anyOf" not in schemas["RecurringTaskUpdate"]["properties"]["schedule"]
    q = next(p for p in document["paths"]["/api/tasks"]["get"]["parameters"] if p["name"] == "q")
    assert q["schema"]["minLength"] == 1
    assert "enum" in schemas["WebhookCreate"]["properties"]["event_types"]["items"]


def test_every_field_of_a_lists_query_model_is_a_parameter_with_the_models_schema() -> None:
    document = build_openapi()
    for name, (model, descriptions) in _QUERY.items():
        assert set(descriptions) | {"limit", "cursor"} == set(model.model_fields), name
        operations = [op for ops in document["paths"].values() for op in ops.values()]
        (operation,) = [op for op in operations if op["operationId"] == name]
        documented = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
        assert {k: documented[k] for k in descriptions} == {k: _query_schema(model, k) for k in descriptions}
