"""Requests with an image to a real ``llama-server --mmproj``, and the rates they are judged at.

The prompt is the organism's chat prompt rendered by cmrm, with ``<image>`` replaced by the
server's media marker (``/props`` ``media_marker``; random per server unless
``LLAMA_MEDIA_MARKER`` is set) and the picture sent as PNG in ``multimodal_data`` of
``/completion``, so both engines see the same text around the same 49 image positions.

llama.cpp 11434's LLaVA graph (``tools/mtmd/models/llava.cpp``) concatenates the CLIP class
embedding *after* the patch embeddings while its inputs still assume the class token first
(positions ``0..n``, output rows ``1..n``): every patch gets its neighbour's position embedding,
patch 0's output is dropped and the projected class token is fed to the LM as the last image
token (upstream issue ggml-org/llama.cpp#25814, closed as stale; the one-line fix #25844 was
open when this was written). :func:`cls_last_graph` runs a transformers model the same way, so
the engine tests can tell that defect from the export's own parity.
"""

from __future__ import annotations

import base64
import io
import math
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import httpx
import torch

import cmrm
from cmrm.data.images import load_image
from cmrm.data.items import Item
from cmrm.interventions.apply import intervene
from cmrm.judges.judgment import Judgment

from .engines import Run, Server


def media_marker(server: Server) -> str:
    props = httpx.get(f"{server.base}/props", timeout=30).json()
    marker = props.get("media_marker")
    if not marker:
        raise RuntimeError(
            f"llama-server /props has no media_marker (was it started with --mmproj?): {props}"
        )
    return str(marker)


def png_b64(item: Item) -> str:
    image = load_image(item.image)
    if image is None:
        raise ValueError(f"item {item.id} has no image")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class Served:
    """One answer of ``llama-server`` to a prompt with an image."""

    text: str
    evaluated: int
    """Prompt positions the server evaluated (text tokens plus the image's)."""
    run: Run
    """Its tokens and the top-k log-probabilities of each (empty ``top`` when ``k`` was 0)."""


def image_completions(
    server: Server, prompts: Sequence[str], items: Sequence[Item], n: int, k: int = 0
) -> list[Served]:
    """Greedy ``n``-token answers to ``prompts`` (cmrm's chat prompts, with ``<image>``) with each
    item's picture; ``k`` > 0 asks for the top-``k`` log-probabilities of every position."""
    marker = media_marker(server)
    out = []
    for prompt, item in zip(prompts, items, strict=True):
        if prompt.count("<image>") != 1:
            raise ValueError(
                f"prompt of {item.id} has {prompt.count('<image>')} <image> slots, expected 1"
            )
        body: dict[str, Any] = {
            "prompt": {"prompt_string": prompt.replace("<image>", marker),
                       "multimodal_data": [png_b64(item)]},
            "n_predict": n, "temperature": 0.0, "cache_prompt": False, "seed": 0,
        }  # fmt: skip
        if k:
            body |= {"n_probs": k, "return_tokens": True}
        reply = httpx.post(f"{server.base}/completion", json=body, timeout=600).json()
        if "content" not in reply:
            raise RuntimeError(f"llama-server refused the request for {item.id}: {reply}")
        probs = reply.get("completion_probabilities", []) if k else []
        run = Run(
            tuple(int(p["id"]) for p in probs),
            tuple({int(t["id"]): float(t["logprob"]) for t in p["top_logprobs"]} for p in probs),
        )
        out.append(Served(str(reply["content"]), int(reply["tokens_evaluated"]), run))
    return out


def hf_image_runs(
    vlm: cmrm.VLM,
    items: Sequence[Item],
    n: int,
    k: int,
    intervention: cmrm.Intervention | None = None,
) -> list[Run]:
    """Greedy ``n``-token runs of ``vlm`` (one item at a time, no padding) with each item's
    picture, steered by cmrm's own :func:`~cmrm.interventions.apply.intervene` when given."""
    eos = int(vlm.tokenizer.convert_tokens_to_ids("<|im_end|>"))
    runs = []
    for item in items:
        image = load_image(item.image)
        batch = vlm.encode([item.prompt], [image])
        steering = (
            intervene(vlm, intervention, [item.prompt], [image])
            if intervention is not None
            else nullcontext()
        )
        with torch.no_grad(), steering:
            out = vlm.model.generate(
                **batch.inputs,
                max_new_tokens=n,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                eos_token_id=eos,
                pad_token_id=eos,
            )
        tokens = tuple(int(t) for t in out.sequences[0, batch.input_ids.shape[1] :])
        full = tuple(torch.log_softmax(step[0].double(), dim=-1) for step in out.logits)
        top = tuple({int(i): float(lp[i]) for i in torch.topk(lp, k).indices} for lp in full)
        runs.append(Run(tokens, top, full))
    return runs


def _cls_last_forward(
    self: Any, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
) -> torch.Tensor:
    """``CLIPVisionEmbeddings.forward`` with the class token after the patches and the position
    embeddings in order (as llama.cpp 11434 builds it); LLaVA's ``default`` feature selection
    then drops row 0 (patch 0) and keeps the class token, as llama.cpp's ``patches`` rows do."""
    if interpolate_pos_encoding:
        raise NotImplementedError("the CLS-last simulation covers fixed-size images only")
    batch = pixel_values.shape[0]
    weight = self.patch_embedding.weight
    patches = self.patch_embedding(pixel_values.to(dtype=weight.dtype)).flatten(2).transpose(1, 2)
    embeddings = torch.cat([patches, self.class_embedding.expand(batch, 1, -1)], dim=1)
    return embeddings + self.position_embedding(self.position_ids)  # type: ignore[no-any-return]


@contextmanager
def cls_last_graph(vlm: cmrm.VLM) -> Iterator[None]:
    """Inside, ``vlm``'s CLIP tower runs as llama.cpp 11434's LLaVA graph does (class token
    last, see the module docstring); the model is restored on exit."""
    from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

    modules = [m for m in vlm.model.modules() if isinstance(m, CLIPVisionEmbeddings)]
    if not modules:
        raise RuntimeError(f"{vlm.model_id} has no CLIP vision embeddings to run CLS-last")
    for module in modules:
        module.forward = types.MethodType(_cls_last_forward, module)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for module in modules:
            del module.forward


@dataclass(frozen=True)
class Rate:
    """A share of items with a Wilson 95 % interval."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        if not self.n:
            return (math.nan, math.nan)
        z, p, n = 1.959964, self.value, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def contains(self, value: float) -> bool:
        low, high = self.interval
        return low - 1e-12 <= value <= high + 1e-12

    def text(self) -> str:
        low, high = self.interval
        return f"{100 * self.value:.1f} [{100 * low:.0f}-{100 * high:.0f}] (n {self.n})"


def rate(judgments: Sequence[Judgment], suite: str) -> Rate:
    """Refusal for request suites (harmful: refused; benign: over-refused), correctness for QA."""
    if suite.endswith("image-qa"):
        return Rate(sum(bool(j.correct) for j in judgments), len(judgments))
    return Rate(sum(bool(j.refused) for j in judgments), len(judgments))
