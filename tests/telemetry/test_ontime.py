"""On-time probability from the start-time prediction's error distribution."""

from __future__ import annotations

from llama_orch.telemetry import StartErrors


def test_without_a_deadline_there_is_no_probability() -> None:
    assert StartErrors().on_time_probability(100, None) is None


def test_few_samples_take_the_prediction_at_its_word() -> None:
    errors = StartErrors(min_samples=3)
    assert errors.on_time_probability(100, 200) == 1.0
    assert errors.on_time_probability(300, 200) == 0.0
    assert errors.on_time_probability(0, 0) == 0.0


def test_empirical_distribution() -> None:
    errors = StartErrors(window=10, min_samples=1)
    for err in (-50, 0, 50, 100, 150, 200, 250, 300, 350, 400):
        errors.record(predicted_ms=1000, actual_ms=1000 + err)
    # predicted 500 ms, deadline in 700 ms: on time while the error is at most 200 ms (6 of 10)
    assert errors.on_time_probability(500, 700) == 0.6
    assert errors.on_time_probability(500, 10_000) == 1.0
    assert errors.on_time_probability(500, 400) == 0.0


def test_window_forgets_old_errors() -> None:
    errors = StartErrors(window=4, min_samples=1)
    for _ in range(4):
        errors.record(0, 1000)  # late by a second
    assert errors.on_time_probability(0, 500) == 0.0
    for _ in range(4):
        errors.record(0, 0)  # now exact
    assert len(errors) == 4 and errors.on_time_probability(0, 500) == 1.0
