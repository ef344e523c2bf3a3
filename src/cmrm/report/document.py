"""The one report writer: a :class:`Document` of blocks, rendered to Markdown, HTML or plain text.

Every report cmrm writes (``cmrm report``'s run report, ``cmrm demo``'s ``report.md``,
``cmrm organism eval``'s table) is built from these blocks and rendered here, so escaping, table
layout and atomic writing are decided in one place:

- :class:`Text` and :class:`Bullets` are prose written by cmrm (they may use ``*emphasis*``,
  ``**strong**``, ``code`` in backticks, links and images); never data, not escaped in Markdown;
- everything else (:class:`Table` cells, :class:`Fields`, titles, figure alt text) may come from
  a run (prompts, completions, benchmark names) and is HTML-escaped, in the
  Markdown too (Markdown viewers render raw HTML); a ``|`` in a table cell is escaped;
- :class:`Preformatted` text is shown verbatim (escaped in HTML).

Figures are PNG files next to the report; Markdown links them by relative path, HTML embeds them
as base64 so the page stands alone.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..base.atomic import atomic_write

Align = Literal["left", "right"]


@dataclass(frozen=True)
class Text:
    """A paragraph of trusted Markdown written by cmrm (never data)."""

    markdown: str


@dataclass(frozen=True)
class Table:
    """A table of data cells; ``align`` (one per column) right-aligns numeric columns."""

    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[Align, ...] | None = None

    def __post_init__(self) -> None:
        widths = {len(self.head), *(len(row) for row in self.rows)}
        if self.align is not None:
            widths.add(len(self.align))
        if len(widths) != 1:
            raise ValueError(f"table rows, head and align differ in length: {sorted(widths)}")


@dataclass(frozen=True)
class Figure:
    """A PNG file shown with its alternative text."""

    path: Path
    alt: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of trusted Markdown items written by cmrm (data goes in :class:`Fields`)."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Fields:
    """``key: value`` pairs, shown as a list with bold keys."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Preformatted:
    """Text shown as it is (in Markdown: inserted verbatim; in HTML: a ``<pre>`` block)."""

    text: str


Block = Text | Table | Figure | Bullets | Fields | Preformatted


@dataclass(frozen=True)
class Section:
    """A titled run of blocks (a ``##`` heading)."""

    title: str
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class Document:
    """A report: a title, blocks before the first section, and sections."""

    title: str
    intro: tuple[Block, ...] = ()
    sections: tuple[Section, ...] = ()


# -- Markdown ----------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Data text made safe for Markdown and HTML (``<``, ``&``, quotes escaped)."""
    return html.escape(str(text))


def _cell(text: str) -> str:
    # quotes stay as they are: Markdown does not need them escaped (HTML output escapes its own)
    return html.escape(str(text), quote=False).replace("|", "\\|")


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured Markdown table (cells escaped; ``---:`` for right-aligned columns)."""
    marks = [
        " ---: |" if a == "right" else " --- |" for a in table.align or ["left"] * len(table.head)
    ]
    lines = ["| " + " | ".join(_cell(h) for h in table.head) + " |", "|" + "".join(marks)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _block_markdown(block: Block, base: Path) -> str:
    if isinstance(block, Text):
        return block.markdown
    if isinstance(block, Table):
        return markdown_table(block)
    if isinstance(block, Figure):
        return f"![{_cell(block.alt)}]({_relative(block.path, base)})"
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Fields):
        return "\n".join(f"- **{_cell(k)}**: {_cell(v)}" for k, v in block.pairs)
    return block.text.rstrip()


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:  # already relative to the report (or elsewhere): keep it as given
        return path.as_posix()


def render_markdown(document: Document, base: Path) -> str:
    """The document as Markdown; figure paths are written relative to ``base`` (the report's
    folder). Blocks are separated by one blank line; the text ends with a newline."""
    parts = [f"# {_cell(document.title)}"]
    parts += [_block_markdown(b, base) for b in document.intro]
    for section in document.sections:
        parts.append(f"## {_cell(section.title)}")
        parts += [_block_markdown(b, base) for b in section.blocks]
    return "\n\n".join(parts) + "\n"


# -- HTML --------------------------------------------------------------------------------------

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto}"
)
_INLINE = (
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img alt="\1" src="\2">'),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
    (re.compile(r"\*\*(.+?)\*\*"), r"<b>\1</b>"),
    (re.compile(r"\*(.+?)\*"), r"<i>\1</i>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
)


def _inline_html(markdown: str) -> str:
    """Trusted Markdown prose to HTML: escaped, then images, links, strong, emphasis, code."""
    out = escape(markdown)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def _block_html(block: Block) -> str:
    e = escape
    if isinstance(block, Text):
        return f"<p>{_inline_html(block.markdown)}</p>"
    if isinstance(block, Table):
        align = block.align or ("left",) * len(block.head)
        tds = ['<td style="text-align:right">' if a == "right" else "<td>" for a in align]
        parts = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in block.head) + "</tr>"]
        parts += [
            "<tr>" + "".join(f"{td}{e(v)}</td>" for v, td in zip(row, tds, strict=True)) + "</tr>"
            for row in block.rows
        ]
        return "\n".join([*parts, "</table>"])
    if isinstance(block, Figure):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return f'<img alt="{e(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Fields):
        return "<ul>" + "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in block.pairs) + "</ul>"
    return f"<pre>{e(block.text)}</pre>"


def render_html(document: Document) -> str:
    """The document as one self-contained HTML page (figures embedded as base64)."""
    title = escape(document.title)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        *(_block_html(b) for b in document.intro),
    ]
    for section in document.sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts += [_block_html(b) for b in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts)


# -- plain text and files ----------------------------------------------------------------------


def text_table(table: Table) -> str:
    """A plain-text table for a terminal: columns padded, right-aligned where ``align`` says."""
    align = table.align or ("left",) * len(table.head)
    rows = [table.head, *table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.head))]
    lines = [
        "  ".join(
            value.rjust(width) if side == "right" else value.ljust(width)
            for value, width, side in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def write_document(
    document: Document, markdown_path: Path, html_path: Path | None = None
) -> tuple[Path, ...]:
    """Write the document as Markdown (and HTML when ``html_path`` is given), atomically;
    figure links are relative to the Markdown file's folder. Returns the paths written."""
    written = [atomic_write(markdown_path, render_markdown(document, markdown_path.parent))]
    if html_path is not None:
        written.append(atomic_write(html_path, render_html(document)))
    return tuple(written)


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage string (``0.123`` -> ``12.3``); ``-`` for None or NaN."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}"


__all__ = [
    "Block",
    "Bullets",
    "Document",
    "Fields",
    "Figure",
    "Preformatted",
    "Section",
    "Table",
    "Text",
    "escape",
    "markdown_table",
    "percent",
    "render_html",
    "render_markdown",
    "text_table",
    "write_document",
]
