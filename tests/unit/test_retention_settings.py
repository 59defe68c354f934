"""Retention settings: tracking rows outlive every redelivery path, and the broker keeps what we declare."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from todo_backend.catalog import source_checkout
from todo_backend.retention import RULES, retention
from todo_backend.settings import Settings

REQUIRED = {"database_url": "postgresql://db/todo", "jwt_secret": "x" * 40}

REPO_ROOT = source_checkout()


def settings(**values: object) -> Settings:
    return Settings(**REQUIRED, **values)  # type: ignore[arg-type]


def test_the_default_tracking_retention_is_well_past_the_longest_redelivery_window() -> None:
    s = settings()
    # Three broker retentions (topic, DLQ, the broker topic after a replay), a day for the retries, and
    # a week to spare.
    assert s.retention_processed_event_days * 24 > 3 * s.kafka_topic_retention_hours + 24 + 24 * 7


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"retention_processed_event_days": 22}, True),  # 3 x 7 days + 1 day: not longer
        ({"retention_processed_event_days": 23}, False),
        ({"kafka_topic_retention_hours": 30 * 24}, True),  # a broker keeping records a month
        ({"kafka_topic_retention_hours": 30 * 24, "retention_processed_event_days": 120}, False),
    ],
)
def test_a_tracking_retention_a_redelivery_could_outlast_is_refused(
    values: dict[str, int], refused: bool
) -> None:
    if not refused:
        settings(**values)
        return
    with pytest.raises(ValidationError, match="RETENTION_PROCESSED_EVENT_DAYS must exceed"):
        settings(**values)


def test_every_pruned_table_has_a_retention_and_the_audit_history_is_not_one_of_them() -> None:
    assert set(retention(settings())) == set(RULES)
    assert "task_event" not in RULES


def test_the_cluster_broker_keeps_records_as_long_as_the_settings_declare() -> None:
    values = (REPO_ROOT / "infra/redpanda/values.yaml").read_text()
    [ms] = re.findall(r"^\s+log_retention_ms: (\d+)$", values, re.MULTILINE)
    assert int(ms) == Settings.model_fields["kafka_topic_retention_hours"].default * 3600 * 1000


def test_the_readme_documents_every_retention_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        if name.startswith("retention_") or name == "kafka_topic_retention_hours":
            assert f"`{name.upper()}`" in readme, name
