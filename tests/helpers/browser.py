"""Headless Chromium (Debian's ``chromium``) for the report's browser tests, and the same code
path for the report screenshot in the docs::

    python -m tests.helpers.browser REPORT.html OUT.png [--width 1400] [--height 2200] [--from-y Y]

takes the screenshot with the fontconfig of the browser test (DejaVu only, no emoji font), so the
picture shows the page as the test reads it (``--from-y``: keep the part below Y, for a section
further down the page).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# the flags every run of the browser gets: no network, no profile state, no GPU
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
)


def find_chromium() -> str | None:
    """The path of ``chromium`` (or ``chromium-browser``), None when neither is on PATH."""
    return next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser"))), None)


def chromium() -> str:
    """The browser for a test: skips without one unless ``FUSION_TUNER_REQUIRE_BROWSER=1``."""
    found = find_chromium()
    if found:
        return found
    if os.environ.get("FUSION_TUNER_REQUIRE_BROWSER") == "1":
        pytest.fail(
            "FUSION_TUNER_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
        )
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")


def _run(
    browser: str, page: Path, profile: Path, mode: list[str], env: dict[str, str] | None
) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *mode, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    if out.returncode != 0:
        raise AssertionError(out.stderr[-3000:])
    return out


def render(
    browser: str, page: Path, profile: Path, env: dict[str, str] | None = None
) -> tuple[str, str]:
    """(the DOM after load, the browser's log) of ``page`` in headless Chromium."""
    out = _run(browser, page, profile, ["--dump-dom"], env)
    return out.stdout, out.stderr


def screenshot(
    browser: str,
    page: Path,
    png: Path,
    profile: Path,
    size: tuple[int, int] = (1400, 2200),
    env: dict[str, str] | None = None,
) -> Path:
    """A PNG of the top ``size`` (width, height in CSS pixels) of ``page`` after load."""
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.name + ".tmp.png")
    _run(browser, page, profile, [f"--screenshot={tmp}", f"--window-size={size[0]},{size[1]}"], env)
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise AssertionError(f"chromium wrote no screenshot to {tmp}")
    tmp.replace(png)
    return png


def dejavu_fontconfig(folder: Path) -> dict[str, str] | None:
    """An environment whose fontconfig knows only the DejaVu fonts (no emoji font), with its
    files in ``folder``; None when no DejaVu fonts are installed."""
    candidates = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
    dejavu = next((d for d in candidates if d.is_dir()), None)
    if dejavu is None:
        return None
    conf = folder / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        f"  <dir>{dejavu}</dir>\n  <cachedir>{folder / 'fc-cache'}</cachedir>\n"
        "</fontconfig>\n"
    )
    return os.environ | {"FONTCONFIG_FILE": str(conf)}


def dejavu_only(tmp_path: Path) -> dict[str, str]:
    """:func:`dejavu_fontconfig` for a test: skips without the fonts (fails when
    ``FUSION_TUNER_REQUIRE_BROWSER=1``), and checks that the browser's fontconfig sees no emoji
    font."""
    env = dejavu_fontconfig(tmp_path)
    if env is None:
        if os.environ.get("FUSION_TUNER_REQUIRE_BROWSER") == "1":
            pytest.fail("FUSION_TUNER_REQUIRE_BROWSER=1 but no DejaVu fonts (fonts-dejavu-core)")
        pytest.skip("no DejaVu fonts (Debian: apt-get install fonts-dejavu-core)")
    fc_list = shutil.which("fc-list")
    if fc_list:
        fonts = subprocess.run([fc_list], capture_output=True, text=True, env=env).stdout
        assert fonts and "dejavu" in fonts.lower() and "emoji" not in fonts.lower(), fonts
    return env


def _for_docs(shot: Path, png: Path, from_y: int) -> None:
    """``shot`` below ``from_y`` as a 128-colour PNG at ``png`` (a third of the bytes; the
    page's text and figures stay legible), written through a temporary file."""
    from PIL import Image

    with Image.open(shot) as im:
        part = im.convert("RGB").crop((0, from_y, im.width, im.height))
    tmp = png.with_name(png.name + ".tmp.png")
    part.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(tmp, optimize=True)
    tmp.replace(png)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("::")[0].strip())
    ap.add_argument("page", type=Path, help="the report.html to draw")
    ap.add_argument("png", type=Path, help="where to write the screenshot")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2200)
    ap.add_argument("--from-y", type=int, default=0, help="keep the picture below this y")
    args = ap.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("error: no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    if not args.page.is_file():
        print(f"error: {args.page} not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        env = dejavu_fontconfig(Path(tmp))
        shot = Path(tmp) / "shot.png"
        screenshot(browser, args.page, shot, Path(tmp) / "profile", (args.width, args.height), env)
        _for_docs(shot, args.png, args.from_y)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
