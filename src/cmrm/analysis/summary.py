"""A short Markdown summary of a gap analysis, for the output directory and for ``cmrm report``.

Its tables are rendered by the one report writer, :func:`cmrm.report.document.markdown_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..report.document import Align, Table, markdown_table
from .plots import styles
from .results import GapReport

FIGURES = {"pca": "figures/pca.png", "layers": "figures/layers.png"}


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %" if math.isfinite(value) else "n/a"


def _headline(report: GapReport) -> list[str]:
    row = report.layer(report.largest_gap_layer)
    gap = row.get(report.primary)
    label = styles(report)[report.primary].label
    lines = [
        (
            f"The largest gap is at **layer {row.layer}**: the “{label}” centroid sits "
            f"{_num(gap.normalised_distance)} text-only spreads ({_num(gap.distance, 3)} raw) "
            f"from the text-only centroid, and a linear probe tells the two apart with accuracy "
            f"{_num(gap.probe_accuracy)} (chance: 0.5)."
        )
    ]
    if report.steered is not None:
        after = row.get(report.steered)
        lines.append(
            f"Under CMRM the distance there is {_num(after.normalised_distance)} spreads "
            f"(**{_pct(row.gap_closed)} of the gap closed**) and the probe accuracy "
            f"{_num(after.probe_accuracy)}."
        )
    return lines


def _table(head: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    right: Align = "right"
    return markdown_table(Table(tuple(head), tuple(rows), tuple(right for _ in head))).splitlines()


def _main_table(report: GapReport) -> list[str]:
    header = ["layer", "distance (spreads)", "raw distance", "paired cos", "centroid cos", "probe"]
    if report.steered is not None:
        header += ["distance after", "probe after", "gap closed"]
    rows = []
    for row in report.layers:
        gap = row.get(report.primary)
        cells = [
            str(row.layer),
            _num(gap.normalised_distance),
            _num(gap.distance, 3),
            _num(gap.paired_cosine, 4),
            _num(gap.centroid_cosine, 4),
            _num(gap.probe_accuracy),
        ]
        if report.steered is not None:
            after = row.get(report.steered)
            cells += [
                _num(after.normalised_distance),
                _num(after.probe_accuracy),
                _pct(row.gap_closed),
            ]
        if row.layer == report.largest_gap_layer:
            cells = [f"**{cell}**" for cell in cells]
        rows.append(tuple(cells))
    return _table(header, rows)


def _variant_table(report: GapReport) -> list[str]:
    names = [v for v in report.variants if v != "text"]
    labels = styles(report)
    header = ["layer", *(f"{labels[v].label}" for v in names)]
    rows = [
        (
            str(row.layer),
            *(
                f"{_num(row.get(v).normalised_distance)} / {_num(row.get(v).probe_accuracy)}"
                for v in names
            ),
        )
        for row in report.layers
    ]
    return _table(header, rows)


def _fidelity(report: GapReport, h: str) -> list[str]:
    """The null-image fidelity section: a table and a plain verdict at the largest-gap layer."""
    nulls = sorted({k for row in report.layers for k in row.null_fidelity})
    if not nulls:
        return []
    header = ["layer", *(f"{v}: cos / closed" for v in nulls)]
    lines = [f"{h}# Null-image fidelity", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for row in report.layers:
        cells = [
            f"{_num(row.null_fidelity[v].cosine)} / {_pct(row.null_fidelity[v].closed)}"
            if v in row.null_fidelity
            else "n/a"
            for v in nulls
        ]
        lines.append(f"| {row.layer} | " + " | ".join(cells) + " |")
    row = report.layer(report.largest_gap_layer)
    best = max(nulls, key=lambda v: row.null_fidelity[v].closed if v in row.null_fidelity else -1)
    fid = row.null_fidelity.get(best)
    lines.append("")
    if fid is not None and math.isfinite(fid.closed) and fid.closed < NULL_STANDS_IN:
        lines.append(
            f"**The null image is not the image here.** At layer {row.layer} the best null "
            f"variant ({best}) closes only {_pct(fid.closed)} of the real-image gap (cosine "
            f"{_num(fid.cosine)}). A shift calibrated with null images will under-correct real "
            "ones: calibrate with the real anchor images instead (`cmrm calibrate ... "
            "--contrast image`)."
        )
    elif fid is not None:
        lines.append(
            f"At layer {row.layer} the null variant {best} closes {_pct(fid.closed)} of the "
            f"real-image gap (cosine {_num(fid.cosine)}): it stands in for real images well "
            "enough for `--contrast null`."
        )
    lines.append(
        "cos: cosine between the null-image shift and the real-image shift (text-only minus "
        "each centroid); closed: the fraction of the real-image gap the null shift closes."
    )
    return [*lines, ""]


NULL_STANDS_IN = 0.5
"""Below this fraction of the real-image gap closed, the summary recommends ``--contrast image``."""


def summary_markdown(
    report: GapReport, *, figures: Mapping[str, str] | None = None, level: int = 2
) -> str:
    """The summary as Markdown; ``figures`` maps ``pca``/``layers`` to links (relative paths).

    ``level`` is the heading level, so ``cmrm report`` can nest the summary under its own headings.
    """
    figures = FIGURES if figures is None else figures
    h = "#" * level
    meta = report.meta
    n = report.layers[0].n_text
    source = ", ".join(
        f"{key} `{meta[key]}`" for key in ("model", "data") if meta.get(key) is not None
    )
    lines = [f"{h} Representation gap", ""]
    lines.append(
        f"{source + '; ' if source else ''}{n} text-only queries; variants: "
        + ", ".join(styles(report)[v].label for v in report.variants)
        + "."
    )
    lines += ["", *_headline(report), ""]
    for key, caption in (("pca", "PCA of the states"), ("layers", "Gap metrics per layer")):
        if key in figures:
            lines += [f"![{caption}]({figures[key]})", ""]
    label = styles(report)[report.primary].label
    lines += [f"{h}# {label[:1].upper()}{label[1:]} vs text only", ""]
    lines += [*_main_table(report), ""]
    lines += [f"{h}# Every variant: distance (spreads) / probe accuracy", ""]
    lines += [*_variant_table(report), ""]
    lines += _fidelity(report, h)
    lines.append(
        "Distance: between centroids, in units of the text-only states' RMS spread. Probe: "
        "cross-validated accuracy of a logistic regression separating text-only from variant "
        "states (grouped by query). Definitions: docs/gap.md."
    )
    return "\n".join(lines) + "\n"
