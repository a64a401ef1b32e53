"""The counters that the webhook sender's and retention's hooks move."""

from __future__ import annotations

from prometheus_client import REGISTRY

from supervisor import facts


def _value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_retention_counts_what_it_removed_by_kind() -> None:
    before = _value("stm_retention_removed_total", kind="audio")
    facts.retention_removed("audio", 3)
    assert _value("stm_retention_removed_total", kind="audio") - before == 3


def test_a_webhook_attempt_is_counted_by_state_with_its_duration() -> None:
    before = _value("stm_webhook_attempts_total", state="gone")
    seconds = _value("stm_webhook_attempt_seconds_sum")
    facts.webhook_attempted("gone", 0.25)
    assert _value("stm_webhook_attempts_total", state="gone") - before == 1
    assert _value("stm_webhook_attempt_seconds_sum") - seconds == 0.25
