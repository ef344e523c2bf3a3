"""The one report writer and the one figure writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from cmrm.report.canvas import new_figure, save_figure
from cmrm.report.document import (
    Bullets,
    Document,
    Fields,
    Figure,
    Preformatted,
    Section,
    Table,
    Text,
    render_html,
    render_markdown,
    text_table,
    write_document,
)


def _figure(path: Path) -> Path:
    fig = new_figure(figsize=(2, 1.5), dpi=50)
    fig.subplots().plot([0, 1], [1, 0])
    return save_figure(fig, path)


def test_markdown_escapes_data_but_not_our_prose(tmp_path: Path) -> None:
    png = _figure(tmp_path / "figures" / "f.png")
    doc = Document(
        "report <1>",
        intro=(Fields((("model", "a|b <script>"),)), Text("*unsafe* = **harm** >= 1")),
        sections=(
            Section(
                "Numbers",
                (
                    Table(("name", "n"), (("x|y", "3"), ("<i>", "10")), ("left", "right")),
                    Figure(png, "plot"),
                    Bullets(("met: cut >= 95%",)),
                    Preformatted("| raw | md |\n"),
                ),
            ),
        ),
    )
    md = render_markdown(doc, tmp_path)
    assert md.startswith("# report &lt;1&gt;\n\n- **model**: a\\|b &lt;script&gt;\n\n")
    assert "*unsafe* = **harm** >= 1" in md and "- met: cut >= 95%" in md
    assert "| name | n |\n| --- | ---: |\n| x\\|y | 3 |\n| &lt;i&gt; | 10 |" in md
    assert "![plot](figures/f.png)" in md and md.endswith("| raw | md |\n")
    page = render_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<i>unsafe</i> = <b>harm</b> &gt;= 1" in page
    assert '<td style="text-align:right">10</td>' in page and "data:image/png;base64," in page


def test_text_table_aligns_columns() -> None:
    table = Table(
        ("setting", "rate"), (("none", "60.0"), ("dataset a=1", "0.0")), ("left", "right")
    )
    assert text_table(table).splitlines() == [
        "setting      rate",
        "none         60.0",
        "dataset a=1   0.0",
    ]
    with pytest.raises(ValueError, match="differ in length"):
        Table(("a", "b"), (("1",),))


def test_documents_and_figures_are_written_atomically(tmp_path: Path) -> None:
    png = _figure(tmp_path / "f.png")
    with Image.open(png) as image:
        assert image.size == (100, 75)
    written = write_document(Document("t"), tmp_path / "r.md", tmp_path / "r.html")
    assert [p.name for p in written] == ["r.md", "r.html"]
    assert sorted(os.listdir(tmp_path)) == ["f.png", "r.html", "r.md"]  # no temporary left

    class Broken:
        def savefig(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError):
        save_figure(Broken(), tmp_path / "g.png")  # type: ignore[arg-type]
    assert not (tmp_path / "g.png").exists() and len(os.listdir(tmp_path)) == 3
