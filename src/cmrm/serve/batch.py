"""One batched generation for several requests that share an intervention.

Rows are left padded into one ``generate`` call. Each row keeps its own ``max_tokens``, stop
strings, cancellation flag and stream: a :class:`_Tracker` (a stopping criterion, which
``generate`` calls after every step) reads each row's new token, finishes the row when it ends, and
tells ``generate`` which rows are done. The batch runs to the longest row; a finished row's later
tokens are ignored, which is exact for greedy decoding (rows never see each other).
Logprobs are read by a logits processor placed after the model's own processors: they are the
log-probabilities of the distribution the token was chosen from (the model's raw distribution
under greedy decoding with no generation-config processors).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from PIL import Image
from torch import Tensor
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from ..generation.generate import GenerationOptions
from ..interventions.value import Intervention
from ..models.vlm import VLM
from .intervention import intervention_context

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class Row:
    """One request's part of a batch."""

    prompt: str
    image: Image.Image | None
    max_tokens: int
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None
    """None: no logprobs; 0-20: the chosen token's logprob plus that many alternatives."""
    on_delta: Callable[[str], None] | None = None
    """Called with each new piece of text as it is generated (streaming)."""
    cancelled: Callable[[], bool] | None = None


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class RowResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] | None = None

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


class _LogprobTap(LogitsProcessor):
    """Keeps the log-softmax of the last step's scores; changes nothing."""

    def __init__(self) -> None:
        self.last: Tensor | None = None

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


@dataclass
class _RowState:
    row: Row
    ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: FinishReason | None = None
    text: str | None = None
    sent: str = ""


def _hold_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might still become a stop string."""
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return hold


class _Tracker(StoppingCriteria):
    def __init__(
        self, tokenizer: Any, rows: Sequence[Row], prompt_len: int, eos: set[int], tap: Any
    ) -> None:
        self.tokenizer = tokenizer
        self.states = [_RowState(row) for row in rows]
        self.prompt_len = prompt_len
        self.eos = eos
        self.tap: _LogprobTap | None = tap

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def _logprob(self, b: int, token: int, k: int) -> TokenLogprob:
        assert self.tap is not None and self.tap.last is not None
        row = self.tap.last[b]
        top: tuple[tuple[str, float], ...] = ()
        if k:
            values, ids = torch.topk(row, k)
            top = tuple((self.decode([int(i)]), float(v)) for v, i in zip(values, ids, strict=True))
        return TokenLogprob(self.decode([token]), float(row[token]), top)

    def _text(self, state: _RowState) -> tuple[str, bool]:
        """The row's text so far (stripped, cut at a stop string) and whether a stop was hit."""
        text = self.decode(state.ids).strip()
        cut = [text.index(s) for s in state.row.stop if s in text]
        if cut:
            return text[: min(cut)].strip(), True
        return text, False

    def _stream(self, state: _RowState, text: str, final: bool) -> None:
        if state.row.on_delta is None:
            return
        if not final:
            if text.endswith("\ufffd"):  # an incomplete multi-byte character
                return
            text = text[: len(text) - _hold_back(text, state.row.stop)].rstrip()
        if text.startswith(state.sent) and len(text) > len(state.sent):
            state.row.on_delta(text[len(state.sent) :])
            state.sent = text
        elif final and not text.startswith(state.sent):
            logger.warning("streamed text diverged from the final decode; final text differs")

    def _end(self, state: _RowState, reason: FinishReason) -> None:
        state.finish = reason
        text, _ = self._text(state)
        state.text = text
        self._stream(state, text, final=True)

    def __call__(self, input_ids: Tensor, scores: Any, **kwargs: Any) -> Tensor:
        tokens = input_ids[:, -1].tolist()
        done = []
        for b, state in enumerate(self.states):
            if state.finish is None:
                self._step(b, state, int(tokens[b]))
            done.append(state.finish is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _step(self, b: int, state: _RowState, token: int) -> None:
        row = state.row
        if row.cancelled is not None and row.cancelled():
            self._end(state, "cancelled")
            return
        if token in self.eos:
            self._end(state, "stop")
            return
        state.ids.append(token)
        if row.top_logprobs is not None:
            state.logprobs.append(self._logprob(b, token, row.top_logprobs))
        if row.stop or row.on_delta is not None:
            text, stopped = self._text(state)
            if stopped:
                self._end(state, "stop")
                return
            self._stream(state, text, final=False)
        if len(state.ids) >= row.max_tokens:
            self._end(state, "length")

    def results(self, prompt_tokens: Sequence[int]) -> list[RowResult]:
        out = []
        for state, n_prompt in zip(self.states, prompt_tokens, strict=True):
            if state.finish is None:
                self._end(state, "length")
            assert state.text is not None and state.finish is not None
            out.append(
                RowResult(
                    text=state.text,
                    finish_reason=state.finish,
                    prompt_tokens=int(n_prompt),
                    token_ids=tuple(state.ids),
                    logprobs=tuple(state.logprobs) if state.row.top_logprobs is not None else None,
                )
            )
        return out


def eos_ids(vlm: VLM) -> set[int]:
    eos = vlm.model.generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(e) for e in eos}


def run_batch(
    vlm: VLM,
    rows: Sequence[Row],
    steering: Intervention | None,
    sampling: GenerationOptions | None = None,
) -> list[RowResult]:
    """Generate for ``rows`` in one batch under ``steering``; results in the rows' order.

    ``vlm`` renders each row's ``prompt`` (a :class:`~cmrm.serve.conversation.ChatVLM` takes
    serialised conversations). ``sampling`` gives the decoding settings; its ``max_new_tokens``
    is ignored (each row has its own).
    """
    sampling = sampling or GenerationOptions()
    prompts = [row.prompt for row in rows]
    images = [row.image for row in rows]
    batch = vlm.encode(prompts, images)
    options = GenerationOptions(
        max_new_tokens=max(row.max_tokens for row in rows),
        do_sample=sampling.do_sample,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=sampling.seed,
    )
    kwargs = options.generate_kwargs()
    if vlm.tokenizer.pad_token_id is not None:
        kwargs["pad_token_id"] = vlm.tokenizer.pad_token_id
    tap = _LogprobTap() if any(row.top_logprobs is not None for row in rows) else None
    tracker = _Tracker(vlm.tokenizer, rows, int(batch.input_ids.shape[1]), eos_ids(vlm), tap)
    if tap is not None:
        kwargs["logits_processor"] = LogitsProcessorList([tap])
    if options.do_sample:
        torch.manual_seed(options.seed)
    with intervention_context(vlm, prompts, images, steering), torch.inference_mode():
        vlm.model.generate(
            **batch.inputs, **kwargs, stopping_criteria=StoppingCriteriaList([tracker])
        )
    return tracker.results(batch.attention_mask.sum(dim=1).tolist())
