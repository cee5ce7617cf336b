"""Decisions and criteria of the HTML report are words in coloured badges, never emoji alone, so
the page reads the same on a machine without an emoji font; the Markdown keeps emoji and words."""

from __future__ import annotations

import re
from pathlib import Path

from fusion_tuner.document import Document, badges, inline_html
from fusion_tuner.sweeps.plan_report import build_report
from tests.helpers.sweeps import plan_sweeps

EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]")


def test_phrases_become_word_badges_and_no_glyph_is_left() -> None:
    assert badges("✅ down") == '<span class="badge good">down</span>'
    assert badges("⚠️ unchanged") == '<span class="badge same">unchanged</span>'
    assert badges("❌ not met") == '<span class="badge bad">not met</span>'
    assert badges("— not checked (why)") == '<span class="badge same">not checked</span> (why)'
    assert badges("🚫 learned nothing") == '<span class="badge bad">learned nothing</span>'
    assert badges("no ✅ winner yet") == '<span class="badge same">no winner</span> yet'
    # a glyph outside the known phrases still becomes its meaning in words
    assert badges("⚠️ something") == '<span class="badge warn">warning</span> something'
    # code and link targets keep their text; only text becomes badges
    assert inline_html("`✅ down` ✅ down", True) == (
        '<code>✅ down</code> <span class="badge good">down</span>'
    )
    assert inline_html("✅ down") == "✅ down"  # the plain form is unchanged


def test_the_markdown_keeps_the_words_beside_the_emoji() -> None:
    doc = Document("t")
    doc.table(["decision"], [["✅ down"], ["❓ inconclusive"]])
    md = doc.markdown(Path("."))
    assert "| ✅ down |" in md and "| ❓ inconclusive |" in md
    page = doc.html()
    assert '<td><span class="badge good">down</span></td>' in page
    assert '<td><span class="badge open">inconclusive</span></td>' in page
    assert ".badge.good {" in page  # the colours are inline CSS


def test_the_report_page_has_no_emoji_and_every_decision_in_words(tmp_path: Path) -> None:
    plan_sweeps(tmp_path / "multirun")
    numbers = build_report([tmp_path / "multirun"], out=tmp_path / "r", cka=False)
    page = (tmp_path / "r" / "report.html").read_text()
    assert EMOJI.findall(page) == []
    shown = set(re.findall(r'<span class="badge (\w+)">([^<]*)</span>', page))
    # phase 1: e06 down (the winner); phase 2: e03 inconclusive; criteria met / not checked
    assert {("good", "down"), ("open", "inconclusive"), ("good", "winner")} <= shown
    assert {("good", "met"), ("same", "not checked")} <= shown
    assert numbers["path"][1]["label"] == "phase1/2026-01-01_00-00-00: ✅ winner e06_lower_lr"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "✅ winner e06_lower_lr" in md and "✅ met" in md
