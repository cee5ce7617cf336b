"""An Optuna search on the live SLURM cluster: each batch of trials is one job array, the trials
of a batch train at once in their own jobs and report to the one journal file of the sweep
directory, and the study's pruner stops a diverging trial inside its SLURM job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import LR_SPACE, load_study, study_states
from tests.helpers.cli import log_span as _span
from tests.helpers.cli import trial_metrics as metrics
from tests.helpers.slurm import run, sweep_cmd

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def test_two_trials_in_flight_share_the_journal_and_the_pruner_stops_a_bad_one(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "search"
    out = run(
        sweep_cmd(
            sweep_dir,
            "budget.max_epochs=2",
            "hydra/sweeper=optuna",
            "hydra.sweeper.sampler=random",
            "hydra.sweeper.seed=0",  # learning rates: 0.001 (baseline), 10 | 0.001, 10
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.baseline_runs=1",
            "hydra.sweeper.pruner.name=median",
            "hydra.sweeper.pruner.n_startup_trials=1",
            "hydra.sweeper.pruner.n_warmup_steps=0",
            "hydra.launcher.progress_interval_s=5",
            LR_SPACE,
        )
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    record = json.loads((sweep_dir / "slurm_jobs.json").read_text())
    arrays = {}
    for job in record["jobs"]:
        subdir = next(o for o in job["overrides"] if o.startswith("hydra.sweep.subdir="))
        arrays.setdefault(job["job_id"].split("_")[0], []).append(subdir.split("=")[1])
    assert sorted(arrays.values()) == [["trial-0000", "trial-0001"], ["trial-0002", "trial-0003"]]
    (a0, a1), (b0, b1) = _span(sweep_dir / "trial-0000"), _span(sweep_dir / "trial-0001")
    assert a0 < b1 and b0 < a1, "the first batch's two trials did not train at the same time"
    lrs = [metrics(sweep_dir, n)["trial"]["params"]["scheduler.learning_rate"] for n in range(4)]
    assert lrs == [0.001, 10.0, 0.001, 10.0]
    states = study_states(sweep_dir)
    # trial 1 trained beside the baseline, before any trial had completed: nothing to compare with
    assert [states[0], states[2], states[3]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = metrics(sweep_dir, 3)
    assert pruned["stop_reason"] == "pruned" and pruned["epochs_run"] == 1
    assert "trial 3 pruned at epoch 1" in (sweep_dir / "trial-0003" / "train.log").read_text()
    # every trial of both arrays reported its epochs to the one journal in the sweep dir
    reported = [sorted(t.intermediate_values) for t in load_study(sweep_dir).trials]
    assert reported[0] == reported[2] == [1, 2] and reported[3] == [1]
    assert reported[1] in ([1], [1, 2])
    md = (sweep_dir / "search_summary.md").read_text()
    assert "4 of 4 trials ended" in md and "pruned at epoch 1" in md
