"""What every generated resource shares: the namespace and its labels, where Redpanda listens, and the
settings a deployment gets by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from todo_backend.settings import Settings

NAMESPACE = "todo"
CONFIG_MAP = "todo-config"
SECRET = "todo-secrets"  # noqa: S105 (the name of a Secret, not a secret)

# Redpanda as infra/redpanda/values.yaml installs it: 3 brokers, internal Kafka listener, no TLS in-cluster.
KAFKA_BOOTSTRAP = "redpanda.redpanda.svc.cluster.local:9093"
CLOUD_REPLICATION_FACTOR = 3


def default_settings() -> Settings:
    """The settings' defaults, as a deployment that does not override them gets them. Imported here, not
    at module level: the deploy helpers run without the package's dependencies installed."""
    from todo_backend.settings import Settings

    return Settings.model_construct()  # defaults only; the required secrets are not needed here


def labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "todo",
        "app.kubernetes.io/managed-by": "todo-backend-manifests",
    }


def meta(name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": labels(name, component), **extra}


def service_ref(name: str) -> dict[str, str]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}
