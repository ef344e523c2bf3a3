"""The :class:`Benchmark` record: a named loader with its provenance, options and download plan."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cmrm.base.errors import DataError
from cmrm.data.items import Item

from .fetch import Remote, announce, ensure_local
from .splits import DEFAULT_ANCHOR_FRACTION, check_split, split_items

log = logging.getLogger(__name__)

BenchmarkKind = Literal["safety", "over-refusal", "utility", "custom"]
Reader = Callable[[Path | None, Mapping[str, Any], int | None], list[Item]]
"""``reader(root, options, limit_hint) -> items``; ``limit_hint`` may be ignored."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One loader option: its default, a help line, and how a CLI string is parsed."""

    default: Any
    help: str
    type: Literal["str", "bool", "path"] = "str"
    choices: tuple[str, ...] | None = None

    def parse(self, name: str, value: Any) -> Any:
        """``value`` (a Python value, or a string from ``--option key=value``) checked and typed."""
        if value is None:
            return None
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _TRUE + _FALSE:
                raise DataError(f"option {name!r} must be true or false, got {value!r}")
            return text in _TRUE
        if self.type == "path":
            return Path(value).expanduser()
        if not isinstance(value, str):
            raise DataError(f"option {name!r} must be a string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise DataError(f"option {name!r} must be one of {list(self.choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class Benchmark:
    """A named data source that yields :class:`~cmrm.data.items.Item` records."""

    name: str
    description: str
    source: str
    """Upstream URL or hub id."""
    licence: str
    kind: BenchmarkKind
    layout: str
    """The files ``root`` must hold, as laid out upstream (shown in errors and docs)."""
    reader: Reader = field(repr=False, compare=False)
    options: Mapping[str, Option] = field(default_factory=dict, repr=False, compare=False)
    remote: Remote | None = field(default=None, repr=False, compare=False)
    """How to download the files when no root is given; None when that is impossible."""
    no_download: str = ""
    """Why there is no download (shown when root is missing and ``remote`` is None)."""
    uses_root: bool = True
    """False for built-in sources (the organism suites) that take no root."""
    aliases: tuple[str, ...] = ()
    """Other names the benchmark is found under (the paper's, e.g. ``JailbreakLLMs``); matched
    without regard to case."""
    default_judge: str = "refusal"
    """The judge (a :data:`cmrm.judges.registry.JUDGES` name) ``cmrm eval`` uses for this
    benchmark unless told otherwise."""

    def load(
        self,
        root: str | Path | None = None,
        *,
        split: str | None = None,
        limit: int | None = None,
        seed: int = 0,
        anchor_fraction: float = DEFAULT_ANCHOR_FRACTION,
        **options: Any,
    ) -> list[Item]:
        """Read the items; ``split`` keeps the anchor or eval side, ``limit`` the first N after it.

        Raises:
            DataError: unknown option, missing or malformed file, failed download, bad split.
        """
        opts = self.resolve_options(options)
        check_split(split, anchor_fraction)
        if limit is not None and limit < 0:
            raise DataError(f"limit must be >= 0 or None, got {limit}")
        items = self.reader(self._root(root, opts), opts, limit if split is None else None)
        _check_unique(self.name, items)
        if split is not None:
            items = split_items(items, split, anchor_fraction=anchor_fraction, seed=seed)
        return items if limit is None else items[:limit]

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``; raise on a name this benchmark does not know."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise DataError(
                f"unknown option(s) {unknown} for benchmark {self.name!r}; valid options: {valid}"
            )
        out = {k: o.default for k, o in self.options.items()}
        out.update({k: self.options[k].parse(k, v) for k, v in given.items()})
        return out

    def _root(self, root: str | Path | None, opts: Mapping[str, Any]) -> Path | None:
        if not self.uses_root:
            if root is not None:
                raise DataError(f"{self.name} is built in and takes no root, got root={root!r}")
            return None
        if root is not None:
            path = Path(root).expanduser()
            if not path.exists():
                raise DataError(
                    f"root {path} does not exist; pass the folder with {self.name}'s upstream "
                    f"layout ({self.layout})"
                )
            return path
        if self.remote is None:
            raise DataError(
                f"{self.name} cannot be downloaded automatically: {self.no_download} "
                f"Pass --root DIR (root=DIR) with the upstream layout ({self.layout})."
            )
        path = ensure_local(self.name, self.remote, self.layout, opts)
        announce(self.name, self.licence, self.source)
        return path


def _check_unique(name: str, items: list[Item]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{name}: duplicate item id {item.id!r}; ids must be unique")
        seen.add(item.id)
