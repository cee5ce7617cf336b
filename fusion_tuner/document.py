"""A small report document rendered twice: Markdown (figures as files beside it) and one
self-contained HTML page (figures as base64 PNG data URIs, inline CSS, no script, nothing
fetched), readable in a browser offline.

Text in paragraphs, bullets and table cells may use three inline forms, in both renderings:
code in single backticks, ``**bold**`` and links ``[text](href)``; everything else is
escaped in HTML.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_tuner.markdown import fmt

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
"""

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    """Escape ``text`` for HTML, keeping `code`, **bold** and [links](href)."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        code, bold, label, href = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{html.escape(bold)}</strong>")
        else:
            out.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def link(label: str, target: Path, out_dir: Path) -> str:
    """An inline link to ``target``, relative to the folder the document is written to."""
    rel = Path(os.path.relpath(Path(target).resolve(), Path(out_dir).resolve())).as_posix()
    return f"[{label}]({rel})"


def _cell(v: Any) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


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

    def image(self, path: Path, alt: str) -> None:
        """A PNG file (must exist when rendering)."""
        self.blocks.append(("image", (Path(path), alt)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def markdown(self, out_dir: Path) -> str:
        """Markdown; images are linked relative to ``out_dir``."""
        lines = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                lines += [f"{'#' * level} {text}", ""]
            elif kind == "paragraph":
                lines += [value, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                header, rows = value
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
                lines.append("")
            elif kind == "image":
                path, alt = value
                rel = Path(os.path.relpath(path.resolve(), Path(out_dir).resolve())).as_posix()
                lines += [f"![{alt}]({rel})", ""]
            elif kind == "code":
                lines += ["```text", value, "```", ""]
        return "\n".join(lines)

    def html(self) -> str:
        """One self-contained HTML page."""
        body = [f"<h1>{inline_html(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                body.append(f"<h{level}>{inline_html(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{inline_html(value)}</p>")
            elif kind == "bullets":
                items = "".join(f"<li>{inline_html(i)}</li>" for i in value)
                body.append(f"<ul>{items}</ul>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{inline_html(h)}</th>" for h in header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{inline_html(fmt(c))}</td>" for c in row) + "</tr>"
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
