"""Several processes, one job: ranks from the launcher's environment and the few collectives cmrm
needs (barrier, sums, gathers, agreeing on a decision), with a no-op single-process mode.

Any launcher that sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` works unchanged: ``torchrun``
(one node or many, with its rendezvous flags), ``accelerate launch`` (which starts the processes
through torchrun's machinery), ``srun torchrun`` under SLURM. Without those variables the process
is a world of one and every helper here returns at once.

Choices, each for a trap measured on real runs:

- cmrm reads the environment itself instead of using accelerate's ``PartialState()``: without
  ``cpu=True`` on a machine with no GPU, ``PartialState()`` under torchrun reports world size 1 in
  every process, and every process then runs the whole dataset;
- every collective runs on small CPU tensors through gloo (``cpu:gloo,cuda:nccl`` when CUDA is
  present, so nothing cmrm does depends on NCCL); the barrier is an all-reduce for that reason;
- the group is destroyed explicitly (``destroy_process_group()`` at exit): without it, torchrun
  runs were seen to exit 1 at shutdown; it is brought up once per process, as a second
  ``init_process_group`` in the same torchrun process fails;
- ``WORLD_SIZE`` is removed from the environment while the group is up (and put back after), so
  that transformers does not start tensor parallelism by itself when a model is built;
- each rank binds ``cuda:LOCAL_RANK``, so a plain ``--device cuda`` means the rank's own GPU.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn, TypeVar

import torch
from torch import Tensor

from .errors import CmrmError, ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_ENV = "CMRM_DIST_TIMEOUT"
"""Seconds a rank waits in a collective for the others (default one day: ranks of a resumed run
may have very different amounts of work left before the final barrier)."""
DEFAULT_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size``, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise ConfigError(
                f"invalid process ranks: RANK={self.rank}, WORLD_SIZE={self.size}; expected "
                "0 <= RANK < WORLD_SIZE (set by torchrun or accelerate launch)"
            )
        if self.local_size < 1 or not 0 <= self.local_rank < self.local_size:
            raise ConfigError(
                f"invalid local ranks: LOCAL_RANK={self.local_rank}, "
                f"LOCAL_WORLD_SIZE={self.local_size}; expected 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE"
            )

    @property
    def sharded(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        """Whether the ``index``-th unit of strided work (items, batches) is this rank's."""
        return index % self.size == self.rank

    def describe(self) -> str:
        return f"rank {self.rank}/{self.size}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> World:
        """The world the launcher describes; a world of one when no launcher set the variables.

        Raises:
            ConfigError: malformed variables, or several SLURM tasks started without torchrun
                (each would run the whole job).
        """
        env = dict(os.environ if environ is None else environ)
        if "WORLD_SIZE" not in env and _int(env, "SLURM_NTASKS", 1) > 1:
            raise ConfigError(
                f"SLURM started {env['SLURM_NTASKS']} tasks but no launcher set RANK/WORLD_SIZE: "
                "each task would run the whole job. Start one task per node running torchrun: "
                "srun torchrun --nnodes $SLURM_NNODES --nproc_per_node N --rdzv_backend c10d "
                "--rdzv_endpoint HOST:PORT -m cmrm eval ... (see docs/scale.md)"
            )
        size = _int(env, "WORLD_SIZE", 1)
        local_size = _int(env, "LOCAL_WORLD_SIZE", size if "LOCAL_RANK" in env else 1)
        return cls(
            rank=_int(env, "RANK", 0),
            size=size,
            local_rank=_int(env, "LOCAL_RANK", 0),
            local_size=local_size,
        )


SINGLE = World()
"""A world of one process."""

_STARTED = False
"""Whether this process brought a process group up (see :func:`exit_process`)."""


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from err


def _timeout() -> timedelta:
    raw = os.environ.get(TIMEOUT_ENV)
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError as err:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from err
    return timedelta(seconds=seconds)


def active() -> bool:
    """Whether a default process group is up (ours or the caller's)."""
    return bool(torch.distributed.is_available() and torch.distributed.is_initialized())


def _init(world: World) -> None:
    if not torch.distributed.is_available():
        raise CmrmError("this torch build has no torch.distributed; cannot run several ranks")
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    torch.distributed.init_process_group(
        backend=backend, rank=world.rank, world_size=world.size, timeout=_timeout()
    )
    global _STARTED
    _STARTED = True
    atexit.register(shutdown)
    logger.info("%s: process group up (%s)", world.describe(), backend)


def shutdown() -> None:
    """Destroy the process group if it is up (registered to run at exit by :func:`process_group`)."""
    if active():
        torch.distributed.destroy_process_group()


def exit_process(code: int | str | None = 0) -> NoReturn:
    """End the process with ``code``; in a rank of a multi-process job, first destroy the group,
    flush the logs and streams, then leave without running C++ static destructors.

    Why: after a clean ``destroy_process_group()``, about 1 exit in 15 of a gloo rank still
    aborted in static destruction ("terminate called without an active exception", SIGABRT), and
    torchrun then reports the whole job failed.
    """
    started = _STARTED
    shutdown()
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    status = int(code or 0)
    if not started:
        sys.exit(status)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


@contextmanager
def process_group(world: World) -> Iterator[World]:
    """Make sure the process group of ``world`` is up for the block; hide ``WORLD_SIZE`` from
    the code inside it (models built there), and put it back after.

    The group is brought up once per process and destroyed when the process exits: bringing a
    group up a second time in the same torchrun process fails (gloo connects to the first
    group's stale addresses). A world of one, or a caller's own group, is left alone.

    Raises:
        CmrmError: torch was built without distributed support.
    """
    if not world.sharded:
        yield world
        return
    if not active():
        _init(world)
    saved = os.environ.pop("WORLD_SIZE", None)
    try:
        yield world
    finally:
        if saved is not None:
            os.environ["WORLD_SIZE"] = saved


def start() -> World:
    """The world the launcher describes, with its process group up for the rest of the process
    and ``WORLD_SIZE`` hidden from then on (for a command that ends the process)."""
    world = World.from_env()
    if world.sharded:
        if not active():
            _init(world)
        os.environ.pop("WORLD_SIZE", None)
    return world


def _on() -> bool:
    return active() and torch.distributed.get_world_size() > 1


def barrier() -> None:
    """Wait until every rank gets here (an all-reduce on the CPU, so always gloo)."""
    if _on():
        torch.distributed.all_reduce(torch.zeros(1))


def all_sum(tensor: Tensor) -> Tensor:
    """The element-wise sum over ranks (a new CPU tensor in ``tensor``'s dtype)."""
    out = tensor.detach().cpu().clone()
    if _on():
        torch.distributed.all_reduce(out)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank if it is True on any rank."""
    return bool(all_sum(torch.tensor([1 if flag else 0], dtype=torch.int64)).item() > 0)


def from_main(value: bool) -> bool:
    """Rank 0's ``value`` on every rank (a decision taken once, then shared)."""
    if not _on():
        return value
    flag = torch.tensor([1 if value else 0], dtype=torch.int64)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


def _broadcast_text(text: str) -> str:
    if not _on():
        return text
    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64)
    torch.distributed.broadcast(size, src=0)
    buffer = (
        data if torch.distributed.get_rank() == 0 else torch.empty(int(size), dtype=torch.uint8)
    )
    if int(size):
        torch.distributed.broadcast(buffer, src=0)
    return bytes(buffer.tolist()).decode("utf-8")


def main_first(world: World, action: Callable[[], T]) -> T | None:
    """Run ``action`` on rank 0 while the others wait; if it raised a :class:`CmrmError`, every
    rank raises it (same class, same message), so that no rank is left waiting for the others.

    Returns ``action``'s result on rank 0, None elsewhere.
    """
    if not world.sharded:
        return action()
    result: T | None = None
    failure = ""
    error: CmrmError | None = None
    if world.is_main:
        try:
            result = action()
        except CmrmError as err:
            error, failure = err, f"{type(err).__name__}\n{err}"
    failure = _broadcast_text(failure)
    if failure:
        if error is not None:
            raise error
        name, _, message = failure.partition("\n")
        raise _error_class(name)(message)
    return result


def _error_class(name: str) -> type[CmrmError]:
    from . import errors

    found = getattr(errors, name, None)
    return found if isinstance(found, type) and issubclass(found, CmrmError) else CmrmError


def gather_rows(rows: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate every rank's ``rows`` (``[L, n_r, H]``) and ``index`` (``[n_r]`` int64) along
    the row axis, on every rank, in rank order (the caller sorts by ``index``).

    Ranks may hold different ``n_r``: the pieces are padded to the longest for the all-gather.
    """
    if not _on():
        return rows.cpu(), index.cpu()
    size = torch.distributed.get_world_size()
    counts = [torch.zeros(1, dtype=torch.int64) for _ in range(size)]
    torch.distributed.all_gather(counts, torch.tensor([rows.shape[1]], dtype=torch.int64))
    longest = max(int(c) for c in counts)
    pad = longest - rows.shape[1]
    padded = torch.cat([rows.cpu(), rows.new_zeros(rows.shape[0], pad, rows.shape[2]).cpu()], 1)
    padded_index = torch.cat([index.cpu(), torch.full((pad,), -1, dtype=torch.int64)])
    pieces = [torch.empty_like(padded) for _ in range(size)]
    indices = [torch.empty_like(padded_index) for _ in range(size)]
    torch.distributed.all_gather(pieces, padded.contiguous())
    torch.distributed.all_gather(indices, padded_index)
    keep = [int(c) for c in counts]
    return (
        torch.cat([p[:, :n] for p, n in zip(pieces, keep, strict=True)], dim=1),
        torch.cat([i[:n] for i, n in zip(indices, keep, strict=True)]),
    )
