"""Streaming reduction of captured states into per-layer gap statistics, in bounded memory.

Per variant and layer the accumulator keeps a running mean and the running sum of squared
distances to it (Chan et al.'s parallel update, in float64: exact up to rounding, with no
cancellation, unlike ``E[x^2] - E[x]^2``); per non-text variant and layer the sum of paired
cosines with the text-only state of the same query. That is O(layers x hidden) per variant,
whatever the number of samples.

The probe and the PCA plot need samples. The layer of largest gap is only known at the end and
the probe curve wants every layer, while a second pass through the model would double the cost;
so the accumulator keeps a bounded :class:`~cmrm.analysis.reservoir.Reservoir` of at most
``max_samples`` queries per variant at the ``sample_layers`` (default: every layer), the same
queries in every variant, stored in float16 relative to a per-layer reference. Its size is
``variants x len(sample_layers) x max_samples x hidden x 2`` bytes (e.g. LLaVA-1.5-7B, 32 layers,
256 samples, 5 variants: 320 MiB); pass fewer ``sample_layers`` or a smaller ``max_samples`` to
shrink it, or ``max_samples=0`` for no probe and no scatter.

Pairing: ``add("text", states, ids)`` a batch first, then the other variants of the same queries
(any subset of those ids); each is paired with the text batch added last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..base.errors import CmrmError
from .metrics import ProbeResult, cosine, gap_closed, normalise, probe_accuracy, row_cosines
from .reservoir import Reservoir
from .results import GapReport, LayerGap, NullFidelity, VariantGap

if TYPE_CHECKING:
    from torch import Tensor

TEXT = "text"


def _as_array(states: NDArray[np.floating] | Tensor) -> NDArray[np.float64]:
    if hasattr(states, "detach"):
        states = states.detach().cpu().float().numpy()
    return np.asarray(states, dtype=np.float64)


class _Moments:
    """Running count, mean ``[L, H]`` and sum of squared distances to the mean ``[L]``."""

    def __init__(self, layers: int, hidden: int) -> None:
        self.n = 0
        self.mean = np.zeros((layers, hidden))
        self.m2 = np.zeros(layers)

    def update(self, x: NDArray[np.float64]) -> None:  # x: [L, B, H]
        b = x.shape[1]
        mean_b = x.mean(axis=1)
        m2_b = ((x - mean_b[:, None]) ** 2).sum(axis=(1, 2))
        total = self.n + b
        delta = mean_b - self.mean
        self.m2 += m2_b + (delta**2).sum(axis=1) * (self.n * b / total)
        self.mean += delta * (b / total)
        self.n = total

    def spread(self) -> NDArray[np.float64]:
        return np.sqrt(self.m2 / self.n) if self.n else np.full(len(self.m2), math.nan)


class GapAccumulator:
    """Reduce ``[n_layers, B, hidden]`` state batches per variant into a :class:`GapReport`.

    Args:
        layers: the decoder-layer indices the rows of every batch belong to, in order.
        max_samples: queries kept per variant for the probe and the scatter plots (0: none).
        sample_layers: the layers at which samples are kept (default: all of ``layers``).
        seed: seeds the choice of kept queries and the probe's folds.
        sample_dtype: storage type of kept samples (float16 halves the memory of float32).
    """

    def __init__(
        self,
        layers: Sequence[int],
        *,
        max_samples: int = 256,
        sample_layers: Sequence[int] | None = None,
        seed: int = 0,
        sample_dtype: DTypeLike = np.float16,
    ) -> None:
        self.layers = tuple(int(layer) for layer in layers)
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise CmrmError(f"layers must be distinct and non-empty, got {list(layers)}")
        if max_samples < 0:
            raise CmrmError(f"max_samples must be 0 or more, got {max_samples}")
        chosen = self.layers if sample_layers is None else tuple(sample_layers)
        unknown = [layer for layer in chosen if layer not in self.layers]
        if unknown:
            raise CmrmError(f"sample layers {unknown} are not among the layers {self.layers}")
        self.sample_layers = tuple(sorted(set(chosen)))
        self._sample_pos = [self.layers.index(layer) for layer in self.sample_layers]
        self.max_samples, self.seed, self.sample_dtype = max_samples, seed, sample_dtype
        self.variants: list[str] = []
        self._moments: dict[str, _Moments] = {}
        self._reservoirs: dict[str, Reservoir] = {}
        self._cos_sum: dict[str, NDArray[np.float64]] = {}
        self._cos_n: dict[str, int] = {}
        self._next_id: dict[str, int] = {}
        self._text: tuple[dict[int, int], NDArray[np.float64]] | None = None
        self._reference: NDArray[np.float64] | None = None

    @property
    def nbytes(self) -> int:
        """Memory held: moments, cosine sums, reservoirs and the last text batch."""
        total = sum(m.mean.nbytes + m.m2.nbytes for m in self._moments.values())
        total += sum(r.nbytes for r in self._reservoirs.values())
        total += sum(c.nbytes for c in self._cos_sum.values())
        return total + (self._text[1].nbytes if self._text is not None else 0)

    def add(
        self,
        variant: str,
        states: NDArray[np.floating] | Tensor,
        ids: Sequence[int] | NDArray[np.integer] | None = None,
    ) -> None:
        """Add a batch ``[n_layers, B, hidden]`` of one variant; ``ids`` name the queries.

        Without ``ids``, rows are numbered per variant in arrival order (so equal batches of each
        variant, in the same order, pair up). Ids must be unique within a variant.
        """
        x = _as_array(states)
        if x.ndim != 3 or x.shape[0] != len(self.layers) or x.shape[1] == 0:
            raise CmrmError(
                f"states for {variant!r} must be [n_layers={len(self.layers)}, batch, hidden] "
                f"with batch >= 1, got {x.shape}"
            )
        start = self._next_id.get(variant, 0)
        row_ids = np.arange(start, start + x.shape[1]) if ids is None else np.asarray(ids)
        if row_ids.shape != (x.shape[1],):
            raise CmrmError(f"got {len(row_ids)} ids for a batch of {x.shape[1]} {variant!r} rows")
        hidden = next(iter(self._moments.values())).mean.shape[1] if self._moments else x.shape[2]
        if x.shape[2] != hidden:
            raise CmrmError(
                f"hidden size changed from {hidden} to {x.shape[2]} ({variant!r}); "
                "feed the states of one model"
            )
        paired = None if variant == TEXT else self._paired_text(variant, row_ids)
        self._next_id[variant] = int(row_ids.max()) + 1
        if variant not in self._moments:
            self._register(variant, hidden)
        self._moments[variant].update(x)
        if paired is None:
            self._text = ({int(i): j for j, i in enumerate(row_ids)}, x)
        else:
            self._cos_sum[variant] += np.nansum(row_cosines(paired, x), axis=1)
            self._cos_n[variant] += len(row_ids)
        if self._reference is None:
            self._reference = x[self._sample_pos].mean(axis=1, keepdims=True)
        self._reservoirs[variant].offer(row_ids, x[self._sample_pos] - self._reference)

    def _register(self, variant: str, hidden: int) -> None:
        self.variants.append(variant)
        self._moments[variant] = _Moments(len(self.layers), hidden)
        self._reservoirs[variant] = Reservoir(self.max_samples, self.seed, self.sample_dtype)
        self._cos_sum[variant] = np.zeros(len(self.layers))
        self._cos_n[variant] = 0

    def _paired_text(self, variant: str, ids: NDArray[np.integer]) -> NDArray[np.float64]:
        """The last text batch's states of ``ids``, ``[L, B, H]``; raises if any is missing."""
        index, text = self._text if self._text is not None else ({}, None)
        missing = [int(i) for i in ids if int(i) not in index]
        if text is None or missing:
            raise CmrmError(
                f"{variant!r} rows {missing[:5]} have no text-only state in the last text batch; "
                "add each batch's 'text' states first, then its other variants with the same ids"
            )
        return text[:, [index[int(i)] for i in ids]]

    def samples(self, variant: str, layer: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """``(ids, states)`` kept for one variant at one sample layer (states re-referenced)."""
        if layer not in self.sample_layers:
            raise CmrmError(f"no samples kept at layer {layer}; kept: {list(self.sample_layers)}")
        if variant not in self._reservoirs:
            raise CmrmError(f"no states for variant {variant!r}; have {self.variants}")
        return self._reservoirs[variant].rows(self.sample_layers.index(layer))

    def _probe(self, variant: str, layer: int) -> ProbeResult:
        if layer not in self.sample_layers or self.max_samples == 0:
            return ProbeResult(math.nan, 0, 0, "no samples kept at this layer")
        t_ids, t = self.samples(TEXT, layer)
        v_ids, v = self.samples(variant, layer)
        if min(len(t_ids), len(v_ids)) == 0:
            return ProbeResult(math.nan, 0, 0, "no samples")
        return probe_accuracy(t, v, text_groups=t_ids, other_groups=v_ids, seed=self.seed)

    def _variant_gap(self, variant: str, pos: int, probe: ProbeResult) -> VariantGap:
        text, other = self._moments[TEXT], self._moments[variant]
        raw = float(np.linalg.norm(other.mean[pos] - text.mean[pos]))
        pairs = self._cos_n[variant]
        return VariantGap(
            variant=variant,
            n=other.n,
            distance=raw,
            normalised_distance=normalise(raw, float(text.spread()[pos])),
            spread=float(other.spread()[pos]),
            paired_cosine=float(self._cos_sum[variant][pos] / pairs) if pairs else math.nan,
            n_pairs=pairs,
            centroid_cosine=cosine(text.mean[pos], other.mean[pos]),
            probe_accuracy=probe.accuracy,
            probe_folds=probe.folds,
            probe_n=probe.n,
            probe_note=probe.note,
        )

    def _fidelity(self, pos: int, primary: str) -> dict[str, NullFidelity]:
        """Null-image fidelity of every null variant against the real-image variant."""
        if primary.startswith("null:") or primary not in self._moments:
            return {}
        text = self._moments[TEXT].mean[pos]
        s_img = text - self._moments[primary].mean[pos]
        norm = float(np.linalg.norm(s_img))
        out = {}
        for variant in self.variants:
            if variant.startswith("null:"):
                s_null = text - self._moments[variant].mean[pos]
                closed = 1 - float(np.linalg.norm(s_img - s_null)) / norm if norm else math.nan
                out[variant] = NullFidelity(cosine(s_img, s_null), closed)
        return out

    def report(
        self,
        *,
        primary: str = "image",
        steered: str | None = None,
        probe: bool = True,
        meta: Mapping[str, Any] | None = None,
    ) -> GapReport:
        """Compute every metric at every layer (the probe only at sample layers)."""
        if TEXT not in self._moments:
            raise CmrmError("no text-only states were added; the gap is measured against them")
        others = [v for v in self.variants if v != TEXT]
        if not others:
            raise CmrmError("only text-only states were added; add at least one image variant")
        if primary not in others:
            primary = others[0]
        if steered is not None and steered not in others:
            raise CmrmError(f"steered variant {steered!r} was never added; have {others}")
        rows = []
        for pos, layer in enumerate(self.layers):
            none = ProbeResult(math.nan, 0, 0, "probe not run")
            gaps = tuple(
                self._variant_gap(v, pos, self._probe(v, layer) if probe else none) for v in others
            )
            closed = math.nan
            if steered is not None:
                by = {g.variant: g for g in gaps}
                closed = gap_closed(by[primary].distance, by[steered].distance)
            spread = float(self._moments[TEXT].spread()[pos])
            fidelity = self._fidelity(pos, primary)
            rows.append(LayerGap(layer, self._moments[TEXT].n, spread, gaps, closed, fidelity))
        return GapReport(
            layers=tuple(rows),
            variants=tuple(self.variants),
            primary=primary,
            steered=steered,
            meta=dict(meta or {}),
        )
