"""Representation-gap metrics, computed from whole arrays of states (one layer at a time).

Notation: ``T`` is the ``[n, hidden]`` array of text-only states of one layer, ``V`` the states of
another variant (the real image, a null image, a caption, or the image after CMRM), ``mu(X)`` the
mean of the rows of ``X``.

- **spread**: ``spread(X) = sqrt(mean_i ||x_i - mu(X)||^2)``, the root-mean-square distance of the
  states to their centroid (the square root of the trace of the covariance, with ``1/n``).
- **centroid distance**: raw ``||mu(V) - mu(T)||``; normalised ``||mu(V) - mu(T)|| / spread(T)``,
  i.e. in units of the text-only states' own spread (scale-free across layers and models).
- **paired cosine**: ``mean_i cos(t_i, v_i)`` over the queries present in both variants.
- **centroid cosine**: ``cos(mu(T), mu(V))``.
- **probe accuracy**: the cross-validated accuracy of a logistic-regression probe (L2, C=1,
  liblinear) separating ``T``
  from ``V`` (features standardised on each training fold; stratified k-fold with
  ``k = min(5, smallest class size, number of groups)``, seeded shuffling; when query ids are given,
  the folds are grouped by query, so a query's text and image states are never split between
  training and testing). 0.5 is chance for balanced classes; 1.0 means perfectly separable.
- **gap closed**: ``1 - d_after / d_before`` (raw or normalised distances give the same number):
  1 means the steered centroid sits on the text-only one, 0 no change, < 0 a wider gap.

:class:`~cmrm.analysis.accumulator.GapAccumulator` computes the same quantities while the states
stream in; the functions here are the reference definitions it is tested against.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..base.errors import CmrmError

Array = NDArray[np.floating]
MAX_FOLDS = 5


def _rows(x: Array, name: str) -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise CmrmError(f"{name} must be a non-empty [n, hidden] array, got shape {arr.shape}")
    return arr


def spread(states: Array) -> float:
    """``sqrt(mean_i ||x_i - mu||^2)`` of ``[n, hidden]`` states."""
    x = _rows(states, "states")
    return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))


def centroid_distance(text: Array, other: Array) -> tuple[float, float]:
    """``(raw, normalised)``: ``||mu(other) - mu(text)||`` and that over ``spread(text)``.

    The normalised distance is ``inf`` when the text states have no spread and the centroids differ,
    and ``nan`` when both are zero.
    """
    t, v = _rows(text, "text states"), _rows(other, "other states")
    raw = float(np.linalg.norm(v.mean(axis=0) - t.mean(axis=0)))
    return raw, normalise(raw, spread(t))


def normalise(distance: float, text_spread: float) -> float:
    """``distance / text_spread`` with the degenerate cases spelled out (see centroid_distance)."""
    if text_spread > 0:
        return distance / text_spread
    return math.nan if distance == 0 else math.inf


def cosine(a: Array, b: Array) -> float:
    """Cosine similarity of two vectors; ``nan`` if either is zero."""
    u, w = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = float(np.linalg.norm(u) * np.linalg.norm(w))
    return float(u @ w) / denom if denom > 0 else math.nan


def row_cosines(a: Array, b: Array) -> NDArray[np.float64]:
    """Cosine of each row pair ``(a_i, b_i)``; rows of zeros give ``nan``."""
    u, w = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(u, axis=-1) * np.linalg.norm(w, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (u * w).sum(axis=-1) / denom, np.nan)


def paired_cosine(text: Array, other: Array) -> float:
    """``mean_i cos(text_i, other_i)``; row ``i`` of both arrays must be the same query."""
    t, v = _rows(text, "text states"), _rows(other, "other states")
    if t.shape != v.shape:
        raise CmrmError(
            f"paired states must have the same shape, got {t.shape} and {v.shape}; "
            "pass the same queries in the same order"
        )
    return float(np.nanmean(row_cosines(t, v)))


def centroid_cosine(text: Array, other: Array) -> float:
    """``cos(mu(text), mu(other))``."""
    t, v = _rows(text, "text states"), _rows(other, "other states")
    return cosine(t.mean(axis=0), v.mean(axis=0))


def gap_closed(before: float, after: float) -> float:
    """``1 - after / before``; ``nan`` when there was no gap to close."""
    return 1.0 - after / before if before > 0 and math.isfinite(before) else math.nan


@dataclass(frozen=True)
class ProbeResult:
    """A probe's mean cross-validated accuracy, or ``nan`` with the reason it could not run."""

    accuracy: float
    folds: int
    n: int
    note: str = ""


def probe_accuracy(
    text: Array,
    other: Array,
    *,
    text_groups: Sequence[int] | NDArray[np.integer] | None = None,
    other_groups: Sequence[int] | NDArray[np.integer] | None = None,
    folds: int = MAX_FOLDS,
    seed: int = 0,
) -> ProbeResult:
    """Cross-validated accuracy of a linear probe separating ``text`` (0) from ``other`` (1).

    ``*_groups`` (query ids) keep every query's rows in one fold. With fewer than two rows per
    class (or two groups), the result is ``nan`` and ``note`` says why; it never raises for small n.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t, v = _rows(text, "text states"), _rows(other, "other states")
    x = np.concatenate([t, v])
    y = np.concatenate([np.zeros(len(t), dtype=int), np.ones(len(v), dtype=int)])
    k = min(folds, len(t), len(v))
    groups: NDArray[np.integer] | None = None
    if text_groups is not None and other_groups is not None:
        groups = np.concatenate([np.asarray(text_groups), np.asarray(other_groups)])
        k = min(k, len(np.unique(groups)))
    if k < 2:
        note = f"needs at least 2 rows per class (and 2 queries); got {len(t)} and {len(v)}"
        return ProbeResult(math.nan, 0, len(x), note)
    cv = (
        StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        if groups is not None
        else StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    )
    probe = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and constant-feature warnings on tiny data
        scores = cross_val_score(probe, x, y, groups=groups, cv=cv, scoring="accuracy")
    return ProbeResult(float(np.mean(scores)), k, len(x))
