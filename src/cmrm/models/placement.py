"""Where a model's weights live: one device, or accelerate's big-model placement across GPUs,
CPU memory and disk (``--device-map``, ``--max-memory``, ``--offload-folder``).

With a device map, decoder layers may sit on different GPUs, or be offloaded (their weights kept
on the CPU or on disk and brought to the execution device by accelerate's hooks for each call).
cmrm's hooks follow the hidden state: a steering vector is moved to the device and dtype of the
tensor it is added to, for every layer separately (``cmrm.steering``), masks likewise, and
captured states are moved to the CPU. Inputs go to :func:`execution_device`: the first GPU of the
map (accelerate's main device), else the CPU — never ``meta``, where offloaded weights sit.

Under torchrun with several ranks per node and ``device_map="auto"``, each rank gets its own
group of GPUs (``LOCAL_RANK``-th slice of ``device_count // LOCAL_WORLD_SIZE``) unless
``max_memory`` says otherwise.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..base.errors import ConfigError

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([kmgt]i?b)?$", re.IGNORECASE)

DeviceMap = str | dict[str, int | str]
MaxMemory = dict[int | str, int | str]


def parse_device_map(value: str | Mapping[str, Any] | None) -> DeviceMap | None:
    """``auto``/``balanced``/``balanced_low_0``/``sequential``, a JSON object, or a JSON file
    mapping module names to devices (an int GPU index, ``cpu``, ``disk``, ``cuda:1`` ...).

    Raises:
        ConfigError: anything else.
    """
    if value is None or (isinstance(value, str) and value in STRATEGIES):
        return value
    data: Any = value
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise ConfigError(
                    f"--device-map must be one of {', '.join(STRATEGIES)}, a JSON object or a "
                    f"JSON file, got {value!r}"
                )
            text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--device-map {value!r} is not valid JSON ({err.msg})") from err
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"a device map is a non-empty JSON object of module -> device, got {data!r}"
        )
    out: dict[str, int | str] = {}
    for name, device in data.items():
        if isinstance(device, bool) or not isinstance(device, int | str):
            raise ConfigError(
                f"device map entry {name!r}: {device!r} is not a device (use a GPU index, "
                "'cpu', 'disk' or a torch device string like 'cuda:1')"
            )
        out[str(name)] = device
    return out


def parse_max_memory(value: str | Mapping[Any, Any] | None) -> MaxMemory | None:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` (or a mapping) -> ``{0: "20GiB", 1: "20GiB", "cpu": ...}``.

    Raises:
        ConfigError: a malformed entry or size.
    """
    if value is None:
        return None
    pairs: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = []
        for part in (p.strip() for p in value.split(",")):
            key, sep, size = part.partition("=")
            if not sep:
                raise ConfigError(
                    f"--max-memory expects DEVICE=SIZE pairs like 0=20GiB,cpu=64GiB, got {part!r}"
                )
            pairs.append((key.strip(), size.strip()))
    out: MaxMemory = {}
    for key, size in pairs:
        device: int | str = int(key) if str(key).isdigit() else str(key)
        if isinstance(device, str) and device not in ("cpu", "mps", "disk"):
            raise ConfigError(
                f"--max-memory device {key!r} is not a GPU index, 'cpu', 'mps' or 'disk'"
            )
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            out[device] = size
        elif isinstance(size, str) and _SIZE.match(size):
            out[device] = size.replace(" ", "")
        else:
            raise ConfigError(f"--max-memory size {size!r} for {key!r} is not like 20GiB or 500MB")
    if not out:
        raise ConfigError("--max-memory is empty; give DEVICE=SIZE pairs like 0=20GiB,cpu=64GiB")
    return out


def rank_gpus(local_rank: int, local_size: int, count: int) -> list[int]:
    """The GPUs of one rank when ``local_size`` ranks share ``count`` GPUs of a node.

    Raises:
        ConfigError: fewer GPUs than ranks on the node.
    """
    per = count // local_size
    if per < 1:
        raise ConfigError(
            f"--device-map with {local_size} ranks per node needs at least one GPU per rank; "
            f"this node has {count}. Start fewer processes per node (--nproc_per_node)"
        )
    return list(range(local_rank * per, (local_rank + 1) * per))


@dataclass(frozen=True)
class Placement:
    """How to place a model: a plain device, or a device map with memory limits."""

    device: str | None = None
    device_map: DeviceMap | None = None
    max_memory: MaxMemory | None = None
    offload_folder: str | None = None

    @classmethod
    def parse(
        cls,
        device: str | None = None,
        device_map: str | Mapping[str, Any] | None = None,
        max_memory: str | Mapping[Any, Any] | None = None,
        offload_folder: str | Path | None = None,
    ) -> Placement:
        """Validate the options (before anything loads).

        ``device="auto"`` means ``device_map="auto"``; ``max_memory`` alone implies it.

        Raises:
            ConfigError: conflicting or malformed options.
        """
        mapping = parse_device_map(device_map)
        memory = parse_max_memory(max_memory)
        if mapping is not None and device not in (None, "auto"):
            raise ConfigError(
                f"give either --device {device} or --device-map {device_map}, not both: a device "
                "map places every module itself"
            )
        if mapping is None and (device == "auto" or memory is not None):
            mapping = "auto"
        if mapping is None and offload_folder is not None:
            raise ConfigError("--offload-folder only applies with --device-map (or --max-memory)")
        if isinstance(mapping, dict) and "disk" in mapping.values() and offload_folder is None:
            raise ConfigError(
                "the device map sends weights to disk; give --offload-folder DIR for them"
            )
        folder = str(offload_folder) if offload_folder is not None else None
        return cls(None if mapping is not None else device, mapping, memory, folder)

    @property
    def mapped(self) -> bool:
        return self.device_map is not None

    def memory_for_rank(self) -> MaxMemory | None:
        """``max_memory``, or, for ``auto`` maps with several ranks on a node, the rank's GPUs."""
        if self.max_memory is not None or not torch.cuda.is_available():
            return self.max_memory
        from ..base.distributed import World

        world = World.from_env()
        if world.local_size < 2 or not isinstance(self.device_map, str):
            return None
        from accelerate.utils import get_max_memory

        every = get_max_memory()
        gpus = rank_gpus(world.local_rank, world.local_size, torch.cuda.device_count())
        memory: MaxMemory = {g: every[g] for g in gpus if g in every}
        if "cpu" in every:
            memory["cpu"] = int(every["cpu"]) // world.local_size
        logger.info("%s: device map over GPUs %s", world.describe(), gpus)
        return memory

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained`` (empty without a map)."""
        if not self.mapped:
            return {}
        kwargs: dict[str, Any] = {"device_map": self.device_map}
        memory = self.memory_for_rank()
        if memory is not None:
            kwargs["max_memory"] = memory
        if self.offload_folder is not None:
            kwargs["offload_folder"] = self.offload_folder
        return kwargs

    def dispatch(self, model: Any) -> Any:
        """Place an already loaded model (on the CPU) with accelerate's hooks."""
        from accelerate import dispatch_model, infer_auto_device_map

        mapping = self.device_map
        if isinstance(mapping, str):
            mapping = infer_auto_device_map(
                model,
                max_memory=self.memory_for_rank(),
                no_split_module_classes=list(getattr(model, "_no_split_modules", None) or []),
            )
        assert mapping is not None
        if set(mapping.values()) == {"disk"}:
            raise ConfigError(
                f"with --max-memory {self.max_memory} no part of the model fits in memory "
                "(everything would go to disk); allow more memory"
            )
        if "disk" in mapping.values() and self.offload_folder is None:
            raise ConfigError(
                "the device map sends weights to disk; give --offload-folder DIR for them"
            )
        model.hf_device_map = dict(mapping)
        return dispatch_model(model, device_map=mapping, offload_dir=self.offload_folder)


def execution_device(model: Any) -> torch.device:
    """Where a model's inputs go: the first GPU of its device map (accelerate's main device),
    else the CPU when it has a map, else the device of its first parameter."""
    mapping = getattr(model, "hf_device_map", None)
    if isinstance(mapping, Mapping) and mapping:
        for device in mapping.values():
            if device not in ("cpu", "disk", "meta"):
                return (
                    torch.device(device)
                    if isinstance(device, str)
                    else torch.device("cuda", int(device))
                )
        return torch.device("cpu")
    first: torch.nn.Parameter = next(model.parameters())
    return first.device
