"""Checks of user input that run before any expensive work: output folders, devices, layer
specs, prompts, items and their images, prompt length against the model's context.

Each check raises a :class:`~cmrm.base.errors.CmrmError` subclass whose message says what was wrong,
what was received, what is expected and how to fix it. The CLI and the evaluation runner call
them before loading a model, calibrating or generating, so that a bad input costs nothing and
leaves nothing behind.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..base.errors import CmrmError, ConfigError, DataError, LayerResolutionError
from .layers import layer_selection

if TYPE_CHECKING:
    from ..data.items import Item
    from .vlm import VLM

logger = logging.getLogger(__name__)

DEVICES = "cpu, cuda, cuda:N, mps or auto"
_SHOWN = 3
"""How many offending items an error names."""


class DeviceError(CmrmError):
    """The requested device does not exist on this machine."""


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a folder that can be created or written, checked without creating anything.

    Raises:
        ConfigError: ``path`` (or a parent of it) is an existing file, or the nearest existing
            parent folder cannot be written (read-only file system, permissions).
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{what} {path} is an existing file, expected a folder; pass a new or existing "
            "folder with -o"
        )
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(
            f"{what} {path} cannot be created: {parent} is a file, not a folder; pass a "
            "path under an existing folder with -o"
        )
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise ConfigError(
            f"{what} {path} cannot be written: {parent} is not writable ({err.strerror or err}); "
            "pass a folder you can write to with -o"
        ) from err
    return path


def resolve_device(device: str | None, model: str | None = None) -> str | None:
    """The device string to load a model on, checked against this machine.

    ``None`` keeps the loader's default (CPU). ``auto`` means CUDA when it is available, else
    the CPU: for a hub model with CUDA it stays ``auto`` (``device_map="auto"``, which may spread
    a large model over several GPUs); for the organism it becomes ``cuda``.

    Raises:
        DeviceError: an unknown device, or CUDA / MPS asked for where there is none.
    """
    if device is None:
        return None
    import torch

    text = device.strip().lower()
    if text == "auto":
        if not torch.cuda.is_available():
            logger.info("--device auto: no CUDA device, using the CPU")
            return "cpu"
        from .registry import MODELS

        return "cuda" if model in MODELS else "auto"
    if text == "cpu":
        return "cpu"
    kind, _, index = text.partition(":")
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {device}: CUDA is not available on this machine (no GPU, or a "
                "CPU-only torch build); use --device cpu, or --device auto to use a GPU only "
                "where there is one"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise DeviceError(
                f"--device {device}: this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1}); pick one of those"
            )
        return text
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(
                f"--device {device}: MPS is not available on this machine; use --device cpu"
            )
        return text
    raise DeviceError(f"unknown device {device!r}; use one of {DEVICES}")


def check_layers_syntax(spec: str | None) -> None:
    """Reject a layer spec that cannot select anything on any model (``"3:1"``, ``"a-b"``)."""
    if spec is not None:
        layer_selection(spec, 1 << 30)  # a lazy range: nothing is materialised


def peek_num_layers(
    model: str, *, layers_path: str | None = None, trust_remote_code: bool = False
) -> int | None:
    """The text decoder's depth from the model's config alone (no weights loaded), or None
    when it cannot be known before loading (a bundled model, an explicit ``layers_path``, a config
    that cannot be read: the loader then reports the real error). A bundled model is never
    looked up on the hub."""
    from .registry import MODELS

    if model in MODELS or layers_path is not None:
        return None
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(text.num_hidden_layers)
    except (OSError, ValueError, KeyError, AttributeError, TypeError):  # the loader says why
        return None


def check_layers(spec: str | None, num_layers: int | None) -> None:
    """Check ``spec`` (``all``, ``12``, ``10,12``, ``8:16``) against a model depth, if known."""
    if spec is None:
        return
    if num_layers is None:
        check_layers_syntax(spec)
        return
    indices = layer_selection(spec, num_layers)
    bad = [i for i in indices if not -num_layers <= i < num_layers]
    if bad:
        raise LayerResolutionError(
            f"layer {bad[0]} is out of range: the model has {num_layers} layers "
            f"(valid: 0..{num_layers - 1}, or negative from the end)"
        )


def check_prompt(prompt: str) -> None:
    """Reject an empty or whitespace-only prompt."""
    if not prompt.strip():
        raise DataError(
            f"the prompt is empty (got {prompt!r}); pass the request as text, e.g. "
            "cmrm generate MODEL 'Describe the image.'"
        )


def check_items(items: Sequence[Item], source: str) -> None:
    """Every item has a prompt, and every image path names an existing file.

    Raises:
        DataError: naming how many items fail, the first few ids and files, and what to do.
    """
    empty = [item.id for item in items if not item.prompt.strip()]
    if empty:
        raise DataError(
            f"{source}: {len(empty)} item(s) have an empty prompt (e.g. {empty[:_SHOWN]}); "
            "give every item a request or drop those items"
        )
    missing = [
        (item.id, item.image)
        for item in items
        if item.image is not None
        and not isinstance(item.image, Image.Image)
        and not Path(item.image).is_file()
    ]
    if missing:
        shown = ", ".join(f"{path} (item {item_id!r})" for item_id, path in missing[:_SHOWN])
        raise DataError(
            f"{source}: {len(missing)} of {len(items)} image file(s) do not exist, e.g. {shown}; "
            "put the images where the benchmark's layout says (docs/benchmarks.md) or point "
            "image_root=DIR at them"
        )


def context_size(vlm: VLM) -> int | None:
    """The text decoder's context (``max_position_embeddings``), or None if the config has none."""
    config = vlm.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _too_long(vlm: VLM, tokens: int, what: str) -> None:
    limit = context_size(vlm)
    if limit is not None and tokens >= limit:
        raise DataError(
            f"{what} is {tokens} tokens (chat template and image tokens included) but "
            f"{vlm.model_id} has a context of {limit} positions (max_position_embeddings), "
            "with room needed for the answer; shorten the prompt"
        )


def check_prompt_fits(vlm: VLM, prompt: str, image: Any) -> None:
    """The exact prompt length (one prompt, image tokens included) against the context."""
    if context_size(vlm) is None:
        return
    tokens = int(vlm.encode([prompt], [image]).input_ids.shape[1])
    _too_long(vlm, tokens, "the prompt")


def check_items_fit(vlm: VLM, items: Sequence[Item], source: str) -> None:
    """Every item's prompt against the context, counting the text tokens of the rendered chat
    prompt only (a lower bound: image tokens are not counted, so no item is refused wrongly)."""
    limit = context_size(vlm)
    if limit is None or not items:
        return
    texts = [vlm.render(item.prompt, item.image is not None) for item in items]
    counts = [len(ids) for ids in vlm.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    over = [(item.id, n) for item, n in zip(items, counts, strict=True) if n >= limit]
    if over:
        item_id, tokens = max(over, key=lambda pair: pair[1])
        raise DataError(
            f"{source}: {len(over)} item(s) have prompts at or over {vlm.model_id}'s context of "
            f"{limit} positions (max_position_embeddings), e.g. item {item_id!r} with {tokens} "
            "text tokens; shorten or drop them"
        )


def check_choice(flag: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ConfigError naming the flag and the choices."""
    if value not in allowed:
        raise ConfigError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")
    return value
