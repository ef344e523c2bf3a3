"""Reports and figures: the one report writer (:mod:`.document`: Markdown, HTML, text tables),
the one figure writer (:mod:`.canvas`), and the report of an evaluation run (:mod:`.render`,
:mod:`.figures`). Imported lazily (the run report imports matplotlib)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base.lazy import attach

if TYPE_CHECKING:
    from .canvas import new_figure as new_figure
    from .canvas import save_figure as save_figure
    from .document import Document as Document
    from .document import Section as Section
    from .document import Table as Table
    from .document import write_document as write_document
    from .figures import plot_benchmark as plot_benchmark
    from .figures import plot_tradeoff as plot_tradeoff
    from .render import write_report as write_report

_EXPORTS = {
    "new_figure": ".canvas",
    "save_figure": ".canvas",
    "Document": ".document",
    "Section": ".document",
    "Table": ".document",
    "write_document": ".document",
    "plot_benchmark": ".figures",
    "plot_tradeoff": ".figures",
    "write_report": ".render",
}

__all__ = [
    "Document",
    "Section",
    "Table",
    "new_figure",
    "plot_benchmark",
    "plot_tradeoff",
    "save_figure",
    "write_document",
    "write_report",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
