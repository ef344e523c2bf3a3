"""Reports of evaluation runs: Markdown and self-contained HTML with tables and figures."""

from .figures import plot_benchmark, plot_tradeoff
from .render import write_report

__all__ = ["plot_benchmark", "plot_tradeoff", "write_report"]
