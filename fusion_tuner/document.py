"""A small report document rendered twice: Markdown (figures as files beside it) and one
self-contained HTML page (figures as base64 PNG data URIs, inline CSS, no script, nothing
fetched), readable in a browser offline.

Text in paragraphs, bullets and table cells may use four inline forms, in both renderings:
code in single backticks, ``**bold**``, backslash escapes and links ``[text](href)`` whose
target is relative or http(s); everything else is literal text (escaped in both renderings).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fusion_tuner.markdown import INLINE, fmt, md_escape, safe_href, safe_inline

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.25em; border-radius: 3px; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.banner { background: #fff4d6; border-left: 6px solid #c77700; padding: 0.5em 0.8em;
          font-weight: 600; }
dl.context { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.context dt { font-weight: 600; } dl.context dd { margin: 0; }
.badge { display: inline-block; padding: 0 0.45em; border-radius: 0.6em; font-weight: 600;
         font-size: 0.92em; white-space: nowrap; border: 1px solid; }
.badge.good { background: #dff3e3; color: #0b5d1e; border-color: #7cc48f; }
.badge.bad { background: #fbe0e0; color: #8a1010; border-color: #e08a8a; }
.badge.same { background: #ececec; color: #333; border-color: #aaa; }
.badge.open { background: #fff0d4; color: #7a4a00; border-color: #e5b35c; }
.badge.warn { background: #fff7c2; color: #6b5200; border-color: #d9c25a; }
"""


# Decisions and statuses as the Markdown writes them (emoji and words) -> a coloured badge with
# the words only, so the page reads the same without an emoji font; longest phrases first.
BADGES = (
    ("🚫 learned nothing", "learned nothing", "bad"),
    ("🚫 not compared", "not compared", "bad"),
    ("LEARNED NOTHING", "LEARNED NOTHING", "bad"),
    ("❓ inconclusive", "inconclusive", "open"),
    ("⚠️ unchanged", "unchanged", "same"),
    ("⚠️ sign differs", "sign differs", "warn"),
    ("❌ not met", "not met", "bad"),
    ("— not checked", "not checked", "same"),
    ("no ✅ winner", "no winner", "same"),
    ("✅ winner", "winner", "good"),
    ("✅ down", "down", "good"),
    ("✅ met", "met", "good"),
    ("❌ up", "up", "bad"),
)
# Any other of these glyphs (e.g. in a rule sentence): a badge with its meaning in words.
GLYPH_WORDS = {
    "⚠️": ("warning", "warn"),
    "✅": ("yes", "good"),
    "❌": ("no", "bad"),
    "❓": ("open", "open"),
    "🚫": ("not compared", "bad"),
    "⚠": ("warning", "warn"),
}


def _badge(word: str, kind: str) -> str:
    return f'<span class="badge {kind}">{html.escape(word)}</span>'


def badges(escaped: str) -> str:
    """Replace the decision phrases and glyphs of already-escaped text by word badges."""
    for phrase, word, kind in BADGES:
        escaped = escaped.replace(html.escape(phrase), _badge(word, kind))
    for glyph, (word, kind) in GLYPH_WORDS.items():
        escaped = escaped.replace(glyph, _badge(word, kind))
    return escaped


def inline_html(text: str, with_badges: bool = False) -> str:
    """Escape ``text`` for HTML, keeping `code`, **bold**, backslash escapes and [links](href)
    whose target is relative or http(s) (any other link is shown as text); ``with_badges``:
    decisions in text (never in code or link targets) become word badges (:func:`badges`)."""

    def plain(t: str) -> str:
        return badges(html.escape(t)) if with_badges else html.escape(t)

    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(plain(text[pos : m.start()]))
        esc, code, bold, label, href = m.groups()
        if esc is not None:
            out.append(plain(esc))
        elif code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline_html(bold, with_badges)}</strong>")
        elif safe_href(href):
            out.append(
                f'<a href="{html.escape(href, quote=True)}">{inline_html(label, with_badges)}</a>'
            )
        else:
            out.append(f"[{inline_html(label, with_badges)}]({html.escape(href)})")
        pos = m.end()
    out.append(plain(text[pos:]))
    return "".join(out)


def link(label: str, target: Path, out_dir: Path) -> str:
    """An inline link to ``target``, relative to the folder the document is written to (the
    label is literal text; the path is percent-encoded, whatever its folders are called)."""
    rel = Path(os.path.relpath(Path(target).resolve(), Path(out_dir).resolve())).as_posix()
    return f"[{md_escape(label)}]({quote(rel)})"


def _cell(v: Any) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


def _longest_backtick_run(text: str) -> int:
    longest = current = 0
    for ch in text:
        current = current + 1 if ch == "`" else 0
        longest = max(longest, current)
    return longest


@dataclass
class Document:
    """Blocks in order; :meth:`markdown` and :meth:`html` render them."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def banner(self, text: str) -> None:
        """A warning that changes what the numbers mean (bold in Markdown, boxed in HTML)."""
        self.blocks.append(("banner", text))

    def fields(self, items: Sequence[tuple[str, str]]) -> None:
        """Label–value lines (a bullet list in Markdown, a definition list in HTML)."""
        self.blocks.append(("fields", [(str(k), str(v)) for k, v in items]))

    def image(self, path: Path, alt: str) -> None:
        """A PNG file (must exist when rendering)."""
        self.blocks.append(("image", (Path(path), alt)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def markdown(self, out_dir: Path) -> str:
        """Markdown; images are linked relative to ``out_dir``. Text keeps only the inline forms
        of the module docstring, with relative or http(s) links (see
        :func:`fusion_tuner.markdown.safe_inline`): no HTML and no other link gets through."""
        lines = [f"# {safe_inline(self.title)}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                lines += [f"{'#' * level} {safe_inline(text)}", ""]
            elif kind == "paragraph":
                lines += ["\n".join(safe_inline(line) for line in value.splitlines()), ""]
            elif kind == "bullets":
                lines += [f"- {safe_inline(' '.join(item.splitlines()))}" for item in value]
                lines.append("")
            elif kind == "banner":
                lines += [f"**{safe_inline(' '.join(value.splitlines()))}**", ""]
            elif kind == "fields":
                lines += [
                    f"- {safe_inline(k)}: {safe_inline(' '.join(v.splitlines()))}" for k, v in value
                ]
                lines.append("")
            elif kind == "table":
                header, rows = value
                lines.append("| " + " | ".join(safe_inline(_cell(h)) for h in header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += [
                    "| " + " | ".join(safe_inline(_cell(c)) for c in row) + " |" for row in rows
                ]
                lines.append("")
            elif kind == "image":
                path, alt = value
                rel = Path(os.path.relpath(path.resolve(), Path(out_dir).resolve())).as_posix()
                lines += [f"![{md_escape(alt)}]({quote(rel)})", ""]
            elif kind == "code":
                fence = "`" * max(3, _longest_backtick_run(value) + 1)
                lines += [f"{fence}text", value, fence, ""]
        return "\n".join(lines)

    def html(self) -> str:
        """One self-contained HTML page."""
        body = [f"<h1>{inline_html(self.title, True)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                body.append(f"<h{level}>{inline_html(text, True)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{inline_html(value, True)}</p>")
            elif kind == "bullets":
                items = "".join(f"<li>{inline_html(i, True)}</li>" for i in value)
                body.append(f"<ul>{items}</ul>")
            elif kind == "banner":
                body.append(f'<p class="banner" role="note">{inline_html(value, True)}</p>')
            elif kind == "fields":
                items = "".join(
                    f"<dt>{inline_html(k, True)}</dt><dd>{inline_html(v, True)}</dd>"
                    for k, v in value
                )
                body.append(f'<dl class="context">{items}</dl>')
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{inline_html(h, True)}</th>" for h in header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{inline_html(fmt(c), True)}</td>" for c in row) + "</tr>"
                    for row in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "image":
                path, alt = value
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" '
                    f'alt="{html.escape(alt, quote=True)}"></figure>'
                )
            elif kind == "code":
                body.append(f"<pre>{html.escape(value)}</pre>")
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n"
            "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
        )
