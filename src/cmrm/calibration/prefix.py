"""The null image's prompt prefix, run once: sample-level shifts without a second long prefill.

A sample-level shift (contrast ``null``) needs, per request, the states of the request's text
with the *null* image in place of its own. In a decoder that reads images as tokens
(LLaVA: ``USER: <image> x 576 \\n {text} ASSISTANT:``), everything up to the end of the image block
is the same for every request with the same null image, and causal attention keeps it blind to
the text after it. So its keys and values are computed once per (model, prefix tokens, image
inputs) and every later batch runs only its own text on top of them: the extra prefill shrinks
from the whole prompt (576+ tokens at LLaVA-1.5's size) to the text's few tokens.

Safety, in order:

- used only for families whose ``FamilySpec.causal_image_prefix`` says the image block attends
  causally and positions are plain 1-D (not PaliGemma's bidirectional prefix, not Qwen2-VL's
  3-D rope), only for read position ``last``, and only when no hook sits on a decoder layer (a
  prefix computed under steering would be wrong for every later request);
- every row of the batch must share the prefix tokens and the image inputs, else the caller's
  ordinary pass runs;
- **checked on first use**: the first batch of each prefix is also run the ordinary way and the
  states compared; a mismatch disables the prefix for that model (with a warning) and the
  ordinary states are returned.

At most :data:`MAX_PREFIXES` prefixes are kept per model (a LLaVA-1.5-7B prefix in bfloat16 is
about 0.3 GB: 32 layers x keys and values x 580 tokens x 4,096).
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..models.hooks import HookSet, hidden_of
from ..models.vlm import VLM, Batch
from .capture import _Enough, capture_batch  # the one stop-early signal of the recording hooks

logger = logging.getLogger(__name__)

MAX_PREFIXES = 2


@dataclass(frozen=True)
class Prefix:
    """The keys and values of a shared prompt prefix, batch 1, one pair per decoder layer."""

    length: int
    keys_values: tuple[tuple[Tensor, Tensor], ...]


_Key = tuple[tuple[int, ...], str]
_STORE: weakref.WeakKeyDictionary[nn.Module, dict[_Key, Prefix | None]] = (
    weakref.WeakKeyDictionary()
)


def clear() -> None:
    """Forget every stored prefix (tests; a model whose weights were changed in place)."""
    _STORE.clear()


def _layer_hooks_present(vlm: VLM) -> bool:
    return any(module._forward_hooks or module._forward_pre_hooks for module in vlm.layers.modules)


def _split(vlm: VLM, batch: Batch) -> tuple[_Key, list[Tensor]] | None:
    """The shared prefix's key and each row's tokens after it, or None when the rows do not
    share one (or the batch's layout does not allow it)."""
    ids, mask, image = batch.input_ids, batch.attention_mask.bool(), batch.image_mask
    n, width = ids.shape
    rows = [ids[i][mask[i]] for i in range(n)]
    images = [image[i][mask[i]] for i in range(n)]
    if any(not bool(m.any()) for m in images):
        return None
    end = int(torch.nonzero(images[0]).max()) + 1
    head = rows[0][:end]
    for row, img in zip(rows, images, strict=True):
        if len(row) <= end or not torch.equal(row[:end], head) or bool(img[end:].any()):
            return None
    digest = hashlib.sha256(f"{vlm.device} {vlm.dtype}".encode())  # a moved model recomputes
    for name in sorted(batch.inputs):
        if name in ("input_ids", "attention_mask"):
            continue
        value = batch.inputs[name]
        if value.dim() == 2 and tuple(value.shape) == (n, width):
            continue  # per-token extras (token type ids): rebuilt for the prefix below
        if value.shape[0] != n or any(not torch.equal(value[i], value[0]) for i in range(n)):
            return None  # flattened or differing image inputs: no shared prefix
        digest.update(name.encode() + str(value.dtype).encode())
        digest.update(value[0].detach().float().cpu().numpy().tobytes())
    key = (tuple(int(t) for t in head), digest.hexdigest())
    return key, [row[end:] for row in rows]


def _prefix_inputs(batch: Batch, length: int) -> dict[str, Tensor]:
    """Row 0's inputs cut to the prefix."""
    ids, mask = batch.input_ids, batch.attention_mask.bool()
    n, width = ids.shape
    start = int(torch.nonzero(mask[0]).min())
    out: dict[str, Tensor] = {}
    for name, value in batch.inputs.items():
        if value.dim() == 2 and tuple(value.shape) == (n, width):
            out[name] = value[:1, start : start + length]
        else:
            out[name] = value[:1]
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    return out


def _compute(vlm: VLM, batch: Batch, length: int) -> Prefix:
    from transformers import DynamicCache

    cache = DynamicCache(config=vlm.model.config)
    with torch.inference_mode():
        vlm.model(**_prefix_inputs(batch, length), cache=cache, use_cache=True, logits_to_keep=1)
    pairs: list[tuple[Tensor, Tensor]] = []
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if not isinstance(keys, Tensor) or not isinstance(values, Tensor):
            raise TypeError(f"a cache layer of type {type(layer).__name__} holds no keys")
        if keys.shape[-2] != length:  # a sliding window, or a layer that shares another's
            raise ValueError("the cache does not hold the whole prefix")
        pairs.append((keys, values))
    return Prefix(length=length, keys_values=tuple(pairs))


def _suffix_states(
    vlm: VLM, prefix: Prefix, suffixes: list[Tensor], layers: tuple[int, ...]
) -> Tensor:
    """States ``[n_layers, B, hidden]`` at each row's last token, run on top of the prefix."""
    from transformers import DynamicCache

    n = len(suffixes)
    lengths = torch.tensor([len(s) for s in suffixes])
    width = int(lengths.max())
    pad = vlm.tokenizer.pad_token_id
    device = vlm.device
    ids = torch.full((n, width), 0 if pad is None else int(pad), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, : len(s)] = s.cpu()
    mask = torch.cat(
        [
            torch.ones(n, prefix.length, dtype=torch.long),
            torch.arange(width)[None] < lengths[:, None],
        ],
        dim=1,
    ).long()
    cache = DynamicCache(
        ddp_cache_data=[
            (k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prefix.keys_values
        ],
        config=vlm.model.config,
    )
    last = (lengths - 1).to(device)
    found: dict[int, Tensor] = {}
    deepest = max(layers)

    def make_hook(index: int) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            hidden = hidden_of(output)
            found[index] = hidden[torch.arange(n, device=hidden.device), last].float().cpu()
            if index == deepest:
                raise _Enough

        return record

    with HookSet() as hooks:
        for index in layers:
            hooks.forward(vlm.layers.modules[index], make_hook(index))
        try:
            with torch.inference_mode():
                vlm.model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    cache=cache,
                    use_cache=True,
                )
        except _Enough:
            pass
    return torch.stack([found[index] for index in layers])


def _agree(cached: Tensor, ordinary: Tensor, dtype: torch.dtype) -> bool:
    """Every row's state within a relative distance of the ordinary pass's (float noise)."""
    limit = 1e-3 if dtype == torch.float32 else 3e-2
    distance = (cached - ordinary).norm(dim=-1) / ordinary.norm(dim=-1).clamp(min=1e-12)
    return bool(distance.max() <= limit)


def prefixed_states(vlm: VLM, batch: Batch, layers: tuple[int, ...]) -> Tensor | None:
    """States ``[n_layers, B, hidden]`` at the last prompt token of an image batch whose rows
    share their prefix, computed on the stored prefix; None when that is not allowed here (see
    the module docstring: the caller runs its ordinary pass). The first batch of a prefix is
    also run the ordinary way, and those states are returned."""
    if not vlm.spec.causal_image_prefix or _layer_hooks_present(vlm):
        return None
    split = _split(vlm, batch)
    if split is None:
        return None
    key, suffixes = split
    known = _STORE.setdefault(vlm.model, {})
    if key in known:
        prefix = known[key]
        return None if prefix is None else _suffix_states(vlm, prefix, suffixes, layers)
    try:
        prefix = _compute(vlm, batch, len(key[0]))
        cached = _suffix_states(vlm, prefix, suffixes, layers)
    except (ValueError, TypeError, RuntimeError) as exc:
        logger.warning("%s: the null image's prefix cannot be reused (%s)", vlm.model_id, exc)
        known[key] = None
        return None
    reference = capture_batch(vlm, batch, layers=layers, read="last", stop_early=True)
    if not _agree(cached, reference, vlm.dtype):
        logger.warning(
            "%s: states on the stored null-image prefix differ from the ordinary pass "
            "(max |diff| %.3g); the prefix is not reused",
            vlm.model_id,
            float((cached - reference).abs().max()),
        )
        known[key] = None
        return reference
    while len(known) >= MAX_PREFIXES:
        known.pop(next(iter(known)))
    known[key] = prefix
    return reference


def prefix_count(vlm: VLM) -> int:
    """How many usable prefixes are stored for this model (tests, benchmarks)."""
    return sum(p is not None for p in _STORE.get(vlm.model, {}).values())


__all__: Sequence[str] = ["MAX_PREFIXES", "Prefix", "clear", "prefix_count", "prefixed_states"]
