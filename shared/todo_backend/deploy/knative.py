"""Knative Serving and the plain Kubernetes resources beside it: the namespace, the ConfigMap every
function reads, one Service per catalog function, and the migration Job."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from todo_backend.catalog import FUNCTIONS, Function
from todo_backend.deploy import dapr
from todo_backend.deploy.cluster import (
    CLOUD_REPLICATION_FACTOR,
    CONFIG_MAP,
    KAFKA_BOOTSTRAP,
    NAMESPACE,
    SECRET,
    default_settings,
    labels,
    meta,
)

# Literal placeholder in every committed image field; `render` swaps in the real registry owner and tag.
IMAGE_PLACEHOLDER = "ghcr.io/OWNER/todo-{name}:TAG"
IMAGE_PATTERN = re.compile(r"ghcr\.io/OWNER/todo-(?P<name>[a-z0-9-]+):TAG")
CONTAINER_PORT = 8080

# Knative's queue-proxy owns these ports in every pod; nothing of ours may listen on them.
KNATIVE_RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091})
# Where each function serves its own /metrics (METRICS_PORT), beside the one port Knative routes to;
# infra/monitoring/podmonitors/todo-functions.yaml scrapes it.
METRICS_PORT = 9464


@dataclass(frozen=True)
class Scaling:
    max_scale: int
    target: int  # soft concurrency target per pod (the autoscaler's goal)
    container_concurrency: int  # hard cap per pod
    timeout_seconds: int


# HTTP: the autoscaler aims at as many concurrent requests per pod as its DB pool has connections (5, no
# overflow), and caps them at twice that. CloudEvent consumers: ordered
# delivery sends one event per partition at a time, so more pods than partitions never help. Cron: one
# run at a time, one pod.
SCALING = {
    "http": Scaling(max_scale=10, target=5, container_concurrency=10, timeout_seconds=30),
    "cloudevent": Scaling(max_scale=6, target=4, container_concurrency=10, timeout_seconds=60),
    "cron": Scaling(max_scale=1, target=1, container_concurrency=1, timeout_seconds=300),
}
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "160Mi"},
    "limits": {"cpu": "1000m", "memory": "320Mi"},
}
SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
MIGRATE_COMMAND = (
    'from todo_backend.migrations import upgrade; import os; upgrade(os.environ["DATABASE_URL"])'
)


def image(fn: Function) -> str:
    return IMAGE_PLACEHOLDER.format(name=fn.name)


def namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels(NAMESPACE, "namespace")},
    }


def config_map() -> dict[str, Any]:
    settings = default_settings()
    data = {
        "TODO_ENV": "production",
        "NOTIFICATION_EMAIL": dapr.NOTIFICATION_EMAIL,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "KAFKA_ENABLE_IDEMPOTENCE": "true",  # Redpanda supports the idempotent producer
        "KAFKA_REPLICATION_FACTOR": str(CLOUD_REPLICATION_FACTOR),
        "KAFKA_TOPIC_PARTITIONS": str(settings.kafka_topic_partitions),
        # What infra/redpanda/values.yaml keeps (a test holds the two equal): the tracking retention's floor.
        "KAFKA_TOPIC_RETENTION_HOURS": str(settings.kafka_topic_retention_hours),
        "METRICS_PORT": str(METRICS_PORT),
        "TOPIC_TASK_EVENTS": settings.topic_task_events,
        "TOPIC_REMINDERS": settings.topic_reminders,
    }
    unknown = {key.lower() for key in data} - set(type(settings).model_fields)
    if unknown:
        raise ValueError(f"{CONFIG_MAP} sets variables no setting reads: {sorted(unknown)}")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(CONFIG_MAP, "config"),
        "data": dict(sorted(data.items())),
    }


def knative_service(fn: Function) -> dict[str, Any]:
    scaling = SCALING[fn.trigger]
    annotations = {
        # Every function scales to zero: HTTP and events wake it through Knative, cron through a PingSource.
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": str(scaling.max_scale),
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target": str(scaling.target),
    }
    if fn.name in dapr.dapr_apps():
        annotations.update(dapr.sidecar_annotations(fn.name, CONTAINER_PORT))
    service_labels = {
        **labels(fn.name, "function"),
        # Never on the public Knative domain: HTTP functions are reached only through the Gateway's
        # /api routes, events and cron functions only from inside the cluster.
        "networking.knative.dev/visibility": "cluster-local",
        "todo.dev/trigger": fn.trigger,
    }
    pod_labels = {**labels(fn.name, "function"), "todo.dev/function": fn.name}
    probe_action = {"tcpSocket": {"port": CONTAINER_PORT}}
    container = {
        "name": "function",
        "image": image(fn),
        "ports": [{"name": "http1", "containerPort": CONTAINER_PORT}],
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": SECRET}}],
        "resources": RESOURCES,
        # TCP, not HTTP: functions-framework answers GET with 401/404 (HTTP functions) or 405
        # (CloudEvent functions), never 2xx, and an accepting socket means the app has been imported.
        "readinessProbe": {**probe_action, "successThreshold": 1},
        "livenessProbe": {**probe_action, "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": SECURITY_CONTEXT,
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": fn.name, "namespace": NAMESPACE, "labels": service_labels},
        "spec": {
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "containerConcurrency": scaling.container_concurrency,
                    "timeoutSeconds": scaling.timeout_seconds,
                    "enableServiceLinks": False,
                    "containers": [container],
                },
            },
            # Explicit, so a deploy after a rollback (traffic pinned to an old revision) un-pins it.
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }


def migration_job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("migrate", "migration"),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels("migrate", "migration")},
                "spec": {
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "containers": [
                        {
                            "name": "migrate",
                            # Any function image carries the package and its migrations.
                            "image": image(FUNCTIONS[0]),
                            "command": ["python", "-c", MIGRATE_COMMAND],
                            "envFrom": [{"secretRef": {"name": SECRET}}],
                            "resources": RESOURCES,
                            "securityContext": SECURITY_CONTEXT,
                        }
                    ],
                },
            },
        },
    }
