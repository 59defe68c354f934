"""Every resource we ship for the cluster, checked offline against the real schemas of what we install.

Custom kinds are validated against the upstream CRDs of the pinned versions, vendored byte for byte in
tests/crds (see its README), the way the API server does with strict field validation: a field that the
structural schema does not declare is an error unless a parent says `x-kubernetes-preserve-unknown-fields`.
Core kinds are validated by kubernetes-validate in strict mode. Not checked: CEL rules
(`x-kubernetes-validations`) and string formats, which the API server evaluates and jsonschema cannot.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from todo_backend.catalog import source_checkout
from todo_backend.deploy import files

REPO_ROOT = source_checkout()
CRD_DIR = REPO_ROOT / "tests" / "crds"
VERSIONS_SH = REPO_ROOT / "infra" / "versions.sh"


def _pinned(name: str) -> str:
    """The default of `NAME="${NAME:-default}"` in infra/versions.sh, which pins every cluster version."""
    found = re.search(rf'^{name}="\$\{{{name}:-([^}}]+)\}}"', VERSIONS_SH.read_text(), re.MULTILINE)
    assert found, f"{name} is not pinned in {VERSIONS_SH}"
    return found[1]


# The Kubernetes minor we target, the floor of the supported window (Knative 1.22 wants 1.34); the
# schemas are kubernetes-validate's (1.37.0 ships 1.25 to 1.37).
KUBERNETES_VERSION = _pinned("KUBERNETES_VERSION")
# Each vendored folder tests/crds/<project>-<version>/ and the pin in infra/versions.sh it must follow.
# Gateway API has no pin of its own: it is the version the pinned Envoy Gateway bundles (see the README).
CRD_PINS = {
    "knative-serving": "KNATIVE_SERVING_VERSION",
    "knative-eventing": "KNATIVE_EVENTING_VERSION",
    "knative-eventing-kafka-broker": "KNATIVE_KAFKA_VERSION",
    "dapr": "DAPR_VERSION",
    "kube-prometheus-stack": "KUBE_PROMETHEUS_STACK_VERSION",
}
MANIFEST_ROOTS = ("knative", "dapr-components", "infra")
# Files with an apiVersion and kind that are read by a client tool and never sent to the API server.
CLIENT_SIDE_GROUPS = ("kustomize.config.k8s.io",)  # kustomization.yaml: kubectl apply -k reads it

OBJECT_META = {
    "$ref": "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
}
# OpenAPI value checks that mean the same in JSON Schema 2020-12.
SAME_IN_JSON_SCHEMA = (
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "required",
)
# Fields of a Knative revision template that a Kubernetes PodSpec does not have.
KNATIVE_ONLY_POD_FIELDS = (
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
)


# --- what the repository ships --------------------------------------------------------------------------


def _shipped() -> dict[str, dict[str, Any]]:
    """Every resource by id: what the generator makes now, and the hand-written files under the roots."""
    documents = dict(files.resources())
    for root in MANIFEST_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.yaml")):
            name = path.relative_to(REPO_ROOT).as_posix()
            if name in documents:
                continue  # generated: test_manifests.py proves the committed file is the same
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            resources = [
                d
                for d in loaded
                if isinstance(d, dict)
                and {"apiVersion", "kind"} <= set(d)
                and d["apiVersion"].rpartition("/")[0] not in CLIENT_SIDE_GROUPS
            ]
            for i, resource in enumerate(resources):  # Helm values files hold none
                documents[name if len(resources) == 1 else f"{name}#{i}"] = resource
    return documents


SHIPPED = _shipped()


# --- the vendored CRDs, as strict JSON Schemas -----------------------------------------------------------


def _crd_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(CRD_DIR.glob("*/*.yaml")):
        for document in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                yield path, document


@functools.cache
def _crds() -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    """The served versions' openAPIV3Schema by (apiVersion, kind), with the CRD file it came from."""
    out = {}
    for path, crd in _crd_documents():
        spec = crd["spec"]
        for version in spec["versions"]:
            if version["served"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                out[key] = (path, version["schema"]["openAPIV3Schema"])
    return out


def _python_pattern(pattern: str) -> str:
    """Go's RE2 takes flags after an anchor (`^(?i)x`, as prometheus-operator's CRDs do); Python, a group."""
    flagged = re.fullmatch(r"\^\(\?([ims]+)\)(.*)", pattern, re.DOTALL)
    return f"^(?{flagged[1]}:{flagged[2]})" if flagged else pattern


def strict_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """A CRD's structural schema as the JSON Schema that rejects what the API server rejects as strict."""
    schema: dict[str, Any] = {key: node[key] for key in SAME_IN_JSON_SCHEMA if key in node}
    if "pattern" in node:
        schema["pattern"] = _python_pattern(node["pattern"])
    # OpenAPI 3.0 marks a bound exclusive with a boolean; JSON Schema 2020-12 moves the number there.
    for bound in ("Minimum", "Maximum"):
        if node.get(f"exclusive{bound}"):
            schema[f"exclusive{bound}"] = schema.pop(bound.lower())
    types = ["integer", "string"] if node.get("x-kubernetes-int-or-string") else [node.get("type")]
    types = [t for t in types if t is not None]
    if types:
        schema["type"] = [*types, "null"] if node.get("nullable") else types
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in node:
            schema[combinator] = [strict_json_schema(branch) for branch in node[combinator]]
    if "not" in node:
        schema["not"] = strict_json_schema(node["not"])
    if "items" in node:
        schema["items"] = strict_json_schema(node["items"])
        if node.get("x-kubernetes-list-type") == "set":
            schema["uniqueItems"] = True
        if node.get("x-kubernetes-list-type") == "map":
            schema["x-kubernetes-list-map-keys"] = node["x-kubernetes-list-map-keys"]
    if node.get("type") == "object":
        properties = {name: strict_json_schema(p) for name, p in node.get("properties", {}).items()}
        if node.get("x-kubernetes-embedded-resource"):
            properties = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, **properties}
            properties["metadata"] = OBJECT_META
        schema["properties"] = properties
        if isinstance(node.get("additionalProperties"), Mapping):
            schema["additionalProperties"] = strict_json_schema(node["additionalProperties"])
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            # Structural schemas prune undeclared fields; strict field validation reports them instead.
            schema["additionalProperties"] = node.get("additionalProperties", False)
    return schema


def _unique_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """`x-kubernetes-list-type: map`: no two items share the values of the list's map keys."""
    if not validator.is_type(instance, "array"):
        return
    seen = set()
    for item in instance:
        key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys) if isinstance(item, dict) else ()
        if key in seen:
            yield jsonschema.ValidationError(f"duplicate entry for map keys {keys}: {item!r}")
        seen.add(key)


StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-kubernetes-list-map-keys": _unique_map_keys}
)


@functools.cache
def _kubernetes_definitions() -> Registry:
    """kubernetes-validate's strict definitions (ObjectMeta, ...) for the version we target, offline."""
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions = schemas / f"v{KUBERNETES_VERSION}.0-local-strict" / "_definitions.json"
    resource = Resource.from_contents(json.loads(definitions.read_text()))
    return resource @ Registry()


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    _, openapi = _crds()[(api_version, kind)]
    # Every custom resource is an embedded resource at its root: apiVersion, kind, and metadata checked as
    # ObjectMeta, whether or not its CRD declares them.
    schema = strict_json_schema({**openapi, "x-kubernetes-embedded-resource": True})
    return StrictValidator(schema, registry=_kubernetes_definitions())


# --- validating one resource -----------------------------------------------------------------------------


def _is_core(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _core_errors(resource: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{error.message}: vendor its CRD under tests/crds"]
    return []


def _revision_pod(service: dict[str, Any]) -> dict[str, Any]:
    """A Knative Service's revision template as a Pod: its PodSpec subset, checked by Kubernetes' schema
    too, since the CRD leaves some of it (securityContext, affinity, ...) open."""
    template = service["spec"]["template"]
    spec = {k: v for k, v in template["spec"].items() if k not in KNATIVE_ONLY_POD_FIELDS}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": service["metadata"]["name"]},
        "spec": spec,
    }


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """What the API server would reject in `resource`, one line per error; [] for a valid resource."""
    key = (resource["apiVersion"], resource["kind"])
    if key in _crds():
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(*key).iter_errors(resource)
        ]
        if key == ("serving.knative.dev/v1", "Service"):
            errors += [f"spec/template/{e}" for e in _core_errors(_revision_pod(resource))]
        return sorted(errors)
    if _is_core(resource["apiVersion"]):
        return _core_errors(resource)
    return [f"no CRD for {key} in tests/crds: vendor the upstream CRD of the pinned version"]


# --- the tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_resource_passes_strict_validation_against_the_schema_of_its_kind(name: str) -> None:
    assert schema_errors(SHIPPED[name]) == []


def test_every_vendored_crd_converts_to_a_valid_json_schema_with_python_compatible_patterns() -> None:
    for key, (path, openapi) in _crds().items():
        try:
            StrictValidator.check_schema(strict_json_schema(openapi))
        except jsonschema.SchemaError as error:
            pytest.fail(f"{path.name} {key}: {error.message} at {list(error.absolute_schema_path)}")


def test_every_custom_kind_shipped_has_a_vendored_crd_and_every_vendored_crd_is_used() -> None:
    shipped = {(r["apiVersion"], r["kind"]) for r in SHIPPED.values()}
    custom = {key for key in shipped if not _is_core(key[0]) or key in _crds()}
    assert custom - set(_crds()) == set(), "vendor these CRDs under tests/crds"
    used_files = {_crds()[key][0] for key in custom}
    vendored = {path for path, _ in _crd_documents()}
    assert vendored - used_files == set(), "vendored CRDs no manifest uses"


def test_the_vendored_crds_are_those_of_the_versions_pinned_in_versions_sh() -> None:
    folders = {p.name for p in CRD_DIR.iterdir() if p.is_dir()}
    expected = {f"{project}-{_pinned(pin).removeprefix('v')}" for project, pin in CRD_PINS.items()}
    assert expected <= folders, "re-vendor at the pinned versions (tests/crds/README.md)"
    pinned_projects = {f for f in folders if f.rpartition("-")[0] in CRD_PINS}
    assert pinned_projects == expected, "delete the folders of versions no longer pinned"
    readme = (CRD_DIR / "README.md").read_text()
    assert all(f"| {folder}/" in readme for folder in folders), "list every vendored file in README.md"


def _first(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for _, r in sorted(SHIPPED.items()) if r["kind"] == kind))


def _set(resource: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split("/")
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[leaf] = value
    return resource


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        ("Service", "spec/template/spec/containerConcurency", 10, "'containerConcurency' was unexpected"),
        ("Service", "spec/template/spec/containers/0/ports/0/containerPort", "http", "is not of type"),
        ("Service", "spec/template/spec/securityContext/runAsUsr", 1, "spec/template/spec/securityContext"),
        ("Service", "spec/template/spec/containers/0/resources/limits/cpu", "lots", "does not match"),
        # Upstream, a Trigger's spec and spec.delivery keep unknown fields (for feature-flagged ones): a
        # misspelling right there passes the API server and is left to Knative's webhook to refuse.
        ("Trigger", "spec/subscriber/ref/nmae", "x", "'nmae' was unexpected"),
        ("Trigger", "spec/filters/0/anyy", [], "'anyy' was unexpected"),
        ("KafkaSource", "spec/consumerGroups", "x", "'consumerGroups' was unexpected"),
        ("HTTPRoute", "spec/rules/0/matches/0/path/typ", "Exact", "'typ' was unexpected"),
        ("Component", "spec/metadata/0/valu", "x", "'valu' was unexpected"),
        ("PodMonitor", "spec/podMetricsEndpoints/0/intervall", "30s", "'intervall' was unexpected"),
        ("Broker", "metadata/lables", {"a": "b"}, "'lables' was unexpected"),
        ("Job", "spec/template/spec/restartPolcy", "Never", "'restartPolcy' was unexpected"),
    ],
)
def test_a_misspelt_or_invalid_field_is_rejected(kind: str, path: str, value: Any, expected: str) -> None:
    resource = _first(kind)
    assert schema_errors(resource) == [], "the unchanged resource is valid"
    errors = schema_errors(_set(resource, path, value))
    assert any(expected in e for e in errors), errors


def test_a_custom_kind_without_a_vendored_crd_is_rejected() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schema_errors(widget) == [
        "no CRD for ('example.com/v1', 'Widget') in tests/crds: vendor the upstream CRD of the pinned version"
    ]


OBJECT = {"type": "object"}
NAMED = {**OBJECT, "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}
INT_OR_STRING = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
POD = {"apiVersion": "v1", "kind": "Pod"}


@pytest.mark.parametrize(
    ("openapi", "valid", "invalid"),
    [
        pytest.param(NAMED, {"name": "x"}, {"name": "x", "b": 1}, id="undeclared-field"),
        pytest.param(
            {**NAMED, "x-kubernetes-preserve-unknown-fields": True},
            {"name": "x", "b": 1},
            {"name": 1},
            id="preserve-unknown-fields-still-checks-declared-ones",
        ),
        pytest.param({**OBJECT, "additionalProperties": {"type": "string"}}, {"k": "v"}, {"k": 1}, id="map"),
        pytest.param(INT_OR_STRING, "50%", 1.5, id="int-or-string"),
        pytest.param({"type": "string", "nullable": True}, None, 1, id="nullable"),
        pytest.param({"type": "string"}, "x", None, id="not-nullable"),
        pytest.param(
            {**OBJECT, "x-kubernetes-embedded-resource": True, "properties": {"spec": OBJECT}},
            {**POD, "metadata": {"name": "p"}, "spec": {}},
            {**POD, "metadata": {"nmae": "p"}},
            id="embedded-resource-metadata-is-object-meta",
        ),
        pytest.param({"type": "integer", "minimum": 0, "exclusiveMinimum": True}, 1, 0, id="exclusive-bound"),
        pytest.param({"type": "string", "pattern": "^(?i)(abort|warn)?$"}, "Abort", "retry", id="re2-flags"),
        pytest.param(
            {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            ["a", "b"],
            ["a", "a"],
            id="list-type-set",
        ),
        pytest.param(
            {
                "type": "array",
                "items": NAMED,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
            [{"name": "a", "v": 1}, {"name": "b", "v": 1}],
            [{"name": "a", "v": 1}, {"name": "a", "v": 2}],
            id="list-type-map",
        ),
    ],
)
def test_the_crd_conversion_follows_the_api_servers_structural_rules(
    openapi: dict[str, Any], valid: Any, invalid: Any
) -> None:
    validator = StrictValidator(strict_json_schema(openapi), registry=_kubernetes_definitions())
    assert list(validator.iter_errors(valid)) == []
    assert list(validator.iter_errors(invalid)) != []
