"""A local transformers causal LM as a judge backend: chat template, left padding, greedy decoding."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from cmrm.base.errors import ConfigError

from .backends import Conversation, JudgeBackendError

log = logging.getLogger(__name__)

ContentFormat = Literal["auto", "string", "parts"]
_FORMATS = ("auto", "string", "parts")


def _resolve_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ConfigError(
            f"unknown dtype {dtype!r}; expected 'auto', a torch dtype name such as 'bfloat16' "
            "or 'float32', or a torch.dtype"
        )
    return resolved


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class HFBackend:
    """Greedy chat completion with a transformers causal LM and its tokenizer's chat template.

    Args:
        model: a loaded ``PreTrainedModel`` (causal LM).
        tokenizer: its tokenizer, carrying a chat template.
        batch_size: conversations per ``generate`` call (left-padded).
        max_new_tokens: tokens generated per conversation.
        content_format: how message content is handed to the template. ``"string"`` (most
            templates), ``"parts"`` (``[{"type": "text", "text": ...}]``, e.g. Llama-Guard-3-1B),
            or ``"auto"``: try string first and switch to parts if the rendered prompt does not
            contain the message text.
        show_progress: show a tqdm bar over conversations.
        description: how the model is named in logs and errors.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        max_new_tokens: int = 32,
        content_format: ContentFormat = "auto",
        show_progress: bool = False,
        description: str | None = None,
    ) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError(
                f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}"
            )
        if content_format not in _FORMATS:
            raise ConfigError(f"content_format must be one of {_FORMATS}, got {content_format!r}")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(
                "the judge tokenizer has no chat template; pass a chat/instruct model's tokenizer "
                "(or set tokenizer.chat_template)"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.content_format = content_format
        self.show_progress = show_progress
        name = getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__
        self.description = description or f"hf:{name}"

    @classmethod
    def load(
        cls,
        model_id: str,
        *,
        dtype: str | torch.dtype | None = "auto",
        device: str | None = None,
        **options: Any,
    ) -> HFBackend:
        """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` (``trust_remote_code`` off)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = _resolve_dtype(dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=False)
            model: Any = AutoModelForCausalLM.from_pretrained(
                model_id, dtype=resolved, trust_remote_code=False
            )
        except (OSError, ValueError) as err:
            raise JudgeBackendError(
                f"could not load judge model {model_id!r}: {err}. Pass a local directory or a "
                "hub id you can access (gated models such as Llama Guard need the licence "
                "accepted and HF_TOKEN set)"
            ) from err
        model.to(device or _default_device())
        return cls(model, tokenizer, description=f"hf:{model_id}", **options)

    def _render_as(self, conversation: Conversation, parts: bool) -> str:
        messages: list[dict[str, Any]] = [
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
            if parts
            else dict(m)
            for m in conversation
        ]
        rendered = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(rendered)

    def render(self, conversation: Conversation) -> str:
        """The prompt text the model sees for one conversation."""
        if self.content_format != "auto":
            return self._render_as(conversation, self.content_format == "parts")
        texts = [m["content"].strip() for m in conversation]
        for parts in (False, True):
            try:
                rendered = self._render_as(conversation, parts)
            except Exception as err:  # a template may reject one content format outright
                if parts:
                    raise
                log.debug("%s: string content rejected by template: %s", self.description, err)
                continue
            if all(t in rendered for t in texts):
                if parts:
                    log.info("%s: chat template takes list-of-parts content", self.description)
                    self.content_format = "parts"
                else:
                    self.content_format = "string"
                return rendered
        raise JudgeBackendError(
            f"{self.description}: the chat template drops the conversation text whether content "
            "is a string or a list of parts; set content_format explicitly or fix the template"
        )

    def complete(self, conversations: Sequence[Conversation]) -> list[str]:
        prompts = [self.render(c) for c in conversations]
        replies: list[str] = []
        with tqdm(total=len(prompts), desc=self.description, disable=not self.show_progress) as bar:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                replies.extend(self._generate(batch))
                bar.update(len(batch))
        return replies

    def _pad_id(self) -> int:
        for token_id in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if isinstance(token_id, int):
                return token_id
            if isinstance(token_id, list) and token_id:
                return int(token_id[0])
        return 0

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad by hand, so the caller's tokenizer is never modified (no pad token needed)."""
        bos = self.tokenizer.bos_token
        ids = [
            self.tokenizer(p, add_special_tokens=not (bos and p.startswith(bos)))["input_ids"]
            for p in prompts
        ]
        width = max(len(x) for x in ids)
        pad = self._pad_id()
        input_ids = torch.tensor([[pad] * (width - len(x)) + list(x) for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        return input_ids, mask

    @torch.inference_mode()
    def _generate(self, prompts: list[str]) -> list[str]:
        """Greedy-generate a reply for each rendered prompt."""
        input_ids, mask = self._encode(prompts)
        device = self.model.device
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self._pad_id(),
        )
        new_tokens = output[:, input_ids.shape[1] :].cpu()
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [str(t).strip() for t in texts]
