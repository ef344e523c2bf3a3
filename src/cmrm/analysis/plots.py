"""Figures of the representation gap: PCA scatters at a few layers and per-layer metric curves.

Drawn with matplotlib's object API on an Agg canvas (no display, no global pyplot state) and
written as PNG atomically, both through the one figure writer, :mod:`cmrm.report.canvas`. Every variant keeps one colour and marker across figures:

- text only: blue circles; with the real image: red squares; the image after CMRM: green
  triangles (dashed lines in the curves); a caption in place of the image: purple diamonds;
  null images: grey, orange, brown, pink (down-triangles, plus, cross, star).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..base.errors import CmrmError
from ..report.canvas import new_figure, save_figure
from .results import GapReport

DPI = 150
_NULL_STYLES = (("#7f7f7f", "v"), ("#ff7f0e", "P"), ("#8c564b", "X"), ("#e377c2", "*"))


@dataclass(frozen=True)
class Style:
    label: str
    colour: str
    marker: str
    dashed: bool = False


def styles(report: GapReport) -> dict[str, Style]:
    """A readable label, colour and marker for every variant of the report."""
    alpha = report.meta.get("alpha")
    out: dict[str, Style] = {}
    nulls = 0
    for variant in report.variants:
        if variant == "text":
            out[variant] = Style("text only", "#1f77b4", "o")
        elif variant == report.steered:
            suffix = f" (α={alpha:g})" if isinstance(alpha, int | float) else ""
            out[variant] = Style(f"{report.primary} + CMRM{suffix}", "#2ca02c", "^", dashed=True)
        elif variant == "image":
            out[variant] = Style("with image", "#d62728", "s")
        elif variant == "caption":
            out[variant] = Style("caption instead of image", "#9467bd", "D")
        else:
            colour, marker = _NULL_STYLES[nulls % len(_NULL_STYLES)]
            nulls += 1
            label = f"null image ({variant.removeprefix('null:')})"
            out[variant] = Style(label, colour, marker)
    return out


def _pca_basis(
    fit: NDArray[np.floating],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Mean, top-2 directions ``[2, hidden]`` and their share of the variance."""
    x = np.asarray(fit, dtype=np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    share = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    basis = np.zeros((2, x.shape[1]))
    basis[: min(2, len(vt))] = vt[:2]
    return mean, basis, np.pad(share, (0, 2 - len(share)))


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def plot_pca(
    report: GapReport,
    samples: Mapping[int, Mapping[str, NDArray[np.floating]]],
    path: Path,
    *,
    layers: Sequence[int] | None = None,
) -> Path:
    """One scatter per layer of every variant's kept states on the top two principal components.

    The components are fitted on the text-only and primary-variant states of that layer, so the
    axes show the directions that vary most between and within those two groups.

    Args:
        samples: ``{layer: {variant: [n, hidden]}}`` (e.g. from ``GapAccumulator.samples``).
        layers: which layers to draw (default: ``report.plot_layers`` that have samples).
    """
    wanted = list(layers) if layers is not None else list(report.plot_layers)
    chosen = [layer for layer in wanted if samples.get(layer, {}).get("text") is not None]
    if not chosen:
        raise CmrmError(f"no kept samples at layers {wanted}; run with max_samples > 0")
    style = styles(report)
    fig = new_figure(figsize=(4.4 * len(chosen), 4.6), layout="constrained")
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    for ax, layer in zip(axes, chosen, strict=True):
        by_variant = samples[layer]
        fit = [by_variant[v] for v in ("text", report.primary) if len(by_variant.get(v, ())) > 0]
        mean, basis, share = _pca_basis(np.concatenate(fit))
        for variant in report.variants:
            states = by_variant.get(variant)
            if states is None or len(states) == 0:
                continue
            xy = (np.asarray(states, dtype=np.float64) - mean) @ basis.T
            s = style[variant]
            ax.scatter(
                xy[:, 0],
                xy[:, 1],
                s=18,
                c=s.colour,
                marker=s.marker,
                alpha=0.65,
                label=s.label,
                linewidths=0,
            )
        gap = report.layer(layer).get(report.primary)
        mark = " (largest gap)" if layer == report.largest_gap_layer else ""
        ax.set_title(
            f"layer {layer}{mark}\ndistance {_fmt(gap.normalised_distance)} spreads, "
            f"probe {_fmt(gap.probe_accuracy)}",
            fontsize=10,
        )
        ax.set_xlabel(f"PC1 ({100 * share[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * share[1]:.0f}% of variance)")
        ax.grid(alpha=0.25)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(len(labels), 4),
        markerscale=1.6,
        frameon=False,
    )
    fig.suptitle("Last-prompt-token states, projected on the text + image principal components")
    return save_figure(fig, path, dpi=DPI, tight=True)


def _all(report: GapReport, metric: str) -> list[float]:
    others = [variant for variant in report.variants if variant != "text"]
    return [v for variant in others for v in report.series(variant, metric)]


def plot_layers(report: GapReport, path: Path) -> Path:
    """Per-layer curves: normalised distance, paired cosine, probe accuracy (+ gap closed)."""
    panels = [
        ("normalised_distance", "centroid distance\n(in text-only spreads)"),
        ("paired_cosine", "mean cosine, text vs variant\n(same query)"),
        ("probe_accuracy", "linear-probe accuracy\n(text vs variant, CV)"),
    ]
    closed = report.steered is not None
    shape, size = ((2, 2), (10.0, 7.6)) if closed else ((1, 3), (13.8, 4.0))
    fig = new_figure(figsize=size, layout="constrained")
    axes = list(fig.subplots(*shape, squeeze=False).ravel())
    x = [row.layer for row in report.layers]
    style = styles(report)
    marker_every = max(1, len(x) // 12)
    for ax, (metric, label) in zip(axes, panels, strict=False):
        for variant in report.variants:
            if variant == "text":
                continue
            s = style[variant]
            ax.plot(
                x,
                report.series(variant, metric),
                color=s.colour,
                marker=s.marker,
                markersize=4,
                markevery=marker_every,
                linestyle="--" if s.dashed else "-",
                label=s.label,
            )
        ax.set_ylabel(label)
    axes[2].axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
    lowest = min((v for v in _all(report, "probe_accuracy") if math.isfinite(v)), default=0.5)
    axes[2].set_ylim(min(0.4, lowest - 0.05), 1.02)
    if closed:
        ax = axes[3]
        ax.plot(
            x,
            [row.gap_closed for row in report.layers],
            color="#2ca02c",
            marker="^",
            markersize=4,
            markevery=marker_every,
        )
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel("fraction of the gap closed by CMRM\n(1 − after / before)")
    for ax in axes:
        ax.set_xlabel("decoder layer")
        ax.axvline(report.largest_gap_layer, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.25)
    handles, labels = axes[2].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(len(labels), 5), frameon=False
    )
    fig.suptitle(
        f"Representation gap per layer (dotted: largest gap, layer {report.largest_gap_layer})"
    )
    return save_figure(fig, path, dpi=DPI, tight=True)
