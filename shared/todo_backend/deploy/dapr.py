"""Dapr: which functions run a sidecar, the annotations that give them one, and the components
(dapr-components/) their sidecars may load."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from todo_backend.deploy.cluster import KAFKA_BOOTSTRAP, default_settings, meta

# Dapr's default metrics port (9090) is one Knative's queue-proxy reserves, so sidecars export on this one.
DAPR_METRICS_PORT = 9095


@dataclass(frozen=True)
class DaprUse:
    """How one function uses Dapr: the components its sidecar may load."""

    components: tuple[str, ...] = ()


# The deployment's NOTIFICATION_EMAIL (todo-config): "dapr" sends reminder emails through the SMTP output
# binding, which gives the functions that send them a Dapr sidecar; "off" (the default) keeps reminders
# in-app and every function sidecar-free.
NOTIFICATION_EMAIL = "off"
EMAIL_SENDERS = ("deliver-notification",)
# Other functions that run with a Dapr sidecar: none. Every function reaches Redpanda and the database
# directly and cron functions are woken by PingSources, so all of them scale to zero. An entry here (and
# regenerating) adds the sidecar annotations to that function's Service.
DAPR_APPS: dict[str, DaprUse] = {}
# The consumers each component is meant for, used as its `scopes` (a sidecar outside them never loads
# it). The relay is the outbox publisher a Dapr adapter would replace.
PUBSUB_COMPONENT = "pubsub-redpanda"
SECRET_STORE = "kubernetes-secrets"  # noqa: S105 (a component name)
PUBSUB_CONSUMERS = ("relay-outbox",)


def smtp_component() -> str:
    """The SMTP binding's component name: the one the functions call (NOTIFICATION_EMAIL_BINDING)."""
    return default_settings().notification_email_binding


def dapr_apps() -> dict[str, DaprUse]:
    """Every function that runs with a Dapr sidecar, and what it uses."""
    apps = dict(DAPR_APPS)
    if NOTIFICATION_EMAIL == "dapr":
        for name in EMAIL_SENDERS:
            apps[name] = DaprUse(components=(smtp_component(), SECRET_STORE))
    return apps


def sidecar_annotations(app_id: str, app_port: int) -> dict[str, str]:
    """What a Knative Service's pod template carries to get a Dapr sidecar."""
    return {
        "dapr.io/enabled": "true",
        "dapr.io/app-id": app_id,
        "dapr.io/app-port": str(app_port),
        "dapr.io/enable-metrics": "true",
        "dapr.io/metrics-port": str(DAPR_METRICS_PORT),
    }


def _component(
    name: str,
    kind: str,
    metadata: Sequence[Mapping[str, Any]],
    scopes: Iterable[str],
    secret_store: bool = True,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": meta(name, "dapr"),
        "spec": {"type": kind, "version": "v1", "metadata": list(metadata)},
    }
    if secret_store:
        resource["auth"] = {"secretStore": SECRET_STORE}
    resource["scopes"] = sorted(set(scopes))
    return resource


def _value(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _secret(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "secretKeyRef": {"name": "smtp-credentials", "key": key}}


def dapr_components() -> dict[str, dict[str, Any]]:
    every_consumer = set(dapr_apps()) | set(PUBSUB_CONSUMERS) | set(EMAIL_SENDERS)
    return {
        # Resolves the secretKeyRefs of the components that name it in auth.secretStore.
        SECRET_STORE: _component(SECRET_STORE, "secretstores.kubernetes", [], every_consumer, False),
        PUBSUB_COMPONENT: _component(
            PUBSUB_COMPONENT,
            "pubsub.kafka",
            [
                _value("brokers", KAFKA_BOOTSTRAP),
                _value("authType", "none"),
                _value("disableTls", "true"),
                _value("clientID", "{appID}"),
                _value("consumerGroup", "{appID}"),
                # An outbox publisher passes rawPayload and partitionKey as publish metadata; without
                # this they would also be copied into Kafka headers (see docs/deploy.md, Dapr).
                _value("excludeHeaderMetaRegex", "^(rawPayload|partitionKey)$"),
            ],
            PUBSUB_CONSUMERS,
            secret_store=False,
        ),
        smtp_component(): _component(
            smtp_component(),
            "bindings.smtp",
            [
                _secret("host", "host"),
                _secret("port", "port"),
                _secret("user", "user"),
                _secret("password", "password"),
                _secret("emailFrom", "from"),
                _value("skipTLSVerify", "false"),
            ],
            EMAIL_SENDERS,
        ),
    }
