"""`report.html`: one self-contained page. plotly.js is inlined once in the head, so the page
works offline, from a downloaded artifact or a file share, with no network fetch."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from ..secrets import redact

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 2px 10px; text-align: left; }
th { background: #f3f3f3; } .note { color: #a33; } .muted { color: #666; }
"""


@dataclass
class Section:
    title: str
    figures: list = field(default_factory=list)  # plotly figures
    note: str | None = None  # why the section has no chart: it could not be drawn
    pending: str | None = None  # why the section has no chart yet: what it waits for


def figure_html(figure) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def write_page(path: Path, title: str, summary: list[tuple[str, str]], sections: list[Section]) -> Path:
    body = [f"<h1>{html.escape(title)}</h1>", "<table>"]
    body += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary]
    body.append("</table>")
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            body.append(f'<p class="note">{html.escape(section.note)}</p>')
        if section.pending:
            body.append(f'<p class="muted">{html.escape(section.pending)}</p>')
        body += [figure_html(figure) for figure in section.figures]
    head = [
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
    ]
    if any(section.figures for section in sections):
        from plotly.offline import get_plotlyjs

        head.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    text = "<!DOCTYPE html>\n<html><head>{}</head><body>\n{}\n</body></html>\n".format(
        "\n".join(head), redact("\n".join(body))
    )
    path.write_text(text, encoding="utf-8")
    return path
