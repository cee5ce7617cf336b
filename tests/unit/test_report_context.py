"""The context header of ``summary.md`` and the plan report: data, target, budget, crystals,
epochs and steps, seeds, wall time and code, computed as data and rendered twice."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from fusion_tuner import __version__
from fusion_tuner.rundir import Run
from fusion_tuner.sweeps.context import (
    DEMO_BANNER,
    build_context,
    context_banners,
    context_items,
    git_revision,
)
from fusion_tuner.sweeps.plan_report import build_report
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.sweeps import fake_run, fixed_design, patch_metrics

QUICK = {
    "dataset": {"source": "demo", "target": "synthetic_gap", "demo_size": 300},
    "budget": {"name": "quick", "max_epochs": 8, "max_structures": 300},
}
REAL = {
    "dataset": {"source": "jarvis", "name": "dft_3d", "target": "optb88vdw_bandgap"},
    "budget": {"name": "full", "max_epochs": None, "max_structures": None},
}


def a_sweep(sweep: Path, config: dict, walls: tuple[float, ...] = (60.0, 90.0)) -> Path:
    fixed_design(sweep, len(walls))
    for seed, wall in enumerate(walls, start=1):
        for exp, val in (("baseline", 1.0), ("e06_lower_lr", 0.9)):
            run = fake_run(sweep, exp, seed, val, config=config)
            patch_metrics(
                run,
                wall_time_s=wall,
                optimizer_steps=9 * 5,
                max_epochs=8,
                code_version="0.9.1",
                git_revision="1234abcd",
            )
    return sweep


def test_the_context_is_computed_from_the_runs(tmp_path: Path) -> None:
    sweep = a_sweep(tmp_path / "s", QUICK)
    fake_run(sweep, "e07_failed", 1, None, status="failed", config=QUICK)
    runs = [Run(d) for d in sorted(sweep.iterdir()) if d.is_dir()]
    ctx = build_context(runs, revision="abc123")
    assert ctx.runs == 5 and ctx.completed == 4
    assert ctx.demo is True and ctx.capping_budgets == ["quick"] and ctx.budgets == ["quick"]
    assert ctx.sources == ["demo (synthetic crystals, demo_size=300)"]
    assert ctx.targets == ["synthetic_gap"] and ctx.units == ["eV, synthetic"]
    assert {s: (c.low, c.high) for s, c in ctx.crystals.items()} == {
        "train": (80, 80),
        "val": (10, 10),
        "test": (10, 10),
    }
    assert (ctx.epochs.low, ctx.epochs.high) == (9, 9)
    assert (ctx.steps.low, ctx.steps.high) == (45, 45)
    assert ctx.seeds_per_arm == {"baseline": 2, "e06_lower_lr": 2}
    assert ctx.median_run_wall_s == 75.0 and ctx.total_wall_s == 300.0
    assert context_banners(ctx) == [
        DEMO_BANNER,
        "pipeline check — budget=quick caps epochs and crystals",
    ]
    items = dict(context_items(ctx))
    assert items["crystals"] == "train 80 / val 10 / test 10"
    assert items["training"] == "9 epochs run (of at most 8); 45 optimizer steps"
    assert items["wall time"] == "per run 75 s median (60 s–90 s); all runs together 5.0 min"
    assert items["runs"] == "4 of 5 completed; seeds per arm: baseline 2, e06_lower_lr 2"
    assert items["code"] == (
        f"runs by fusion_tuner 0.9.1, git 1234abcd; this page by fusion_tuner {__version__}, "
        "git abc123"
    )


def test_a_reduced_profile_is_not_called_a_pipeline_check(tmp_path: Path) -> None:
    cpu = REAL | {
        "budget": {"name": "cpu", "max_epochs": 12, "max_structures": 1000, "width_scale": 0.25}
    }
    sweep = a_sweep(tmp_path / "s", cpu)
    ctx = build_context([Run(d) for d in sorted(sweep.iterdir()) if d.is_dir()], revision="x")
    assert ctx.capping_budgets == ["cpu"]
    [banner] = context_banners(ctx)
    assert banner.startswith("reduced profile — budget=cpu caps epochs and crystals")
    assert "not the plan's full settings" in banner and "pipeline check" not in banner


def test_real_data_on_the_full_budget_carries_no_banner(tmp_path: Path) -> None:
    sweep = a_sweep(tmp_path / "s", REAL)
    ctx = build_context([Run(d) for d in sorted(sweep.iterdir()) if d.is_dir()], revision="x")
    assert context_banners(ctx) == []
    assert dict(context_items(ctx))["target"] == "optb88vdw_bandgap (eV)"
    assert dict(context_items(ctx))["data"] == "JARVIS-DFT dft_3d"


def test_summary_md_and_summary_json_carry_the_header(tmp_path: Path) -> None:
    sweep = a_sweep(tmp_path / "s", QUICK)
    write_summary(sweep)
    md = (sweep / "summary.md").read_text()
    head = md.split("| experiment |")[0]  # the header comes before the runs' table
    assert f"**{DEMO_BANNER}**" in head
    assert "**pipeline check — budget=quick caps epochs and crystals**" in head
    assert "- target: synthetic_gap (eV, synthetic)" in head
    assert "- crystals: train 80 / val 10 / test 10" in head
    assert "45 optimizer steps" in head and "seeds per arm: baseline 2" in head
    assert "- code: runs by fusion_tuner 0.9.1, git 1234abcd; this page by fusion_tuner " in head
    assert f"this page by fusion_tuner {__version__}, git " in head
    record = json.loads((sweep / "summary.json").read_text())["context"]
    assert record["demo"] is True and record["total_wall_s"] == 300.0
    assert record["crystals"]["train"] == {"low": 80, "high": 80}


def test_the_report_opens_with_the_header_of_all_its_runs(tmp_path: Path) -> None:
    a_sweep(tmp_path / "multirun" / "phase1" / "2026-01-01_00-00-00", QUICK)
    a_sweep(tmp_path / "multirun" / "phase2" / "2026-01-02_00-00-00", QUICK, walls=(30.0, 30.0))
    numbers = build_report([tmp_path / "multirun"], out=tmp_path / "r", cka=False)
    ctx = numbers["context"]
    assert ctx["runs"] == 8 and ctx["total_wall_s"] == 420.0
    page = (tmp_path / "r" / "report.html").read_text()
    first_table = page.index("<table")
    assert 0 < page.index(f'<p class="banner" role="note">{DEMO_BANNER}</p>') < first_table
    assert 0 < page.index("budget=quick caps epochs and crystals") < first_table
    assert "<dt>crystals</dt><dd>train 80 / val 10 / test 10</dd>" in page
    assert "<dt>training</dt><dd>9 epochs run (of at most 8); 45 optimizer steps</dd>" in page
    # each sweep says its own budget, steps and wall time
    assert "wall time 5.0 min of runs." in page and "wall time 2.0 min of runs." in page
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"**{DEMO_BANNER}**" in md and "- wall time: per run" in md


def test_the_git_revision_is_the_checkouts_commit_or_unknown(tmp_path: Path) -> None:
    import subprocess

    import fusion_tuner

    git_revision.cache_clear()
    assert git_revision(tmp_path) == "unknown"
    package = Path(fusion_tuner.__file__).resolve().parent
    head = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "--short=10", "HEAD"],
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:  # an installed package: nothing to compare with
        assert git_revision() == "unknown"
    else:
        assert git_revision().removesuffix("+dirty") == head.stdout.strip()


def test_a_trained_run_records_its_optimizer_steps(trained_run: Path) -> None:
    m = json.loads((trained_run / "metrics.json").read_text())
    cfg = yaml.safe_load((trained_run / ".hydra" / "config.yaml").read_text())
    per_epoch = math.ceil(m["train"]["n"] / cfg["batch"]["batch_size"])
    assert m["optimizer_steps"] == m["epochs_run"] * per_epoch > 0
    assert m["git_revision"] == git_revision() != ""
