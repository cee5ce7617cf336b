"""The plan report renders in headless Chromium (Debian's ``chromium``) without console errors
and with every figure decoded, and reads the same without an emoji font: Chromium runs with a
fontconfig that holds only the DejaVu fonts, and the DOM shows every decision and criterion as
words, the context header and the training-mean predictor's reference.

Skips when no Chromium is installed, unless ``FUSION_TUNER_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which installs it), where a missing browser fails.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
import yaml

from fusion_tuner.document import BADGES, GLYPH_WORDS
from fusion_tuner.sweeps.plan_report import build_report
from tests.helpers.browser import chromium, dejavu_only, render, screenshot
from tests.helpers.sweeps import patch_metrics, plan_sweeps

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Appended to a copy of the page: after load, records how many images decoded, and any error
# the page raised, in an attribute that --dump-dom shows.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute('data-render-check', JSON.stringify({
    images: imgs.length, broken: broken, errors: window.__errors,
    tables: document.querySelectorAll('table').length,
    title: document.querySelector('h1') ? document.querySelector('h1').textContent : ''}));
});
</script>"""


@pytest.mark.slow
def test_the_plan_report_renders_without_console_errors(tmp_path: Path) -> None:
    browser = chromium()
    plan_sweeps(tmp_path / "multirun")
    build_report([tmp_path / "multirun"], out=tmp_path / "report", cka=False)
    page = tmp_path / "report" / "report.html"
    probed = tmp_path / "report" / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))

    # the page as shipped: nothing at all on the console
    _, log = render(browser, page, tmp_path / "profile1")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console

    dom, log = render(browser, probed, tmp_path / "profile2")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console
    match = re.search(r'data-render-check="([^"]*)"', dom)
    assert match, "the page did not finish loading: " + dom[:500]
    check = json.loads(unescape(match.group(1)))
    assert check["title"] == "Tuning plan report"
    assert check["images"] == 6 and check["broken"] == 0  # path curves, parity; per sweep 2
    assert check["errors"] == []
    assert check["tables"] >= 5  # path, criteria, and per sweep decisions + runs


# Reports, after load: every badge (its words, background colour and size), the cells of the
# decision, status and learned columns, the context header and each table's header row.
WORDS_PROBE = """<script>
window.addEventListener('load', () => {
  const text = e => (e.innerText || '').trim();
  const badges = Array.from(document.querySelectorAll('.badge')).map(b => {
    const r = b.getBoundingClientRect();
    return {text: text(b), background: getComputedStyle(b).backgroundColor,
            width: r.width, height: r.height};
  });
  const columns = {};
  for (const t of document.querySelectorAll('table')) {
    const heads = Array.from(t.querySelectorAll('thead th')).map(text);
    heads.forEach((h, i) => {
      if (['decision', 'status', 'learned?'].includes(h)) {
        for (const row of t.querySelectorAll('tbody tr')) {
          (columns[h] = columns[h] || []).push(text(row.children[i]));
        }
      }
    });
  }
  const header = {};
  for (const dt of document.querySelectorAll('dl.context dt')) {
    header[text(dt)] = text(dt.nextElementSibling);
  }
  document.body.setAttribute('data-words-check', JSON.stringify({
    badges: badges, columns: columns, header: header,
    banners: Array.from(document.querySelectorAll('.banner')).map(text),
    headers: Array.from(document.querySelectorAll('thead tr')).map(text),
    body: document.body.innerText}));
});
</script>"""
EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]")
# the words a badge may carry: every decision and status phrase, and every glyph's meaning
WORDS = {word for _, word, _ in BADGES} | {word for word, _ in GLYPH_WORDS.values()}


def budget_quick(root: Path) -> None:
    """Make every hand-built run a budget=quick run on demo data with its steps recorded."""
    for cfg_file in root.rglob(".hydra/config.yaml"):
        cfg = yaml.safe_load(cfg_file.read_text())
        cfg["dataset"] = {"source": "demo", "target": "synthetic_gap", "demo_size": 300}
        cfg["budget"] = {"name": "quick", "max_epochs": 8, "max_structures": 300}
        cfg_file.write_text(yaml.safe_dump(cfg))
        patch_metrics(
            cfg_file.parent.parent,
            optimizer_steps=72,
            wall_time_s=40.0,
            val={"mean_predictor_mae": 1.6, "skill": 0.4},
            test={"mean_predictor_mae": 1.7, "skill": 0.35},
        )


@pytest.mark.slow
def test_every_decision_reads_as_words_without_an_emoji_font(tmp_path: Path) -> None:
    browser = chromium()
    env = dejavu_only(tmp_path)
    plan_sweeps(tmp_path / "multirun")
    budget_quick(tmp_path / "multirun")
    build_report([tmp_path / "multirun"], out=tmp_path / "report", cka=False)
    page = tmp_path / "report" / "report.html"
    probed = tmp_path / "report" / "words.html"
    probed.write_text(page.read_text().replace("</body>", WORDS_PROBE + "</body>"))
    dom, _ = render(browser, probed, tmp_path / "profile", env)
    # the docs' screenshot comes from this code path (python -m tests.helpers.browser)
    png = screenshot(browser, page, tmp_path / "shot.png", tmp_path / "profile_s", (900, 700), env)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 900 and int.from_bytes(head[20:24], "big") == 700
    match = re.search(r'data-words-check="([^"]*)"', dom)
    assert match, "the page did not finish loading: " + dom[:500]
    check = json.loads(unescape(match.group(1)))

    # no glyph that needs an emoji font is left in the rendered text
    assert EMOJI.findall(check["body"]) == []
    # every badge is a known word, coloured and laid out
    assert check["badges"]
    for b in check["badges"]:
        assert b["text"] in WORDS, b
        assert b["background"] not in ("rgba(0, 0, 0, 0)", "transparent"), b
        assert b["width"] > 5 and b["height"] > 5, b
    # every decision and every criterion's status starts with its words
    decisions = check["columns"]["decision"]
    assert decisions and all(
        d.split()[0] in {"down", "up", "unchanged", "inconclusive", "learned", "n/a"}
        for d in decisions
    ), decisions
    assert {"down", "inconclusive"} <= set(decisions)
    statuses = check["columns"]["status"]
    criteria = [s for s in statuses if s.startswith(("met", "not met", "not checked"))]
    assert len(criteria) == 5, statuses  # validation MAE, gap ratio, three CKA stages
    assert check["columns"]["learned?"] and set(check["columns"]["learned?"]) == {"learned"}
    # the header: data (with the synthetic banner), target, budget (with its banner), steps
    header = check["header"]
    assert header["data"].startswith("demo (synthetic crystals")
    assert header["target"] == "synthetic_gap (eV, synthetic)"
    assert header["budget"] == "quick"
    assert "72 optimizer steps" in header["training"]
    assert header["crystals"] == "train 80 / val 10 / test 10"
    assert any("synthetic demo data" in b for b in check["banners"])
    assert any("pipeline check — budget=quick" in b for b in check["banners"])
    # the training-mean predictor is beside the MAE columns
    assert any("mean predictor val MAE" in h for h in check["headers"]), check["headers"]
    assert "1.6" in check["body"] and "mean predictor test MAE" in check["body"]
