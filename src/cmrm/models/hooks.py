"""Hook plumbing: the one place that registers and removes forward hooks.

Decoder layers return a bare ``Tensor`` in transformers 5 and a tuple ``(hidden, ...)`` in 4.x;
:func:`hidden_of` and :func:`with_hidden` handle both. :class:`HookSet` owns every handle it
registers and removes exactly those on exit — on success, on exception, and when registration
itself fails half-way. Hooks registered by others (transformers installs permanent
output-capturing hooks) are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


def hidden_of(output: Any) -> Tensor:
    """The hidden-state tensor of a decoder layer's output (bare tensor or tuple)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"unexpected decoder layer output of type {type(output).__name__}")


def with_hidden(output: Any, hidden: Tensor) -> Any:
    """The layer output with its hidden-state tensor replaced, in the same structure."""
    if isinstance(output, Tensor):
        return hidden
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    if isinstance(output, list):
        return [hidden, *output[1:]]
    raise TypeError(f"unexpected decoder layer output of type {type(output).__name__}")


ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]
PreHook = Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], Any]


class HookSet:
    """A scoped set of hook handles; use as a context manager.

    Example:
        >>> with HookSet() as hooks:
        ...     hooks.forward(layer, my_hook)
        ...     model(**inputs)
    """

    def __init__(self) -> None:
        self._stack = ExitStack()

    def forward(self, module: nn.Module, hook: ForwardHook) -> RemovableHandle:
        handle = module.register_forward_hook(hook)
        self._stack.callback(handle.remove)
        return handle

    def forward_pre(self, module: nn.Module, hook: PreHook) -> RemovableHandle:
        handle = module.register_forward_pre_hook(hook, with_kwargs=True)
        self._stack.callback(handle.remove)
        return handle

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def hook_snapshot(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Ids of every forward (pre-)hook on every submodule: compare before and after in tests."""
    snap: dict[str, tuple[int, ...]] = {}
    for name, module in model.named_modules():
        ids = (
            *module._forward_hooks.keys(),
            *module._forward_pre_hooks.keys(),
        )
        if ids:
            snap[name] = tuple(ids)
    return snap
