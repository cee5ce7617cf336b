"""The plan report on hand-built sweeps: the phases in chain order, the path from the original
baseline to the best configuration, the success criteria, links, and a self-contained page."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fusion_tuner.report import main as report_main
from fusion_tuner.sweeps.plan_report import build_report
from fusion_tuner.sweeps.report import write_summary
from tests.unit.test_sweep_summary import fake_run, fixed_design

LR = {"scheduler": {"learning_rate": 0.001}}


def with_history(run_dir: Path, val: float) -> Path:
    rows = ["epoch,train_loss,train_mae,val_loss,val_mae"]
    rows += [
        f"{e},{1 / e:.4f},{val * (1 + 1 / e) / 1.5:.4f},{1.2 / e:.4f},{val * (1 + 1 / e):.4f}"
        for e in range(1, 6)
    ]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")
    return run_dir


def plan_sweeps(root: Path) -> tuple[Path, Path]:
    """outputs/multirun/phase1/<t> (e06 wins) and phase2/<t> chained from it (e03 unclear)."""
    phase1 = root / "phase1" / "2026-01-01_00-00-00"
    fixed_design(phase1, 3)
    for seed, (b, e) in enumerate([(1.0, 0.80), (1.02, 0.81), (0.98, 0.79)], start=1):
        with_history(fake_run(phase1, "baseline", seed, b, config=LR), b)
        cfg = {"scheduler": {"learning_rate": 0.0005}}
        with_history(fake_run(phase1, "e06_lower_lr", seed, e, config=cfg), e)
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
        with_history(fake_run(phase2, "baseline", seed, b, config=common), b)
        cfg = common | {"fusion": {"middle_fusion_layers": "2,3"}}
        with_history(fake_run(phase2, "e03_two_layer_fusion", seed, e, config=cfg), e)
    write_summary(phase2)
    return phase1, phase2


def test_the_report_follows_the_chain_and_checks_the_criteria(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    phase1, phase2 = plan_sweeps(root)
    numbers = build_report([root])
    out = root / "plan_report"
    assert numbers["out"] == str(out)
    assert [s["label"] for s in numbers["sweeps"]] == [
        "phase1/2026-01-01_00-00-00",
        "phase2/2026-01-02_00-00-00",
    ]
    path = numbers["path"]
    assert [(p["experiment"], Path(p["sweep"])) for p in path] == [
        ("baseline", phase1.resolve()),
        ("e06_lower_lr", phase1.resolve()),
        ("baseline", phase2.resolve()),  # phase 2 had no winner: the configuration is kept
    ]
    assert "no ✅ winner, configuration kept" in path[2]["label"]
    assert path[1]["overrides"] == {"scheduler.learning_rate": 0.0005}
    crit = {c["criterion"]: c for c in numbers["criteria"]}
    val = crit["validation MAE lower"]
    assert val["met"] is True and "paired t, 3 / 3 seeds" in val["value"]
    assert crit["train–validation gap ratio"]["met"] is True
    for stage in ("text_fine", "text_final", "fused"):
        assert crit[f"CKA {stage}"]["met"] is None
        assert "no best_model.pt" in crit[f"CKA {stage}"]["status"]
    md = (out / "report.md").read_text()
    assert "## From the original baseline to the best configuration" in md
    assert "`scheduler.learning_rate=0.0005`" in md
    assert "| validation MAE lower | 95% interval of Δ below 0 |" in md
    # the plan's absolute targets cannot be band-gap MAE in eV: the report says so
    assert "absolute targets (validation MAE from ~10 to ~8" in md
    assert "their units need checking" in md
    # every figure and link of the Markdown twin resolves from the report's folder
    targets = re.findall(r"\]\(([^)]+)\)", md)
    assert any(t.endswith("curves.png") for t in targets)
    assert any(t.endswith("e06_lower_lr-seed2/metrics.json") for t in targets)
    for t in targets:
        assert (out / t).exists(), t
    assert json.loads((out / "report.json").read_text())["criteria"][0]["met"] is True


def test_the_html_page_is_self_contained(tmp_path: Path) -> None:
    plan_sweeps(tmp_path / "multirun")
    build_report([tmp_path / "multirun"], out=tmp_path / "r", cka=False)
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 3  # curves + one summary figure per sweep
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page
    assert "CKA skipped (--no-cka)" in page


def test_report_cli(tmp_path: Path, capsys) -> None:
    phase1, _ = plan_sweeps(tmp_path / "multirun")
    assert report_main([str(phase1), "--out", str(tmp_path / "one"), "--no-cka"]) == 0
    out = capsys.readouterr().out
    assert "validation MAE lower" in out and "report.html" in out
    assert (tmp_path / "one" / "report.md").is_file()
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no sweep directory" in capsys.readouterr().err


# The drill's hostile strings: an experiment name, a renamed run directory, a status.
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


def test_hostile_names_and_statuses_give_no_script_or_links_that_run_script(
    tmp_path: Path,
) -> None:
    sweep = hostile_sweep(tmp_path / "multirun")
    write_summary(sweep)
    build_report([tmp_path / "multirun"], out=tmp_path / "r", cka=False)
    page = (tmp_path / "r" / "report.html").read_text()
    assert_inert(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, not dropped
    run_link = re.search(r'<a href="([^"]*)">baseline-seed2\]\(javascript', page)
    assert run_link is not None
    assert "%5D%28javascript%3Aalert%604%60%29%5Bx" in run_link.group(1)  # the renamed folder
    for md, links in ((tmp_path / "r" / "report.md", True), (sweep / "summary.md", False)):
        text = md.read_text()
        assert not re.search(r"(?<!\\)<(script|img)", text)  # only as escaped text
        assert_inert(rendered(text), links)
    assert EVIL_STATUS not in (sweep / "summary.md").read_text()  # escaped, not raw


def test_only_relative_and_http_links_are_live() -> None:
    from fusion_tuner.document import inline_html
    from fusion_tuner.markdown import safe_href, safe_inline

    for bad in (
        "javascript:alert(1)",
        "JaVaScRiPt:x",
        "data:text/html,x",
        "//evil.example/x",
        "vbscript:x",
        "file:///etc/passwd",
        "&#106;avascript:alert(1)",
        " http://x",
    ):
        assert not safe_href(bad), bad
        assert "<a " not in inline_html(f"[x]({bad})")
        assert "](" not in safe_inline(f"[x]({bad})").replace("\\](", "")
    for good in ("summary.md", "../run/train.log", "http://example.org/a", "https://x.org/?a=1"):
        assert safe_href(good) and f'href="{good}"' in inline_html(f"[x]({good})")


def test_the_criterion_reads_the_confirmation_runs_and_an_unconfirmed_winner_is_no_step(
    tmp_path: Path,
) -> None:
    from tests.unit.test_sweep_summary import _winning_sweep

    confirmed = tmp_path / "a" / "phase1" / "t"
    # e06 wins the selection by 20%; on fresh seeds it is 10% lower
    _winning_sweep(confirmed, [(1.0, 0.9), (0.95, 0.86), (1.05, 0.94)])
    for run in confirmed.iterdir():
        if run.is_dir():
            with_history(run, json.loads((run / "metrics.json").read_text())["val"]["mae"])
    numbers = build_report([tmp_path / "a"], cka=False)
    assert [p["experiment"] for p in numbers["path"]] == ["baseline", "e06_lower_lr"]
    val = {c["criterion"]: c for c in numbers["criteria"]}["validation MAE lower"]
    assert "on the confirmation runs (seeds 1001, 1002, 1003)" in val["value"]
    assert "Δ -0.1 (-10.0%)" in val["value"] and val["met"] is True
    assert "test MAE 0.99 against 1.1" in val["value"]

    pending = tmp_path / "b" / "phase1" / "t"
    _winning_sweep(pending, None)  # no confirmation runs yet
    for run in pending.iterdir():
        if run.is_dir():
            with_history(run, json.loads((run / "metrics.json").read_text())["val"]["mae"])
    numbers = build_report([tmp_path / "b"], cka=False)
    assert [p["experiment"] for p in numbers["path"]] == ["baseline"]
