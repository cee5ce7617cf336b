"""Sweep directories built by hand (no training): runs with the files the summary and the plan
report read, designs, histories, and a chained pair of phases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from fusion_tuner.sweeps.summary_files import write_summary


def fake_run(
    sweep: Path,
    exp: str,
    seed: int,
    val: float | None,
    status: str = "completed",
    config: dict | None = None,
    error: str | None = None,
    gap: float = 1.5,
    can_fire: bool = True,
) -> Path:
    d = sweep / f"{exp}-seed{seed}"
    (d / ".hydra").mkdir(parents=True)
    cfg = {"experiment_name": exp, "random_seed": seed, "regularization": {"graph_dropout": 0.15}}
    cfg.update(config or {})
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"experiment={exp}", f"random_seed={seed}"])
    )
    metrics = {"status": status, "experiment": exp, "seed": seed}
    if status == "completed":
        metrics |= {
            "best_epoch": 5,
            "epochs_run": 9,
            "stop_reason": "early_stopping",
            "early_stopping_can_fire": can_fire,
            "gap_ratio": gap,
            "train": {"mae": val / gap, "rmse": 1, "r2": 0.9, "n": 80},
            "val": {"mae": val, "rmse": 1, "r2": 0.8, "n": 10},
            "test": {"mae": val * 1.1, "rmse": 1, "r2": 0.7, "n": 10},
        }
    if error:
        metrics["error"] = error
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def fixed_design(sweep: Path, seeds: int, jobs: list | None = None, confirm: int = 0) -> None:
    """Record a fixed design of ``seeds`` seeds per arm (one look) in the sweep's plan, as the
    rounds sweeper does for a grid that takes no rounds (``confirm``: sweep.confirm_seeds)."""
    sweep.mkdir(parents=True, exist_ok=True)
    design = {"initial_seeds": seeds, "seeds_per_round": 2, "max_seeds": seeds}
    (sweep / "sweep_plan.json").write_text(
        json.dumps({"jobs": jobs or [], "design": design, "confirm_seeds": confirm})
    )


def patch_metrics(run_dir: Path, **changes) -> None:
    m = json.loads((run_dir / "metrics.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            m[key] = m.get(key, {}) | value
        else:
            m[key] = value
    (run_dir / "metrics.json").write_text(json.dumps(m))


def winning_sweep(sweep: Path, confirm: list[tuple[float, float]] | None) -> None:
    """e06 wins the selection (seeds 1-3); ``confirm``: (baseline, e06) on seeds 1001, ..."""
    fixed_design(sweep, 3, confirm=3)
    for seed, (b, e) in enumerate([(1.0, 0.80), (1.02, 0.81), (0.98, 0.79)], start=1):
        fake_run(sweep, "baseline", seed, b, config={"scheduler": {"learning_rate": 0.001}})
        fake_run(sweep, "e06_lower_lr", seed, e, config={"scheduler": {"learning_rate": 0.0005}})
    for seed, (b, e) in enumerate(confirm or [], start=1001):
        fake_run(sweep, "baseline", seed, b, config={"scheduler": {"learning_rate": 0.001}})
        fake_run(sweep, "e06_lower_lr", seed, e, config={"scheduler": {"learning_rate": 0.0005}})


LR = {"scheduler": {"learning_rate": 0.001}}


def with_history(run_dir: Path, val: float) -> Path:
    rows = ["epoch,train_loss,train_mae,val_loss,val_mae"]
    rows += [
        f"{e},{1 / e:.4f},{val * (1 + 1 / e) / 1.5:.4f},{1.2 / e:.4f},{val * (1 + 1 / e):.4f}"
        for e in range(1, 6)
    ]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")
    return run_dir


def with_predictions(run_dir: Path, error: float) -> Path:
    """A ``predictions_test.csv`` of four crystals, each predicted ``error`` above its target."""
    rows = ["id,target,prediction"]
    rows += [f"c{i},{t},{t + error}" for i, t in enumerate((0.5, 1.0, 1.5, 2.0))]
    (run_dir / "predictions_test.csv").write_text("\n".join(rows) + "\n")
    return run_dir


def plan_sweeps(root: Path) -> tuple[Path, Path]:
    """outputs/multirun/phase1/<t> (e06 wins) and phase2/<t> chained from it (e03 unclear)."""
    phase1 = root / "phase1" / "2026-01-01_00-00-00"
    fixed_design(phase1, 3)
    for seed, (b, e) in enumerate([(1.0, 0.80), (1.02, 0.81), (0.98, 0.79)], start=1):
        with_predictions(with_history(fake_run(phase1, "baseline", seed, b, config=LR), b), b)
        cfg = {"scheduler": {"learning_rate": 0.0005}}
        with_predictions(with_history(fake_run(phase1, "e06_lower_lr", seed, e, config=cfg), e), e)
    write_summary(phase1)
    record = {
        "sweep": str(phase1.resolve()),
        "winner": "e06_lower_lr",
        "overrides": {"scheduler.learning_rate": 0.0005},
        "superseded": [],
    }
    phase2 = root / "phase2" / "2026-01-02_00-00-00"
    fixed_design(phase2, 3)
    common = {"base": record, "scheduler": {"learning_rate": 0.0005}}
    for seed, (b, e) in enumerate([(0.80, 0.70), (0.81, 0.95), (0.79, 0.77)], start=1):
        with_predictions(with_history(fake_run(phase2, "baseline", seed, b, config=common), b), b)
        cfg = common | {"fusion": {"middle_fusion_layers": "2,3"}}
        with_history(fake_run(phase2, "e03_two_layer_fusion", seed, e, config=cfg), e)
    write_summary(phase2)
    return phase1, phase2


# The fault drill's hostile strings: an experiment name, a renamed run directory, a status.
EVIL_NAME = "<script>alert(1)</script><img src=x onerror=alert(2)>[click](javascript:alert`3`)"
EVIL_DIR = "baseline-seed2](javascript:alert`4`)[x"
EVIL_STATUS = "[x](javascript:alert`9`)"


def hostile_sweep(root: Path) -> Path:
    sweep = root / "phase1" / "2026-01-01_00-00-00"
    for seed, (b, e) in enumerate([(1.0, 0.8), (1.02, 0.81)], start=1):
        with_history(fake_run(sweep, "baseline", seed, b), b)
        with_history(fake_run(sweep, "e06", seed, e, config={"experiment_name": EVIL_NAME}), e)
    (sweep / "baseline-seed2").rename(sweep / EVIL_DIR)
    fake_run(sweep, "baseline", 3, None, status=EVIL_STATUS)
    return sweep


def rendered(markdown: str) -> str:
    """What a Markdown viewer shows: CommonMark with raw HTML on and every link allowed (so that
    the test sees what the file itself lets through, not what this renderer would block)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True
    return md.render(markdown)


def assert_inert(page: str, links: bool = True) -> None:
    low = page.lower()
    assert "<script" not in low and "onerror" not in low.replace("onerror=alert(2)&gt;", "")
    assert not re.search(r"<img(?![^>]*src=\"(data:image/png;base64,|[\w./%-]+\.png\"))", low)
    targets = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert targets or not links, "the page should link to the runs' files"
    for t in targets:
        assert re.match(r"(https?://|data:image/png;base64,|[^:/?#]*(?:[/?#]|$))", t), t
