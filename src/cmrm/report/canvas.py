"""The one figure writer: a fresh matplotlib figure on an Agg canvas, saved as PNG atomically.

Every figure cmrm draws (run reports, the gap analysis, the demo) is made with
:func:`new_figure` (matplotlib's object API: no display, no global pyplot state, nothing to close)
and written with :func:`save_figure` (through :mod:`cmrm.base.atomic`, so a crash never leaves a
half-written PNG).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` (``figsize=``, ``dpi=``, ``layout=`` ...) attached to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_figure(
    figure: Figure, path: str | Path, *, dpi: float | None = None, tight: bool = False
) -> Path:
    """Render ``figure`` to PNG and write it to ``path`` atomically; returns ``path``.

    Args:
        dpi: resolution (default: the figure's own).
        tight: crop to the drawn area (``bbox_inches="tight"``).
    """
    buffer = io.BytesIO()
    options: dict[str, Any] = {"format": "png"}
    if dpi is not None:
        options["dpi"] = dpi
    if tight:
        options["bbox_inches"] = "tight"
    figure.savefig(buffer, **options)
    return atomic_write(path, buffer.getvalue())
