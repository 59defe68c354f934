"""Process settings, read once from the environment (pydantic-settings)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The secret `make run` and `make token` share. Refused anywhere but local development.
LOCAL_JWT_SECRET = "local-development-secret-not-for-production-use"  # noqa: S105


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    todo_env: Literal["local", "test", "production"] = "production"
    database_url: str
    jwt_secret: str = Field(min_length=32)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    # Function processes' logs (logs.py): "json", one object per line, for the cluster's log pipeline;
    # "text", readable lines, which the local stack sets.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Set: spans are exported there with OpenTelemetry (OTLP over HTTP; tracing.py). Unset: trace context
    # is still propagated, and the SDK is never imported.
    otel_exporter_otlp_endpoint: str | None = None

    # Scale-to-zero: a function instance serves a few concurrent requests, so a small pool per process:
    # as many connections as the autoscaler's concurrency target, all kept. Overflow connections are
    # opened and closed per checkout beyond the pool; with 2 + 3 that churn cost a third of the creates
    # per second at concurrency 8 (bench/create_throughput.py: 346 -> 492/s with 5 + 0, CPU per request
    # 2.03 -> 1.73 ms), for the same five connections at most.
    db_pool_size: int = 5
    db_max_overflow: int = 0
    db_pool_timeout_seconds: float = 10.0
    db_connect_timeout_seconds: float = 5.0
    # Off behind a transaction pooler (PgBouncer in transaction mode keeps no prepared statement from one
    # transaction to the next): every statement is then prepared anew, unnamed, each time it runs.
    db_statement_cache: bool = True

    # "dapr": publish through the sidecar's pub/sub component instead of to the broker directly.
    publisher: Literal["kafka", "dapr"] = "kafka"
    dapr_pubsub_name: str = "pubsub-redpanda"
    # Unset: no broker here; outbox rows wait for a relay that has one.
    kafka_bootstrap_servers: str | None = None
    # Redpanda supports the idempotent producer; the embedded Tansu broker rejects it.
    kafka_enable_idempotence: bool = True
    kafka_topic_partitions: int = 6
    kafka_replication_factor: int = 1
    kafka_publish_timeout_seconds: float = 2.0
    topic_task_events: str = "task-events"
    topic_reminders: str = "reminders"
    relay_grace_seconds: float = 5.0
    relay_batch_size: int = 500
    # After a fast-path publish fails or times out, the fast path stands aside this long and relay-outbox
    # publishes: requests stop paying for (and holding a pool connection through) a broker that is down.
    fast_path_cooldown_seconds: float = Field(default=30.0, ge=0)

    webhook_max_per_user: int = 10
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8
    # Webhook POSTs in flight at once per process (fast path and retry tick together); beyond it, due
    # deliveries wait for the next retry tick. Each attempt holds a pool connection only to claim and record.
    webhook_max_in_flight: int = Field(default=16, ge=1)

    default_remind_before_minutes: int = 1440
    # Due tasks one check-due-tasks transaction claims; a tick takes batch after batch within its budget.
    reminder_batch_size: int = Field(default=500, ge=1)
    # Reminder emails through the Dapr output binding of type bindings.smtp named below; "off": in-app only.
    notification_email: Literal["off", "dapr"] = "off"
    notification_email_binding: str = "email-smtp"
    notification_email_from: str | None = None  # unset: the binding component's emailFrom
    dapr_http_port: int = 3500  # DAPR_HTTP_PORT, set in the app's container by the Dapr sidecar injector
    # Prometheus exporter port beside the function's own (9464 in the cluster); unset: no exporter.
    metrics_port: int | None = None
    idempotency_key_ttl_hours: int = 24
    max_body_bytes: int = 64 * 1024

    # Retention: what prune-expired-rows deletes, and when (retention.py). task_event, the audit history
    # and the outbox, is never pruned.
    # How long the broker keeps records, on every topic (dead-letter and Knative broker topics included):
    # the cluster default log_retention_ms in infra/redpanda/values.yaml. Declared here so the tracking
    # retention below can be checked against it; set it to what an external broker keeps.
    kafka_topic_retention_hours: int = Field(default=168, ge=1)
    # Tracking rows must outlive every way an event can reach its consumer again (see the validator).
    retention_processed_event_days: int = Field(default=30, ge=1)
    retention_webhook_delivery_days: int = Field(default=30, ge=1)  # finished ones: succeeded or failed
    retention_notification_days: int = Field(default=30, ge=1)  # read ones, counted from when they were read
    retention_batch_size: int = Field(default=1000, ge=1)  # rows one DELETE takes (one short transaction)
    retention_max_rows_per_tick: int = Field(default=50_000, ge=1)

    @model_validator(mode="after")
    def _refuse_local_secret_outside_development(self) -> Settings:
        if self.todo_env == "production" and self.jwt_secret == LOCAL_JWT_SECRET:
            raise ValueError("JWT_SECRET is the local development secret; set a real one")
        return self

    @model_validator(mode="after")
    def _tracking_outlives_redelivery(self) -> Settings:
        # An event comes back only from a broker record, which lives kafka_topic_retention_hours from when
        # it was written. The longest way back re-writes it three times: kept on its topic and the Knative
        # broker's (a consumer-group offset reset redelivers it), retried then dead-lettered, kept in the
        # DLQ until a replay writes it to the broker topic again, where a reset can deliver it once more.
        # The retries take minutes (catalog.DELIVERY); a day covers them with room to spare. A tracking row
        # pruned before all that is over would let its consumer apply the event a second time.
        window = timedelta(hours=3 * self.kafka_topic_retention_hours, days=1)
        if timedelta(days=self.retention_processed_event_days) <= window:
            raise ValueError(
                f"RETENTION_PROCESSED_EVENT_DAYS must exceed the longest redelivery window, {window} "
                "(three times KAFKA_TOPIC_RETENTION_HOURS, plus a day for the delivery retries)"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # required values come from the environment
