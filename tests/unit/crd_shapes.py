"""JSON Schemas for the custom resources no installable package describes, vendored minimally.

Each covers the fields this project writes, with `additionalProperties: false`: a misspelt or misplaced
field fails here instead of being silently pruned by the API server (structural CRD schemas drop unknown
fields). Sources, read when these were written:
- KafkaSource: knative-extensions/eventing-kafka-broker control-plane/pkg/apis/sources/v1/kafka_types.go
  (v1 served since 1.16), DeliverySpec from knative/eventing pkg/apis/duck/v1.
- KafkaSink: eventing-kafka-broker control-plane/pkg/apis/eventing/v1alpha1/kafka_sink_types.go.
- Gateway, GatewayClass, HTTPRoute (v1), ReferenceGrant (v1beta1): the Gateway API standard channel.
- Component: dapr/dapr charts/dapr/crds/components.yaml.
"""

from __future__ import annotations

from typing import Any

STRING = {"type": "string", "minLength": 1}
STRINGS = {"type": "array", "items": STRING, "minItems": 1}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": STRING,
        "namespace": STRING,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


def _resource(api_version: str, kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _closed(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
            **extra,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


KREFERENCE = _closed(
    {"apiVersion": STRING, "kind": STRING, "name": STRING, "namespace": STRING},
    ("apiVersion", "kind", "name"),
)
DESTINATION = _closed({"ref": KREFERENCE, "uri": STRING, "CACerts": STRING, "audience": STRING})
ISO8601_DURATION = {"type": "string", "pattern": r"^P(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)$"}
DELIVERY = _closed(
    {
        "deadLetterSink": DESTINATION,
        "retry": {"type": "integer", "minimum": 0},
        "backoffPolicy": {"enum": ["linear", "exponential"]},
        "backoffDelay": ISO8601_DURATION,
        "timeout": ISO8601_DURATION,
        "retryAfterMax": ISO8601_DURATION,
    }
)

KAFKA_SOURCE = _resource(
    "sources.knative.dev/v1",
    "KafkaSource",
    _closed(
        {
            "bootstrapServers": STRINGS,
            "topics": STRINGS,
            "consumerGroup": STRING,
            "consumers": {"type": "integer", "minimum": 1},
            "initialOffset": {"enum": ["earliest", "latest"]},
            "ordering": {"enum": ["ordered", "unordered"]},
            "delivery": DELIVERY,
            "sink": DESTINATION,
            "ceOverrides": {"type": "object"},
            "net": {"type": "object"},
        },
        ("bootstrapServers", "topics", "sink"),
    ),
)

KAFKA_SINK = _resource(
    "eventing.knative.dev/v1alpha1",
    "KafkaSink",
    _closed(
        {
            "topic": STRING,
            # A list since the API accepted several servers; a single comma-separated string before.
            "bootstrapServers": STRINGS,
            "contentMode": {"enum": ["binary", "structured"]},
            "numPartitions": {"type": "integer", "minimum": 1},
            "replicationFactor": {"type": "integer", "minimum": 1},
            "auth": {"type": "object"},
        },
        ("topic", "bootstrapServers"),
    ),
)

PARENT_REF = _closed(
    {"group": {"type": "string"}, "kind": STRING, "namespace": STRING, "name": STRING, "sectionName": STRING},
    ("name",),
)
BACKEND_REF = _closed(
    {
        "group": {"type": "string"},
        "kind": STRING,
        "name": STRING,
        "namespace": STRING,
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "weight": {"type": "integer", "minimum": 0},
    },
    ("name",),
)
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
HTTP_ROUTE_MATCH = _closed(
    {
        "path": _closed(
            {
                "type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                "value": {"type": "string", "pattern": "^[/^]"},
            },
            ("type", "value"),
        ),
        "method": {"enum": HTTP_METHODS},
        "headers": {"type": "array"},
        "queryParams": {"type": "array"},
    }
)
URL_REWRITE_FILTER = _closed(
    {
        "type": {"const": "URLRewrite"},
        "urlRewrite": _closed({"hostname": STRING, "path": {"type": "object"}}),
    },
    ("type", "urlRewrite"),
)
HTTP_ROUTE = _resource(
    "gateway.networking.k8s.io/v1",
    "HTTPRoute",
    _closed(
        {
            "parentRefs": {"type": "array", "items": PARENT_REF, "minItems": 1},
            "hostnames": STRINGS,
            "rules": {
                "type": "array",
                "minItems": 1,
                "maxItems": 16,
                "items": _closed(
                    {
                        "matches": {
                            "type": "array",
                            "items": HTTP_ROUTE_MATCH,
                            "minItems": 1,
                            "maxItems": 64,
                        },
                        "filters": {"type": "array", "items": URL_REWRITE_FILTER, "maxItems": 16},
                        "backendRefs": {"type": "array", "items": BACKEND_REF, "minItems": 1},
                        "timeouts": _closed(
                            {
                                "request": {"type": "string", "pattern": r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"},
                                "backendRequest": {"type": "string"},
                            }
                        ),
                    }
                ),
            },
        },
        ("parentRefs", "rules"),
    ),
)
GATEWAY = _resource(
    "gateway.networking.k8s.io/v1",
    "Gateway",
    _closed(
        {
            "gatewayClassName": STRING,
            "listeners": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {
                        "name": STRING,
                        "hostname": STRING,
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "protocol": {"enum": ["HTTP", "HTTPS", "TLS", "TCP", "UDP"]},
                        "tls": {"type": "object"},
                        "allowedRoutes": _closed(
                            {
                                "namespaces": _closed({"from": {"enum": ["All", "Same", "Selector"]}}),
                                "kinds": {"type": "array"},
                            }
                        ),
                    },
                    ("name", "port", "protocol"),
                ),
            },
        },
        ("gatewayClassName", "listeners"),
    ),
)
GATEWAY_CLASS = _resource(
    "gateway.networking.k8s.io/v1",
    "GatewayClass",
    _closed(
        {"controllerName": STRING, "description": STRING, "parametersRef": {"type": "object"}},
        ("controllerName",),
    ),
)
REFERENCE_GRANT = _resource(
    "gateway.networking.k8s.io/v1beta1",
    "ReferenceGrant",
    _closed(
        {
            "from": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {"group": {"type": "string"}, "kind": STRING, "namespace": STRING},
                    ("group", "kind", "namespace"),
                ),
            },
            "to": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {"group": {"type": "string"}, "kind": STRING, "name": STRING}, ("group", "kind")
                ),
            },
        },
        ("from", "to"),
    ),
)
DAPR_COMPONENT = _resource(
    "dapr.io/v1alpha1",
    "Component",
    _closed(
        {
            "type": {
                "type": "string",
                "pattern": r"^(bindings|pubsub|secretstores|state|configuration)\.[a-z0-9.]+$",
            },
            "version": {"const": "v1"},
            "initTimeout": STRING,
            "ignoreErrors": {"type": "boolean"},
            "metadata": {
                "type": "array",
                "items": {
                    "oneOf": [
                        _closed({"name": STRING, "value": {"type": "string"}}, ("name", "value")),
                        _closed(
                            {
                                "name": STRING,
                                "secretKeyRef": _closed({"name": STRING, "key": STRING}, ("name", "key")),
                            },
                            ("name", "secretKeyRef"),
                        ),
                    ]
                },
            },
        },
        ("type", "version", "metadata"),
    ),
    auth=_closed({"secretStore": STRING}, ("secretStore",)),
    scopes={"type": "array", "items": STRING},
)

SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("sources.knative.dev/v1", "KafkaSource"): KAFKA_SOURCE,
    ("eventing.knative.dev/v1alpha1", "KafkaSink"): KAFKA_SINK,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTP_ROUTE,
    ("gateway.networking.k8s.io/v1", "Gateway"): GATEWAY,
    ("gateway.networking.k8s.io/v1", "GatewayClass"): GATEWAY_CLASS,
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): REFERENCE_GRANT,
    ("dapr.io/v1alpha1", "Component"): DAPR_COMPONENT,
}
