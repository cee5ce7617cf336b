"""Early stopping that cannot fire: INFO under a budget's cap, WARNING for a full run."""

from __future__ import annotations

import logging

from fusion_tuner.training.trainer import early_stopping_note
from tests.conftest import compose


def test_a_full_run_whose_patience_outlasts_it_is_warned() -> None:
    level, line = early_stopping_note(compose("scheduler.epochs=100"))
    assert level == logging.WARNING
    assert line.startswith("early stopping cannot fire: patience 150 >= 100 epochs;")
    assert "lower scheduler.n_early_stopping below scheduler.epochs" in line


def test_a_budget_capped_run_gets_an_info_line() -> None:
    level, line = early_stopping_note(compose("scheduler.epochs=100", "budget=quick"))
    assert level == logging.INFO and "caps the run" in line
    assert "CANNOT" not in line
