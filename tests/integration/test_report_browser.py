"""The plan report renders in headless Chromium (Debian's ``chromium``) without console errors
and with every figure decoded.

Skips when no Chromium is installed, unless ``FUSION_TUNER_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which installs it), where a missing browser fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from fusion_tuner.sweeps.plan_report import build_report
from tests.helpers.sweeps import plan_sweeps

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


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("FUSION_TUNER_REQUIRE_BROWSER") == "1":
        pytest.fail(
            "FUSION_TUNER_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
        )
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")


def render(browser: str, page: Path, profile: Path) -> tuple[str, str]:
    """(the DOM after load, the browser's log) of ``page`` in headless Chromium."""
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout, out.stderr


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
    assert check["images"] == 3 and check["broken"] == 0
    assert check["errors"] == []
    assert check["tables"] >= 5  # path, criteria, and per sweep decisions + runs
