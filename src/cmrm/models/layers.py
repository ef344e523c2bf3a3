"""Locate the text decoder's layer list inside a (vision-)language model.

Rules, in order (never a frequency guess: a vision tower deeper than the language model would win):

1. unwrap PEFT (``get_base_model``) and ``torch.compile`` (``_orig_mod``) wrappers;
2. an explicit ``path`` override (``model.get_submodule(path)``) must be an ``nn.ModuleList``;
3. the structural rule: ``model.get_decoder()`` is the text decoder in every supported family; its
   direct ``nn.ModuleList`` children of length ``config.get_text_config().num_hidden_layers`` are
   the candidates, and exactly one must exist.

Indices are zero-based into that list. They are never indices into ``output_hidden_states``,
whose first entry is the embeddings and whose last entry is normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..base.errors import LayerResolutionError


@dataclass(frozen=True)
class DecoderLayers:
    """The text decoder's layers: where they live, the modules, and the residual width."""

    path: str
    modules: nn.ModuleList
    hidden_size: int

    def __len__(self) -> int:
        return len(self.modules)

    def resolve(self, layers: str | int | Sequence[int] | None) -> tuple[int, ...]:
        """Turn ``"all"``/``None``, an int, a list, or a spec like ``"4:12"``/``"1,3,5"`` into indices.

        Negative indices count from the end. Raises LayerResolutionError when out of range.
        """
        n = len(self.modules)
        if layers is None or layers == "all":
            return tuple(range(n))
        if isinstance(layers, str):
            layers = parse_layer_spec(layers, n)
        if isinstance(layers, int):
            layers = [layers]
        assert not isinstance(layers, str)
        if not layers:
            raise LayerResolutionError(
                f"no layer selected; {self.path} has {n} layers (pass 'all', an index or a list)"
            )
        out: list[int] = []
        for index in layers:
            if not -n <= index < n:
                raise LayerResolutionError(
                    f"layer {index} is out of range: {self.path} has {n} layers "
                    f"(valid: 0..{n - 1}, or negative from the end)"
                )
            out.append(index % n)
        if len(set(out)) != len(out):
            raise LayerResolutionError(f"layers {list(layers)} repeat an index")
        return tuple(sorted(out))


def parse_layer_spec(spec: str, num_layers: int) -> list[int]:
    """Parse ``"all"``, ``"3"``, ``"1,3,5"`` or a slice ``"4:12"`` (end exclusive); see
    :func:`layer_selection`, which this materialises."""
    return list(layer_selection(spec, num_layers))


def layer_selection(spec: str, num_layers: int) -> Sequence[int]:
    """Parse ``"all"``, ``"3"``, ``"1,3,5"`` or a slice ``"4:12"`` (end exclusive).

    A slice must lie inside the ``num_layers`` layers and select at least one: ``"8:16"`` on a
    model with 4 layers and ``"3:1"`` are errors, never a silent empty selection. Negative bounds
    count from the end, as in Python (``"-2:"`` is the last two layers).

    Raises:
        LayerResolutionError: the spec does not parse, a bound is out of range, or it selects
            nothing.
    """
    text = spec.strip()
    if text in ("", "all"):
        return range(num_layers)
    try:
        if ":" in text:
            start_text, _, stop_text = text.partition(":")
            start = int(start_text) if start_text.strip() else 0
            stop = int(stop_text) if stop_text.strip() else num_layers
        else:
            indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise LayerResolutionError(
            f"cannot parse layers {spec!r}; use 'all', an index '12', a list '10,12,14' "
            "or a slice '8:16'"
        ) from err
    if ":" not in text:
        if not indices:
            raise LayerResolutionError(
                f"layers {spec!r} names no layer; use 'all', an index '12' or a list '10,12,14'"
            )
        return indices
    if min(start, stop) >= 0 and start >= stop:
        raise LayerResolutionError(
            f"layer slice {spec!r} selects no layer: the start must be below the exclusive end, "
            f"e.g. '{stop}:{start + 1}'"
        )
    for bound in (start, stop):
        if not -num_layers <= bound <= num_layers:
            raise LayerResolutionError(
                f"layer slice {spec!r} is out of range: the model has {num_layers} layers "
                f"(slice bounds 0..{num_layers}, or negative from the end); e.g. "
                f"'{max(num_layers // 2, 0)}:{num_layers}'"
            )
    selected = range(num_layers)[start:stop]
    if not selected:
        raise LayerResolutionError(
            f"layer slice {spec!r} selects no layer (start must be below the exclusive end); "
            f"the model has {num_layers} layers, e.g. '{max(num_layers // 2, 0)}:{num_layers}'"
        )
    return selected


def unwrap(model: Any) -> Any:
    """Strip PEFT and torch.compile wrappers."""
    for _ in range(4):
        if hasattr(model, "get_base_model") and callable(model.get_base_model):
            model = model.get_base_model()
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            break
    return model


def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    if config is None:
        raise LayerResolutionError(
            f"{type(model).__name__} has no .config; pass a transformers model"
        )
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def locate_decoder_layers(model: Any, path: str | None = None) -> DecoderLayers:
    """Find the text decoder's layer list (see the module docstring for the rules).

    Raises:
        LayerResolutionError: the override is not a ModuleList, or no / several candidates.
    """
    model = unwrap(model)
    text_config = _text_config(model)
    hidden = int(text_config.hidden_size)
    if path is not None:
        try:
            modules = model.get_submodule(path)
        except AttributeError as err:
            raise LayerResolutionError(
                f"no submodule {path!r} in {type(model).__name__}; "
                "run `cmrm inspect MODEL` to see the decoder path"
            ) from err
        if not isinstance(modules, nn.ModuleList):
            raise LayerResolutionError(
                f"{path!r} is a {type(modules).__name__}, expected an nn.ModuleList of decoder layers"
            )
        return DecoderLayers(path, modules, hidden)
    expected = int(text_config.num_hidden_layers)
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    prefix = next((name for name, mod in model.named_modules() if mod is decoder), "")
    candidates = [
        (name, child)
        for name, child in decoder.named_children()
        if isinstance(child, nn.ModuleList) and len(child) == expected
    ]
    if len(candidates) != 1:
        found = [
            name for name, child in decoder.named_children() if isinstance(child, nn.ModuleList)
        ]
        raise LayerResolutionError(
            f"cannot locate the text decoder layers of {type(model).__name__}: expected exactly one "
            f"nn.ModuleList of length {expected} under {prefix or 'the model'}, found "
            f"{len(candidates)} (module lists there: {found or 'none'}). "
            "Pass the path explicitly (--layers-path / layers_path=...)"
        )
    name, modules = candidates[0]
    full = f"{prefix}.{name}" if prefix else name
    return DecoderLayers(full, modules, hidden)
