"""OpenAI chat messages -> one prompt cmrm can encode, and the VLM view that renders it.

A :class:`Conversation` carries the whole message list, serialised, with the image reduced to a
placeholder part. :class:`ChatVLM` is the loaded :class:`~cmrm.models.VLM` whose ``render`` takes
such a serialised conversation instead of a single user prompt, so every cmrm path that encodes
prompts (generation, sample-level shifts with their text and null variants) works on whole
conversations unchanged: the text variant drops the image part, the null variant swaps the image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..models.vlm import VLM
from .config import MAX_IMAGES
from .errors import bad_request
from .schema import ContentPart, Message

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class Conversation:
    """A request's messages (``prompt``, serialised) and its image's URL, if any."""

    prompt: str
    image_url: str | None


def _part(part: ContentPart, where: str, role: str) -> dict[str, str] | str:
    """A text part as a dict; an image part as its URL."""
    if part.type == "text":
        if part.text is None:
            raise bad_request(f"{where} is a text part without 'text'", param=where)
        return {"type": "text", "text": part.text}
    if part.type == "image_url":
        if role != "user":
            raise bad_request(f"{where}: only user messages may carry images", param=where)
        ref = part.image_url
        url = ref if isinstance(ref, str) else ref.url if ref is not None else None
        if not url:
            raise bad_request(f"{where} is an image_url part without a url", param=where)
        return url
    raise bad_request(
        f"{where} has type {part.type!r}; cmrm serve takes 'text' and 'image_url' parts",
        param=where,
    )


def parse_messages(messages: Sequence[Message], *, chat_template: bool) -> Conversation:
    """Check roles and parts; at most :data:`MAX_IMAGES` image.

    Raises:
        APIError: 400 naming the message.
    """
    rendered: list[dict[str, Any]] = []
    urls: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = _ROLES.get(message.role)
        if role is None:
            raise bad_request(
                f"{where} has role {message.role!r}; cmrm serve takes system, developer, user "
                "and assistant messages",
                param=f"{where}.role",
            )
        content = message.content
        raw: list[ContentPart] = (
            []
            if content is None
            else [ContentPart(type="text", text=content)]
            if isinstance(content, str)
            else content
        )
        parts: list[dict[str, str]] = []
        for j, part in enumerate(raw):
            item = _part(part, f"{where}.content.{j}", role)
            if isinstance(item, str):
                urls.append(item)
                parts.append({"type": "image"})
            else:
                parts.append(item)
        rendered.append({"role": role, "content": parts})
    if len(urls) > MAX_IMAGES:
        raise bad_request(
            f"the request has {len(urls)} images; this server takes at most {MAX_IMAGES} per "
            "request (cmrm encodes one image per prompt). Send one image per request",
            param="messages",
            code="too_many_images",
        )
    if not chat_template and (len(rendered) != 1 or rendered[0]["role"] != "user"):
        raise bad_request(
            "this model has no chat template, so a request must be exactly one user message",
            param="messages",
        )
    prompt = json.dumps(rendered, ensure_ascii=False, sort_keys=True)
    return Conversation(prompt=prompt, image_url=urls[0] if urls else None)


def single_turn(prompt: str, *, with_image: bool) -> str:
    """The serialised conversation of one user message (image first, as :meth:`VLM.render`)."""
    parts: list[dict[str, str]] = [{"type": "image"}] if with_image else []
    parts.append({"type": "text", "text": prompt})
    return json.dumps([{"role": "user", "content": parts}], ensure_ascii=False, sort_keys=True)


class ChatVLM(VLM):
    """A :class:`VLM` whose prompts are serialised conversations (see :func:`parse_messages`)."""

    def render(self, prompt: str, with_image: bool) -> str:
        messages = json.loads(prompt)
        if not with_image:
            for message in messages:
                message["content"] = [p for p in message["content"] if p["type"] != "image"]
        if self.spec.chat_template and getattr(self.processor, "chat_template", None):
            return str(
                self.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
            )
        text = " ".join(p["text"] for m in messages for p in m["content"] if p["type"] == "text")
        return super().render(text, with_image)


def chat_view(vlm: VLM) -> ChatVLM:
    """The same model, processor and layers, rendering conversations."""
    if isinstance(vlm, ChatVLM):
        return vlm
    return ChatVLM(**{f.name: getattr(vlm, f.name) for f in fields(vlm)})


def has_chat_template(vlm: VLM) -> bool:
    return bool(vlm.spec.chat_template and getattr(vlm.processor, "chat_template", None))
