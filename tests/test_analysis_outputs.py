"""Figures and the Markdown summary of a gap analysis, from constructed states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmrm.analysis.accumulator import GapAccumulator
from cmrm.analysis.plots import DPI, plot_layers, plot_pca, styles
from cmrm.analysis.results import GapReport
from cmrm.analysis.summary import summary_markdown
from cmrm.base.errors import CmrmError

LAYERS, N, HIDDEN = 6, 40, 12


def analysed(steered: bool) -> tuple[GapReport, GapAccumulator]:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(LAYERS, N, HIDDEN))
    offset = np.zeros((LAYERS, 1, HIDDEN))
    offset[:, 0, 0] = [0.5, 1, 3, 2, 1.5, 1]  # the gap peaks at layer 2
    image = text + offset + 0.2 * rng.normal(size=text.shape)
    variants = {"text": text, "image": image, "null:blank:white": text + 0.5 * offset}
    if steered:
        variants["image+cmrm"] = image - offset
    acc = GapAccumulator(range(LAYERS), max_samples=30)
    for start in range(0, N, 8):
        ids = np.arange(start, start + 8)
        for name, states in variants.items():
            acc.add(name, states[:, ids], ids=ids)
    meta = {"model": "toy", "alpha": 1.0}
    return acc.report(steered="image+cmrm" if steered else None, meta=meta), acc


def samples(acc: GapAccumulator, layers: tuple[int, ...]) -> dict[int, dict[str, np.ndarray]]:
    return {layer: {v: acc.samples(v, layer)[1] for v in acc.variants} for layer in layers}


def check_png(path: Path, min_width: int) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width >= min_width and img.height >= 400
        dpi = img.info.get("dpi", (0, 0))
        assert round(dpi[0]) == DPI


@pytest.mark.parametrize("steered", [False, True])
def test_figures_are_written_and_readable(tmp_path: Path, steered: bool) -> None:
    report, acc = analysed(steered)
    assert report.largest_gap_layer == 2
    assert report.plot_layers == (0, 2, 3, 5)  # first, largest gap, middle, last
    pca = plot_pca(report, samples(acc, report.plot_layers), tmp_path / "figs" / "pca.png")
    check_png(pca, min_width=4 * 400)
    curves = plot_layers(report, tmp_path / "figs" / "layers.png")
    check_png(curves, min_width=1000)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["layers.png", "pca.png"]


def test_every_variant_has_a_distinct_readable_style() -> None:
    report, _ = analysed(steered=True)
    style = styles(report)
    assert style["text"].label == "text only"
    assert style["null:blank:white"].label == "null image (blank:white)"
    assert style["image+cmrm"].dashed and "α=1" in style["image+cmrm"].label
    assert len({(s.colour, s.marker) for s in style.values()}) == len(style)


def test_pca_without_samples_is_a_clear_error(tmp_path: Path) -> None:
    report, _ = analysed(steered=False)
    with pytest.raises(CmrmError, match="max_samples > 0"):
        plot_pca(report, {}, tmp_path / "pca.png")
    assert not (tmp_path / "pca.png").exists()


def test_summary_has_the_table_and_the_headline() -> None:
    report, _ = analysed(steered=True)
    text = summary_markdown(report).split("### Null-image fidelity")[0]
    assert text.startswith("## Representation gap")
    assert "model `toy`" in text and f"{N} text-only queries" in text
    assert "largest gap is at **layer 2**" in text
    assert "| layer | distance (spreads) |" in text and "gap closed |" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| ") and line[2] in "0123456789*"
    ]
    main = [line for line in rows if line.count("|") == 10]  # layer + 6 before + 3 after
    per_variant = [line for line in rows if line.count("|") == 5]  # layer + 3 variants
    assert len(main) == len(per_variant) == LAYERS == len(rows) // 2
    bold = [line for line in main if line.startswith("| **2**")]
    closed = report.layer(2).gap_closed
    assert closed > 0.9
    assert len(bold) == 1 and f"**{100 * closed:.0f} %**" in bold[0]
    assert "![PCA of the states](figures/pca.png)" in text
    assert "![Gap metrics per layer](figures/layers.png)" in text


def test_summary_without_steering_or_figures() -> None:
    report, _ = analysed(steered=False)
    text = summary_markdown(report, figures={}, level=3)
    assert text.startswith("### Representation gap")
    assert "gap closed" not in text and "CMRM" not in text
    assert "![" not in text


def test_null_fidelity_is_measured_and_explained() -> None:
    report, _ = analysed(steered=False)
    fid = report.layer(2).null_fidelity["null:blank:white"]
    assert fid.cosine > 0.95  # the null shift points the same way ...
    assert 0.4 < fid.closed < 0.6  # ... but is half as long (offset / 2)
    again = GapReport.from_json(report.to_json())
    assert again.layer(2).null_fidelity["null:blank:white"] == fid
    text = summary_markdown(report)
    assert "### Null-image fidelity" in text and "| 2 | 1.00 / " in text


def test_summary_recommends_contrast_image_when_the_null_image_fails() -> None:
    rng = np.random.default_rng(1)
    text = rng.normal(size=(2, N, HIDDEN))
    image = text + 3.0
    acc = GapAccumulator(range(2), max_samples=0)
    ids = np.arange(N)
    for name, states in {"text": text, "image": image, "null:blank:white": text}.items():
        acc.add(name, states, ids=ids)
    summary = summary_markdown(acc.report(probe=False))
    assert "The null image is not the image here" in summary
    assert "--contrast image" in summary
