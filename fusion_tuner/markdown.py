"""Numbers and tables as text: what every report, summary and console table uses."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any


def fmt(v: Any, digits: int = 4, missing: str = "—") -> str:
    """A number with ``digits`` significant digits; ``missing`` for None or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], missing: str = "—") -> str:
    """A Markdown table (also readable in a terminal); cells pass through :func:`fmt`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c, missing) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(v: Any, missing: str) -> str:
    """A table cell: one line, and a ``|`` of the value does not end the cell."""
    return " ".join(fmt(v, missing=missing).replace("|", "\\|").splitlines())


def plain(text: str) -> str:
    """A docstring paragraph as terminal text (``--help``): no reStructuredText markup."""
    return " ".join(text.replace("``", "").split())


# ------------------------------------------------------------------ safe Markdown and links
# The inline forms every report writes (and the only ones :func:`safe_markdown` lets through):
# a backslash escape, `code`, **bold** and [text](href).
INLINE = re.compile(
    r"\\([!-/:-@\[-`{-~])|`([^`]+)`|\*\*([^*]+)\*\*|\[((?:\\.|[^\]\\])+)\]\(([^)\s]+)\)"
)
SAFE_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# in plain text: what could start markup a reader's renderer acts on (HTML, links, code spans)
_PLAIN_SPECIAL = re.compile(r"([\\`\[\]<])")


def safe_href(href: str) -> bool:
    """True for a link target a report may contain: a relative path or an http(s) URL (never
    ``javascript:``, ``data:``, ``file:``, a protocol-relative ``//host`` or control characters)."""
    if not href or href != href.strip() or any(ord(c) < 32 or c in '\\"<>' for c in href):
        return False
    if href.startswith("//"):
        return False
    scheme = _SCHEME.match(href)
    if scheme:
        return scheme.group(1).lower() in SAFE_SCHEMES
    # relative: no scheme-like prefix, and no character entity a renderer could decode into one
    return ":" not in re.split(r"[/?#]", href, maxsplit=1)[0] and "&" not in href


def md_escape(text: str) -> str:
    """``text`` as literal Markdown text (for names and values a report did not choose)."""
    return _PLAIN_SPECIAL.sub(r"\\\1", str(text))


def _href_markdown(href: str) -> str:
    """A checked link target, percent-encoded so that no renderer reads it differently."""
    from urllib.parse import quote

    return quote(href, safe="/:?#=%~-._+,@!$;*'&")


def safe_inline(text: str) -> str:
    """One line of Markdown with only the :data:`INLINE` forms live and only
    :func:`safe_href` links: any other HTML, link or code-span syntax becomes literal text."""
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(md_escape(text[pos : m.start()]))
        esc, code, bold, label, href = m.groups()
        if esc is not None or code is not None:
            out.append(m.group(0))
        elif bold is not None:
            out.append(f"**{safe_inline(bold)}**")
        elif safe_href(href):
            out.append(f"[{safe_inline(label)}]({_href_markdown(href)})")
        else:
            out.append(f"\\[{safe_inline(label)}\\]({md_escape(href)})")
        pos = m.end()
    out.append(md_escape(text[pos:]))
    return "".join(out)


def safe_markdown(text: str) -> str:
    """A whole Markdown document made safe to open in any renderer: :func:`safe_inline` on every
    line outside fenced code blocks (which are literal anyway)."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
            lines.append(line)
        else:
            lines.append(line if fenced else safe_inline(line))
    return "\n".join(lines)
