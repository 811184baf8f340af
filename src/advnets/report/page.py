"""The report's page model and its two renderings: sections of text, figures, preformatted
text and tables, written as one self-contained HTML file (images as ``data:`` URIs, an inline
style sheet, nothing fetched) and as Markdown whose images are PNG files beside it."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


@dataclass
class Figure:
    """One PNG with what a reader needs to know about it."""

    name: str  # file name in report_files/, also the HTML id
    png: bytes
    alt: str
    caption: str
    pixelated: bool = False  # an image grid (scale without smoothing), not a plot


@dataclass
class Section:
    """A heading and its content: paragraphs, figures, preformatted text and tables, in order."""

    title: str
    anchor: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, s: str) -> None:
        self.blocks.append(("p", s))

    def figure(self, fig: Figure) -> None:
        self.blocks.append(("figure", fig))

    def pre(self, s: str) -> None:
        self.blocks.append(("pre", s))

    def table(self, header: list[str], rows: list[list[str]], numbers: bool = False) -> None:
        """``numbers``: right-align the cells that are numbers (a table of measurements)."""
        self.blocks.append(("table", (header, rows, numbers)))


# ---------------------------------------------------------------------------- rendering

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 1.5em; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.7em; overflow-x: auto; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure img.grid { image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #555; max-width: 720px; }
nav a { margin-right: 0.8em; }
"""


def _inline_code(text: str) -> str:
    """HTML-escaped ``text`` with `backquoted` spans as <code>."""
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def render_html(sections: list[Section], meta: dict[str, Any]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(meta['title'])}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{e(meta['title'])}</h1>",
        "<table>",
        *(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta["facts"]),
        "</table>",
        "<nav>" + "".join(f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in sections) + "</nav>",
    ]
    for sec in sections:
        out.append(f'<section id="{sec.anchor}">')
        out.append(f"<h2>{e(sec.title)}</h2>")
        for kind, block in sec.blocks:
            if kind == "p":
                out.append(f"<p>{_inline_code(block)}</p>")
            elif kind == "pre":
                out.append(f"<pre>{e(block)}</pre>")
            elif kind == "table":
                header, rows, numbers = block
                if any(header):
                    out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
                else:
                    out.append("<table>")
                for row in rows:
                    cells = [f"<th>{e(row[0])}</th>" if not any(header) else f"<td>{e(row[0])}</td>"]
                    cells += [
                        f'<td class="num">{e(c)}</td>' if numbers and _numeric(c) else f"<td>{e(c)}</td>"
                        for c in row[1:]
                    ]
                    out.append("<tr>" + "".join(cells) + "</tr>")
                out.append("</table>")
            else:
                fig: Figure = block
                uri = "data:image/png;base64," + base64.b64encode(fig.png).decode("ascii")
                cls = ' class="grid"' if fig.pixelated else ""
                out.append(
                    f'<figure id="{e(fig.name.removesuffix(".png"))}"><img{cls} src="{uri}" alt="{e(fig.alt)}">'
                    f"<figcaption>{_inline_code(fig.caption)}</figcaption></figure>"
                )
        out.append("</section>")
    out += ["</main>", "</body>", "</html>", ""]
    return "\n".join(out)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    """Markdown-safe prose: escape the characters that would start markup, keep `code` spans."""
    parts = text.split("`")
    return "".join(f"`{p}`" if i % 2 else re.sub(r"([\\*_\[\]<])", r"\\\1", p) for i, p in enumerate(parts))


def render_markdown(sections: list[Section], meta: dict[str, Any], files_dir: str) -> str:
    out = [f"# {_md_text(meta['title'])}", "", "| | |", "|---|---|"]
    out += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in meta["facts"]]
    out.append("")
    for sec in sections:
        out += [f"## {_md_text(sec.title)}", ""]
        for kind, block in sec.blocks:
            if kind == "p":
                out += [_md_text(block), ""]
            elif kind == "pre":
                out += ["```", block, "```", ""]
            elif kind == "table":
                header, rows, _ = block
                out.append("| " + " | ".join(_md_cell(h) or " " for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            else:
                fig: Figure = block
                alt = fig.alt.replace("[", "(").replace("]", ")")
                # URL-encoded: a space, '#', '%' or 'ü' in the report's name would break the link (CommonMark).
                target = f"{quote(files_dir)}/{quote(fig.name)}"
                out += [f"![{alt}]({target})", "", f"*{_md_text(fig.caption)}*", ""]
    return "\n".join(out)
