"""``report.md`` and ``report.html`` of a run directory (tables, figures, examples, gap).

The content is built here as a :class:`~cmrm.report.document.Document` and written by the one
report writer, :mod:`cmrm.report.document` (which escapes every string from the run). Figures are
PNG files in ``figures/`` next to the reports; the HTML also embeds them, so it stands alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..base.errors import DataError
from ..evaluation.metrics import METRICS, Summary
from ..evaluation.store import read_json, read_rows
from .document import (
    Block,
    Document,
    Fields,
    Figure,
    Preformatted,
    Section,
    Table,
    Text,
    write_document,
)
from .figures import LABELS, plot_benchmark, plot_tradeoff, slug

logger = logging.getLogger(__name__)

EXAMPLES_PER_CELL = 3
TRUNCATE = 300
TITLE = "cmrm evaluation report"


def _cut(text: str, limit: int = TRUNCATE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metric_table(summary: Summary, benchmark: str) -> Table:
    cells = [c for c in summary.cells if c.cell.benchmark == benchmark]
    shown = [m for m in METRICS if any(c.metrics[m].value is not None for c in cells)]
    head = ("method", "operator", "alpha", "judge", "n", *(LABELS[m] for m in shown))
    rows = tuple(
        (
            c.cell.method,
            "-" if c.cell.alpha is None else c.cell.operator,
            "-" if c.cell.alpha is None else f"{c.cell.alpha:g}",
            c.judge,
            f"{c.n}/{c.expected}",
            *(c.metrics[m].format() for m in shown),
        )
        for c in cells
    )
    return Table(head, rows)


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
        title = f"Benchmark {bench}"
        blocks: list[Block] = [_metric_table(summary, bench)]
        fig = plot_benchmark(summary, bench, figures / f"{slug(bench)}-alpha.png")
        if fig is not None:
            blocks.append(Figure(fig, title))
        sections.append(Section(title, tuple(blocks)))
    title = "Safety-utility trade-off"
    tradeoff = plot_tradeoff(summary, figures / "tradeoff.png")
    if tradeoff is not None:
        sections.append(Section(title, (Figure(tradeoff, title),)))
    examples = _examples(run_dir, [c.cell.key for c in summary.cells])
    head = ("item", "prompt", "completion", "judgment")
    tables = tuple(
        Table(("cell " + key, *head[1:]), tuple(rows)) for key, rows in examples.items() if rows
    )
    sections.append(Section(f"Example generations (first {EXAMPLES_PER_CELL} per cell)", tables))
    gap = run_dir / "gap" / "summary.md"
    if gap.is_file():
        text = gap.read_text(encoding="utf-8")
        sections.append(Section("Representation gap", (Preformatted(text),)))
    return sections


def read_run(run_dir: Path) -> tuple[dict[str, Any], Summary]:
    """``config.json`` and ``summary.json`` of a run folder, checked before a report is built.

    Raises:
        DataError: a file is missing, is not JSON, or does not hold what `cmrm eval` writes
            (naming the file and the field).
    """
    fix = f"re-run the same `cmrm eval ... -o {run_dir}` to rewrite it (finished rows are kept)"
    config_path, summary_path = run_dir / "config.json", run_dir / "summary.json"
    stored = read_json(config_path)
    if not isinstance(stored, dict) or not isinstance(stored.get("config", {}), dict):
        raise DataError(
            f"{config_path} is not a cmrm eval run configuration (expected an object with a "
            f"'config' object, got {type(stored).__name__}); {fix}"
        )
    data = read_json(summary_path)
    try:
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise TypeError(f"expected an object with a 'cells' list, got {type(data).__name__}")
        summary = Summary.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        raise DataError(f"{summary_path} is not a cmrm eval summary ({what}); {fix}") from err
    return stored, summary


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
    stored, summary = read_run(run_dir)
    config = stored.get("config", {})
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    header = {
        "model": config.get("model"),
        "benchmarks": ", ".join(config.get("benchmarks", [])),
        "methods": ", ".join(config.get("methods", [])),
        "operators": ", ".join(config.get("operators", ["add"])),
        "alphas": ", ".join(f"{a:g}" for a in config.get("alphas", [])),
        "shift": config.get("shift")
        or (f"calibrated on {config.get('anchors')}" if config.get("anchors") else "-"),
        "null image": config.get("null"),
        "created": stored.get("created"),
        "versions": ", ".join(f"{k} {v}" for k, v in stored.get("versions", {}).items()),
        "complete": all(c.n == c.expected for c in summary.cells),
    }
    document = Document(
        TITLE,
        intro=(
            Fields(tuple((key, str(value)) for key, value in header.items())),
            Text("Intervals are 95 % percentile-bootstrap intervals over items."),
        ),
        sections=tuple(build_sections(run_dir, summary, figures)),
    )
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    write_document(document, md_path, html_path)
    logger.info("wrote %s and %s", md_path, html_path)
    return md_path, html_path
