"""Reports from a fake run: files, figures, escaping, the gap section."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmrm.base.errors import DataError
from cmrm.report import write_report

from . import test_evaluation_fakes as fakes


def test_report_from_a_run(tmp_path: Path) -> None:
    fakes.run(tmp_path, benchmarks=("harm:eval", "benign", "evil"))
    (tmp_path / "gap").mkdir()
    (tmp_path / "gap" / "summary.md").write_text("gap cosine at layer 3: 0.42 <b>\n")
    md_path, html_path = write_report(tmp_path)
    md, page = md_path.read_text(), html_path.read_text()
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["benign-alpha.png", "evil-alpha.png", "harm-eval-alpha.png", "tradeoff.png"]
    assert all((tmp_path / "figures" / f).stat().st_size > 5000 for f in figures)
    assert "![Benchmark harm:eval](figures/harm-eval-alpha.png)" in md
    assert page.count("data:image/png;base64,") == 4 and 'src="figures/' not in page
    for text in (md, page):
        assert "Safety-utility trade-off" in text and "gap cosine at layer 3: 0.42" in text
        assert "<script>" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(0)&lt;/script&gt;" in text
    assert "| unsafe rate |" in md or "unsafe rate |" in md
    # the table row of the unsteered cell: 11 of 11 judged, all unsafe with a degenerate interval
    assert "| none | - | - | fake | 11/11 | 1.000 [1.000, 1.000] |" in md
    assert "\\|0" in md  # a pipe inside a cell is escaped in Markdown


def test_report_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="config.json does not exist"):
        write_report(tmp_path)
