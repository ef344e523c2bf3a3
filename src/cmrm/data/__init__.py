"""Benchmark loaders: upstream files (local root or on-demand download) -> :class:`~cmrm.data.items.Item`.

See ``docs/benchmarks.md`` for every loader's source, licence, local layout and options.
"""

from .benchmark import Benchmark, Option
from .fetch import cache_dir
from .pairing import pair_items
from .registry import get_benchmark, list_benchmarks, load_items, parse_spec
from .splits import anchor_score, split_items

__all__ = [
    "Benchmark",
    "Option",
    "anchor_score",
    "cache_dir",
    "get_benchmark",
    "list_benchmarks",
    "load_items",
    "pair_items",
    "parse_spec",
    "split_items",
]
