"""Knative Eventing: the Kafka Broker, a KafkaSource per topic into it, Triggers to the consumers, the
dead-letter sinks and their replay sources, and a PingSource per cron function."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from todo_backend.catalog import DELIVERY, Function
from todo_backend.deploy.cluster import (
    CLOUD_REPLICATION_FACTOR,
    KAFKA_BOOTSTRAP,
    NAMESPACE,
    default_settings,
    meta,
    service_ref,
)

BROKER = "todo"
BROKER_CONFIG = "todo-broker-config"
DLQ_PARTITIONS = 3
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    @property
    def dlq_sink(self) -> str:
        return self.name + "-dlq"


def topics() -> tuple[Topic, ...]:
    from todo_backend import messaging

    return tuple(Topic(name) for name in messaging.topics(default_settings()))


def topic_for(event_type: str) -> Topic:
    """The topic the relay publishes `event_type` on (the relay's own rule)."""
    from todo_backend import messaging

    return Topic(messaging.topic_for(event_type, default_settings()))


def _iso_seconds(seconds: float) -> str:
    """An ISO 8601 duration, as Knative's delivery.backoffDelay wants it."""
    return "PT" + f"{seconds:.3f}".rstrip("0").rstrip(".") + "S"


def broker_config_map() -> dict[str, Any]:
    settings = default_settings()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(BROKER_CONFIG, "eventing"),
        "data": {
            "bootstrap.servers": KAFKA_BOOTSTRAP,
            "default.topic.partitions": str(settings.kafka_topic_partitions),
            "default.topic.replication.factor": str(CLOUD_REPLICATION_FACTOR),
        },
    }


def broker() -> dict[str, Any]:
    broker_meta = meta(BROKER, "eventing")
    broker_meta["annotations"] = {"eventing.knative.dev/broker.class": "Kafka"}
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": broker_meta,
        "spec": {
            "config": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": BROKER_CONFIG,
                "namespace": NAMESPACE,
            }
        },
    }


def _delivery(topic: Topic) -> dict[str, Any]:
    """The catalog's delivery policy (the local dispatcher follows the same), then the topic's DLQ."""
    return {
        "retry": DELIVERY.retries,
        "backoffPolicy": "exponential",
        "backoffDelay": _iso_seconds(DELIVERY.backoff_seconds),
        "deadLetterSink": {
            "ref": {
                "apiVersion": "eventing.knative.dev/v1alpha1",
                "kind": "KafkaSink",
                "name": topic.dlq_sink,
            }
        },
    }


def kafka_source(topic: Topic) -> dict[str, Any]:
    settings = default_settings()
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "KafkaSource",
        "metadata": meta(topic.name, "eventing"),
        "spec": {
            "bootstrapServers": [KAFKA_BOOTSTRAP],
            "topics": [topic.name],
            "consumerGroup": f"knative-source-{topic.name}",
            # The first deploy must not skip what the relay published before the source existed.
            "initialOffset": "earliest",
            # Per partition, wait for the broker to accept an event before sending the next: with the
            # relay keying records by task id, a task's events reach the broker in the order written.
            "ordering": "ordered",
            "consumers": settings.kafka_topic_partitions,
            "delivery": _delivery(topic),
            "sink": {
                "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": BROKER},
            },
        },
    }


def dlq_sink(topic: Topic) -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "KafkaSink",
        "metadata": meta(topic.dlq_sink, "eventing"),
        "spec": {
            "topic": topic.dlq,
            "bootstrapServers": [KAFKA_BOOTSTRAP],
            # Binary, like the relay's records: a dead letter can be copied back to its topic as it is.
            "contentMode": "binary",
            "numPartitions": DLQ_PARTITIONS,
            "replicationFactor": CLOUD_REPLICATION_FACTOR,
        },
    }


def dlq_replay_source(topic: Topic) -> dict[str, Any]:
    """Dead letters back into the broker, applied only while replaying (infra/replay-dlq.sh). A
    KafkaSource passes a record that is a CloudEvent through unchanged, so each dead letter re-enters with
    its own type and is delivered again to every Trigger that matches it (consumers are idempotent).
    Its consumer group persists across replays: each replay resumes after the last one. A letter the
    broker refuses goes back to the DLQ after the retries: without a dead-letter sink the source would
    commit past it and drop it (eventing-kafka-broker's no-op dead-letter sender)."""
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "KafkaSource",
        "metadata": meta(f"replay-{topic.dlq_sink}", "replay"),
        "spec": {
            "bootstrapServers": [KAFKA_BOOTSTRAP],
            "topics": [topic.dlq],
            "consumerGroup": f"knative-replay-{topic.dlq_sink}",
            "initialOffset": "earliest",
            "ordering": "ordered",
            "consumers": 1,
            "sink": {
                "ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": BROKER},
            },
            "delivery": _delivery(topic),
        },
    }


def trigger_name(fn: Function, topic: Topic) -> str:
    return f"{fn.name}-{topic.name}"


def triggers(fn: Function) -> list[dict[str, Any]]:
    """One Trigger per function and topic, matching any of its types: one consumer group, so a task's
    events reach the function in order whatever their type (one Trigger per type would be one consumer
    group per type, and `task.updated` could overtake `task.created`)."""
    by_topic: dict[Topic, list[str]] = {}
    for event_type in fn.event_types:
        by_topic.setdefault(topic_for(event_type), []).append(event_type)
    resources = []
    for topic, types in by_topic.items():
        trigger_meta = meta(trigger_name(fn, topic), "eventing")
        trigger_meta["annotations"] = {"kafka.eventing.knative.dev/delivery.order": "ordered"}
        resources.append(
            {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": trigger_meta,
                "spec": {
                    "broker": BROKER,
                    "filters": [{"any": [{"exact": {"type": t}} for t in types]}],
                    "subscriber": {"ref": service_ref(fn.name)},
                    "delivery": _delivery(topic),
                },
            }
        )
    return resources


def ping_source(fn: Function) -> dict[str, Any]:
    assert fn.schedule is not None
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": meta(fn.name, "schedule"),
        "spec": {
            "schedule": fn.schedule,
            "timezone": "UTC",
            "contentType": "application/json",
            "data": json.dumps({"function": fn.name}),
            "sink": {"ref": service_ref(fn.name)},
        },
    }
