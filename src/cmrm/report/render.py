"""``report.md`` and ``report.html`` from a run directory (tables, figures, examples, gap).

Every string that comes from a run (prompts, completions, benchmark names) is HTML-escaped, in
the Markdown too (Markdown viewers render raw HTML). Figures are PNG files in ``figures/`` next to
the reports; the HTML also embeds them as base64, so it stands alone.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..evaluation.metrics import METRICS, Summary
from ..evaluation.store import read_json, read_rows
from .figures import LABELS, plot_benchmark, plot_tradeoff, slug

logger = logging.getLogger(__name__)

EXAMPLES_PER_CELL = 3
TRUNCATE = 300


@dataclass(frozen=True)
class Section:
    """A report section, rendered to both formats."""

    title: str
    tables: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = ()
    figure: Path | None = None
    text: str | None = None
    """Preformatted text (the gap summary), shown verbatim."""


def _cut(text: str, limit: int = TRUNCATE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metric_table(
    summary: Summary, benchmark: str
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    cells = [c for c in summary.cells if c.cell.benchmark == benchmark]
    shown = [m for m in METRICS if any(c.metrics[m].value is not None for c in cells)]
    head = ("method", "alpha", "judge", "n", *(LABELS[m] for m in shown))
    rows = tuple(
        (
            c.cell.method,
            "-" if c.cell.alpha is None else f"{c.cell.alpha:g}",
            c.judge,
            f"{c.n}/{c.expected}",
            *(c.metrics[m].format() for m in shown),
        )
        for c in cells
    )
    return head, rows


def _examples(run_dir: Path, cells: Sequence[str]) -> dict[str, list[tuple[str, ...]]]:
    labels = {
        (r["cell"], r["id"]): r["judgment"].get("label", "")
        for r in read_rows(run_dir / "judgments.jsonl")
    }
    out: dict[str, list[tuple[str, ...]]] = {c: [] for c in cells}
    for row in read_rows(run_dir / "generations.jsonl"):
        bucket = out.get(row["cell"])
        if bucket is not None and len(bucket) < EXAMPLES_PER_CELL:
            prompt = row.get("item", {}).get("prompt", "")
            label = labels.get((row["cell"], row["id"]), "(not judged)")
            bucket.append((row["id"], _cut(prompt, 120), _cut(row["completion"]), label))
    return out


def build_sections(run_dir: Path, summary: Summary, figures: Path) -> list[Section]:
    """Every section of the report, figures written into ``figures``."""
    benchmarks = list(dict.fromkeys(c.cell.benchmark for c in summary.cells))
    sections = []
    for bench in benchmarks:
        fig = plot_benchmark(summary, bench, figures / f"{slug(bench)}-alpha.png")
        sections.append(Section(f"Benchmark {bench}", (_metric_table(summary, bench),), fig))
    tradeoff = plot_tradeoff(summary, figures / "tradeoff.png")
    if tradeoff is not None:
        sections.append(Section("Safety-utility trade-off", figure=tradeoff))
    examples = _examples(run_dir, [c.cell.key for c in summary.cells])
    head = ("item", "prompt", "completion", "judgment")
    tables = tuple(
        (("cell " + key, *head[1:]), tuple(rows)) for key, rows in examples.items() if rows
    )
    sections.append(Section(f"Example generations (first {EXAMPLES_PER_CELL} per cell)", tables))
    gap = run_dir / "gap" / "summary.md"
    if gap.is_file():
        sections.append(Section("Representation gap", text=gap.read_text(encoding="utf-8")))
    return sections


def _md_cell(text: str) -> str:
    return html.escape(text).replace("|", "\\|")


def render_markdown(header: Mapping[str, Any], sections: Sequence[Section], base: Path) -> str:
    lines = ["# cmrm evaluation report", ""]
    lines += [f"- **{_md_cell(k)}**: {_md_cell(str(v))}" for k, v in header.items()]
    lines += ["", "Intervals are 95 % percentile-bootstrap intervals over items.", ""]
    for section in sections:
        lines += [f"## {_md_cell(section.title)}", ""]
        for head, rows in section.tables:
            lines.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
            lines.append("")
        if section.figure is not None:
            rel = section.figure.relative_to(base).as_posix()
            lines += [f"![{_md_cell(section.title)}]({rel})", ""]
        if section.text is not None:
            lines += [section.text.rstrip(), ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto}"
)


def render_html(header: Mapping[str, Any], sections: Sequence[Section]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>cmrm evaluation report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>cmrm evaluation report</h1><ul>",
        *(f"<li><b>{e(str(k))}</b>: {e(str(v))}</li>" for k, v in header.items()),
        "</ul><p>Intervals are 95 % percentile-bootstrap intervals over items.</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        for head, rows in section.tables:
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows]
            parts.append("</table>")
        if section.figure is not None:
            data = base64.b64encode(section.figure.read_bytes()).decode("ascii")
            parts.append(f'<img alt="{e(section.title)}" src="data:image/png;base64,{data}">')
        if section.text is not None:
            parts.append(f"<pre>{e(section.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into a run directory.

    Returns:
        The paths of ``report.md`` and ``report.html``.

    Raises:
        DataError: ``run_dir`` has no ``config.json`` or ``summary.json`` (run ``cmrm eval``).

    Example:
        >>> md, page = write_report("runs/organism")  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    stored = read_json(run_dir / "config.json")
    summary = Summary.from_json(read_json(run_dir / "summary.json"))
    config = stored.get("config", {})
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    header = {
        "model": config.get("model"),
        "benchmarks": ", ".join(config.get("benchmarks", [])),
        "methods": ", ".join(config.get("methods", [])),
        "alphas": ", ".join(f"{a:g}" for a in config.get("alphas", [])),
        "shift": config.get("shift")
        or (f"calibrated on {config.get('anchors')}" if config.get("anchors") else "-"),
        "null image": config.get("null"),
        "created": stored.get("created"),
        "versions": ", ".join(f"{k} {v}" for k, v in stored.get("versions", {}).items()),
        "complete": all(c.n == c.expected for c in summary.cells),
    }
    sections = build_sections(run_dir, summary, figures)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write(md_path, render_markdown(header, sections, run_dir))
    atomic_write(html_path, render_html(header, sections))
    logger.info("wrote %s and %s", md_path, html_path)
    return md_path, html_path
