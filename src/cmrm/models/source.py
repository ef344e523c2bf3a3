"""Where a ``MODEL`` argument comes from: a bundled model, a local folder, or the hub.

Decided from the text alone, before any network request, so that a bundled organism never
touches the hub and a typo fails at once instead of after a minute of retries:

- a name of :data:`~cmrm.models.registry.MODELS` (``organism``, ``organism-smol``) is bundled;
- an existing directory is a local checkpoint;
- something written as a path (``./mymodel``, ``../m``, ``/abs``, ``~/m``, ``C:\\m``) that does
  not exist is a missing local folder, not a hub id;
- a single word close to a bundled name (``organsim``) is a typo of it (did-you-mean);
- anything else must look like a hub id (``org/name`` or a legacy ``name``).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal

from ..base.errors import DataError, unknown_name
from .registry import MODELS

Source = Literal["bundled", "local", "hub"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?")
_PATHLIKE = ("./", "../", "/", "~", ".\\", "..\\")


def _looks_like_a_path(model: str) -> bool:
    return (
        model.startswith(_PATHLIKE)
        or model in (".", "..")
        or bool(re.match(r"[A-Za-z]:[\\/]", model))
        or model.count("/") > 1
        or "\\" in model
    )


def model_source(model: str) -> Source:
    """Where ``model`` is loaded from (see the module docstring); no network.

    Raises:
        DataError: a path that does not exist, or text that is no hub id.
        UnknownNameError: a typo of a bundled model's name, with the suggestion.
    """
    if model in MODELS:
        return "bundled"
    path = Path(model).expanduser()
    if path.is_dir():
        return "local"
    bundled = MODELS.names()
    if _looks_like_a_path(model) or path.exists():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"local model folder {model} {what}; pass a directory saved with save_pretrained, "
            f"a hub id like org/name, or a bundled model ({', '.join(bundled)})"
        )
    lowered = {name.lower(): name for name in bundled}
    if "/" not in model and difflib.get_close_matches(model.lower(), list(lowered), n=1):
        raise unknown_name("bundled model", model, bundled)
    if not _HUB_ID.fullmatch(model):
        raise DataError(
            f"{model!r} is neither a bundled model ({', '.join(bundled)}), an existing folder, "
            "nor a hub id (org/name); check the spelling"
        )
    return "hub"


__all__ = ["Source", "model_source"]
