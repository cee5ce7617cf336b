"""The sweep-level progress line after each run."""

from __future__ import annotations

from fusion_tuner.sweeps.callback import SweepProgress


def test_the_line_counts_runs_and_estimates_the_time_left() -> None:
    p = SweepProgress(4)
    start = p.start
    assert p.job_ended(now=start + 60) == (
        "sweep progress: 1/4 runs done, 0:01:00 elapsed, about 0:03:00 remaining "
        "(estimated from the mean time per run)"
    )
    assert p.job_ended(now=start + 3700) == (
        "sweep progress: 2/4 runs done, 1:01:40 elapsed, about 1:01:40 remaining "
        "(estimated from the mean time per run)"
    )
    p.job_ended(now=start + 3800)
    assert p.job_ended(now=start + 3900) == "sweep progress: 4/4 runs done, 1:05:00 elapsed"


def test_an_unknown_total_or_more_runs_than_planned_gives_no_estimate() -> None:
    p = SweepProgress(None, "trial")
    assert p.job_ended(now=p.start + 5) == "sweep progress: 1 trial done, 0:00:05 elapsed"
    assert p.job_ended(now=p.start + 9) == "sweep progress: 2 trials done, 0:00:09 elapsed"
    q = SweepProgress(1)
    q.job_ended(now=q.start + 1)
    assert q.job_ended(now=q.start + 2) == "sweep progress: 2/2 runs done, 0:00:02 elapsed"
