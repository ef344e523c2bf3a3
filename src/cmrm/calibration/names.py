"""The calibration choices by name, without torch: what ``--estimator``, ``--contrast`` and
``--read`` accept (checked by :mod:`.contrast`, :mod:`.capture` and the CLI) and ``--help``
lists."""

from __future__ import annotations

from typing import Literal, get_args

Estimator = Literal["mean", "pc1"]
Contrast = Literal["null", "image"]
ReadPosition = Literal["last", "mean"]
ESTIMATORS: tuple[str, ...] = get_args(Estimator)
CONTRASTS: tuple[str, ...] = get_args(Contrast)
READ_POSITIONS: tuple[str, ...] = get_args(ReadPosition)

__all__ = ["CONTRASTS", "ESTIMATORS", "READ_POSITIONS", "Contrast", "Estimator", "ReadPosition"]
