"""The plan report on hand-built sweeps: the phases in chain order, the path from the original
baseline to the best configuration, the success criteria, links, and a self-contained page."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fusion_tuner.cli.report import main as report_main
from fusion_tuner.sweeps.plan_report import build_report
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.sweeps import (
    EVIL_STATUS,
    assert_inert,
    hostile_sweep,
    plan_sweeps,
    rendered,
    with_history,
)
from tests.helpers.sweeps import winning_sweep as _winning_sweep


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
    assert len(srcs) == 6  # the path's curves and parity + per sweep its summary and curves
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page
    assert "CKA skipped (--no-cka)" in page


def test_report_cli(tmp_path: Path, capsys) -> None:
    phase1, _ = plan_sweeps(tmp_path / "multirun")
    assert report_main([str(phase1), "--out", str(tmp_path / "one"), "--no-cka"]) == 0
    out = capsys.readouterr().out
    assert "validation MAE lower" in out and "report.html" in out
    assert out.rstrip().endswith("(1 sweep)")  # not "(1 sweeps)"
    assert (tmp_path / "one" / "report.md").is_file()
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no sweep directory" in capsys.readouterr().err


# The drill's hostile strings: an experiment name, a renamed run directory, a status.


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
