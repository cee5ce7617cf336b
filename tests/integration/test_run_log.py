"""train.log is the run's one log: every epoch line is in it, whatever the console shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["bar", "line"])
def test_every_epoch_line_is_in_train_log_whatever_the_progress_mode(
    tmp_path: Path, mode: str
) -> None:
    run_dir = train_run(tmp_path / "run", "scheduler.epochs=3", f"trainer.progress={mode}")
    log = (run_dir / "train.log").read_text()
    epochs = re.findall(r"INFO fusion_tuner: epoch (\d)/3 train_loss .* val_mae ", log)
    assert epochs == ["1", "2", "3"], log[-2000:]


def test_a_budget_capped_run_notes_in_one_calm_line_that_early_stopping_cannot_fire(
    tmp_path: Path,
) -> None:
    run_dir = train_run(tmp_path / "run", "scheduler.epochs=3", "budget.max_epochs=2")
    log = (run_dir / "train.log").read_text()
    assert (
        "INFO fusion_tuner: early stopping cannot fire: patience 150 >= 2 epochs; metrics.json "
        "records early_stopping_can_fire: false (budget.max_epochs=2 caps the run)"
    ) in log
    assert "CANNOT" not in log and "WARNING" not in log
