"""Where a run's items and judges come from: benchmark loading, anchor leakage checks, judges."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base.errors import ConfigError, DataError
from ..data.images import NullImage
from ..data.items import Item
from ..judges.judgment import Judge
from .config import EvalConfig, base_name

LoadItemsFn = Callable[..., list[Item]]
"""``load_items(spec, *, root=None, split=None, limit=None, seed=0, **options) -> items``."""
GetJudgeFn = Callable[..., Judge]
"""``get_judge(name, **options) -> Judge``."""


def default_load_items(spec: str, *, root: str | Path | None = None, **kwargs: Any) -> list[Item]:
    """:func:`cmrm.data.load_items`, with ``root`` dropped for specs that are files."""
    from ..data.registry import load_items, parse_spec

    _, path, _ = parse_spec(spec)
    return load_items(spec, root=None if path is not None else root, **kwargs)


def default_get_judge(name: str, **options: Any) -> Judge:
    """:func:`cmrm.judges.get_judge` (every judge, the organism's included, is a registry entry)."""
    from ..judges.registry import get_judge

    return get_judge(name, **options)


def attach_null(items: Sequence[Item], null: NullImage) -> list[Item]:
    """Give items marked ``meta["pair"] == "null"`` (text benchmarks) the run's null image."""
    picture = None
    out = []
    for item in items:
        if item.image is None and item.meta.get("pair") == "null":
            picture = picture or null.render()
            item = dataclasses.replace(item, image=picture, meta={**item.meta, "null": null.spec})
        out.append(item)
    return out


def load_benchmark(
    config: EvalConfig, spec: str, load_items_fn: LoadItemsFn, *, limit: int | None
) -> list[Item]:
    """The items of one benchmark spec (null images attached), with unique ids."""
    items = load_items_fn(
        spec,
        root=config.root_for(spec),
        limit=limit,
        seed=config.seed,
        **dict(config.bench_options.get(spec, {})),
    )
    if not items:
        raise DataError(f"benchmark {spec!r} has no items; check the spec, root and --limit")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise DataError(f"benchmark {spec!r} repeats item ids; ids must be unique within it")
    return attach_null(items, NullImage.parse(config.null))


def check_anchor_leak(
    anchor_spec: str, anchors: Sequence[Item], eval_spec: str, items: Sequence[Item]
) -> None:
    """Raise ConfigError if ``items`` would evaluate on anchor items.

    Leakage is: the same spec; the anchor split's full benchmark (``vlsafe`` for anchors
    ``vlsafe:anchor``); or shared ids within one benchmark or with identical prompts.
    """
    if eval_spec == anchor_spec or (
        anchor_spec.endswith(":anchor") and base_name(anchor_spec) == eval_spec
    ):
        raise ConfigError(
            f"benchmark {eval_spec!r} contains the anchor set {anchor_spec!r}; never evaluate on "
            f"anchors. {held_out_hint(anchor_spec)}"
        )
    same_source = base_name(anchor_spec) == base_name(eval_spec)
    prompts = {a.id: a.prompt for a in anchors}
    shared = sorted(
        i.id for i in items if i.id in prompts and (same_source or prompts[i.id] == i.prompt)
    )
    if shared:
        raise ConfigError(
            f"benchmark {eval_spec!r} shares {len(shared)} item id(s) with anchors "
            f"{anchor_spec!r} (e.g. {shared[:3]}); never evaluate on anchors. Use disjoint "
            "splits (BENCH:anchor and BENCH:eval) or remove the shared items."
        )


def held_out_hint(anchor_spec: str) -> str:
    """What to evaluate on instead of the anchors ``anchor_spec``.

    A registered anchor suite ``PREFIX:anchor`` with sibling suites (a bundled organism's:
    ``organism:anchor`` has no ``:eval`` split) -> its held-out siblings, every ``PREFIX:*`` but
    the anchors and the ``PREFIX:val-*`` validation suites; the anchor split of a benchmark
    (``vlsafe:anchor``) -> its eval split; anything else -> a disjoint benchmark."""
    from ..data.registry import BENCHMARKS

    prefix, sep, split = anchor_spec.rpartition(":")
    if sep and split == "anchor" and anchor_spec in BENCHMARKS:
        held_out = [
            n
            for n in BENCHMARKS.names()
            if n.startswith(f"{prefix}:")
            and not n.startswith((f"{prefix}:val-", f"{prefix}:anchor"))
        ]
        if held_out:
            return f"Evaluate on its held-out suites instead, e.g. --bench {','.join(held_out)}."
    if sep and split == "anchor":
        return f"Evaluate on {prefix}:eval instead."
    return (
        "Evaluate on a benchmark disjoint from the anchors (or split one: BENCH:anchor and "
        "BENCH:eval)."
    )


def build_judges(
    config: EvalConfig, get_judge_fn: GetJudgeFn, names: Sequence[str]
) -> Mapping[str, Judge]:
    """One judge object per distinct judge name in ``names`` (built once, shared by cells)."""
    built: dict[str, Judge] = {}
    for name in names:
        if name not in built:
            built[name] = get_judge_fn(name, **dict(config.judge_options.get(name, {})))
    return built


def check_tuning_leak(
    shift_meta_extra: Mapping[str, Any], spec: str, items: Sequence[Item]
) -> None:
    """Raise ConfigError if ``items`` share prompts with the anchors or validation benchmarks
    that ``cmrm tune`` chose the shift's recommended setting on (``extra.tuned_on``)."""
    import hashlib

    tuned = shift_meta_extra.get("tuned_on")
    if not isinstance(tuned, Mapping):
        return
    guard = set(tuned.get("prompt_hashes", ()))
    shared = [i.id for i in items if hashlib.sha256(i.prompt.encode()).hexdigest()[:16] in guard]
    if shared:
        raise ConfigError(
            f"benchmark {spec!r} shares {len(shared)} prompt(s) with the data the shift was tuned "
            f"on (anchors {tuned.get('anchors')!r}, validation {tuned.get('val')}; e.g. "
            f"{shared[:3]}); evaluate on held-out data only"
        )
