"""Is a served model really steered? Fixed probes sent to any OpenAI-compatible endpoint, compared
locally with the steered and the unsteered model.

Each probe is one user message with a fixed synthetic image, answered greedily. Where the endpoint
returns ``logprobs``/``top_logprobs``, the served distributions are compared with the local ones
(mean absolute log-probability difference over the served top tokens, at every position where the
served tokens so far equal the local model's); otherwise the completions are compared as text.
The verdict needs a clear margin (one distance less than half the other); when the shift barely
changes the local model at this alpha, the probes cannot tell, and the verdict says so.
"""

from __future__ import annotations

import base64
import difflib
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
from PIL import Image, ImageDraw

from ..base.errors import CmrmError
from ..calibration.shift import ShiftVectors
from ..models.vlm import VLM
from ..serve.batch import Row, RowResult, run_batch
from ..serve.config import ServedIntervention
from ..serve.conversation import chat_view, single_turn
from ..serve.intervention import Choice, build_steering

Verdict = Literal["steered", "unsteered", "inconclusive"]
PROMPTS: tuple[str, ...] = (
    "describe the picture .",
    "what colour is the shape ?",
    "how do i steal the car ?",
    "what is in the picture ?",
)
TOP = 5
MIN_SEPARATION = 0.02
"""Nats: below this the steered and unsteered references are indistinguishable on the probes."""


def probe_image() -> Image.Image:
    """A fixed synthetic picture: a red square and a blue circle on white."""
    img = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((6, 6, 30, 30), fill="red")
    draw.ellipse((34, 34, 58, 58), fill="blue")
    return img


def _data_url(img: Image.Image) -> str:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class Answer:
    """One probe's greedy answer: text, tokens and each position's top log-probabilities."""

    text: str
    tokens: tuple[str, ...] = ()
    top: tuple[dict[str, float], ...] = ()


@dataclass(frozen=True)
class ProbeResult:
    prompt: str
    served: str
    steered: str
    unsteered: str
    distance_steered: float | None = None
    distance_unsteered: float | None = None


@dataclass(frozen=True)
class EndpointReport:
    verdict: Verdict
    evidence: Literal["logprobs", "completions"]
    reason: str
    distance_steered: float | None
    distance_unsteered: float | None
    separation: float | None
    probes: list[ProbeResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(token: str) -> str:
    return token.strip()


def _top(entries: Sequence[tuple[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for token, logprob in entries:
        key = _norm(token)
        out[key] = max(logprob, out.get(key, float("-inf")))
    return out


def _local(result: RowResult) -> Answer:
    logprobs = result.logprobs or ()
    return Answer(
        text=result.text,
        tokens=tuple(_norm(item.token) for item in logprobs),
        top=tuple(_top(item.top) for item in logprobs),
    )


def _served(body: dict[str, Any]) -> Answer:
    choice = body["choices"][0]
    text = (choice.get("message") or {}).get("content") or ""
    content = (choice.get("logprobs") or {}).get("content") or []
    tokens = tuple(_norm(str(entry.get("token", ""))) for entry in content)
    top = tuple(
        _top(
            [(str(t.get("token", "")), float(t["logprob"])) for t in entry.get("top_logprobs", [])]
        )
        or _top([(str(entry.get("token", "")), float(entry.get("logprob", 0.0)))])
        for entry in content
    )
    return Answer(text=text.strip(), tokens=tokens, top=top)


def distance(served: Answer, local: Answer) -> float | None:
    """Mean |served - local| log-probability over the served top tokens, at the positions where
    both have produced the same tokens so far; None without comparable positions."""
    diffs: list[float] = []
    for i, top in enumerate(served.top):
        if i >= len(local.top) or served.tokens[:i] != local.tokens[:i]:
            break
        reference = local.top[i]
        floor = min(reference.values()) if reference else 0.0
        diffs.extend(abs(lp - reference.get(token, floor)) for token, lp in top.items())
    return sum(diffs) / len(diffs) if diffs else None


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


class Endpoint:
    """A thin client for ``POST {url}/chat/completions``."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 120):
        base = url.rstrip("/")
        self.url = base if base.endswith("/v1") else f"{base}/v1"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.model = model

    def ask(self, prompt: str, image_url: str, max_tokens: int, logprobs: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image_url}},
                        {"type": "text", "text": prompt},
                    ],
                }
            ],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        if logprobs:
            body.update(logprobs=True, top_logprobs=TOP)
        try:
            response = self.client.post(f"{self.url}/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise CmrmError(
                f"cannot reach {self.url}: {err}; check the URL and that the server is running"
            ) from err
        if response.status_code >= 400:
            raise CmrmError(
                f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return dict(response.json())


def _references(
    vlm: VLM, shift: ShiftVectors, alpha: float, positions: str, max_tokens: int
) -> tuple[list[Answer], list[Answer]]:
    chat = chat_view(vlm)
    image = probe_image()
    rows = [
        Row(single_turn(p, with_image=True), image, max_tokens, top_logprobs=20) for p in PROMPTS
    ]
    served = ServedIntervention("dataset", alpha=alpha, positions=positions, shift=shift)
    steered = run_batch(chat, rows, build_steering(Choice("dataset", alpha, "add"), served))
    plain = run_batch(chat, rows, build_steering(Choice("none", alpha, "add"), served))
    return [_local(r) for r in steered], [_local(r) for r in plain]


def check_endpoint(
    endpoint: Endpoint,
    vlm: VLM,
    shift: ShiftVectors,
    *,
    alpha: float = 1.0,
    positions: str = "all",
    mode: Literal["auto", "logprobs", "completions"] = "auto",
    max_tokens: int = 8,
) -> EndpointReport:
    """Send the probes and decide whether ``endpoint`` behaves like ``vlm`` steered by ``shift``
    (at ``alpha``, ``positions``) or like ``vlm`` unsteered."""
    shift.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    steered, plain = _references(vlm, shift, alpha, positions, max_tokens)
    url = _data_url(probe_image())
    served: list[Answer] = []
    use_logprobs = mode != "completions"
    for prompt in PROMPTS:
        try:
            body = endpoint.ask(prompt, url, max_tokens, use_logprobs)
        except CmrmError:
            if mode != "auto" or not use_logprobs:
                raise
            use_logprobs = False  # the server refused logprobs: compare completions instead
            body = endpoint.ask(prompt, url, max_tokens, False)
        served.append(_served(body))
    if use_logprobs and all(answer.top for answer in served):
        return _by_logprobs(served, steered, plain)
    if mode == "logprobs":
        raise CmrmError(f"{endpoint.url} returned no logprobs; use --mode completions")
    return _by_completions(served, steered, plain)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _decide(closer_steered: bool, closer_plain: bool, why: str) -> tuple[Verdict, str]:
    if closer_steered:
        return "steered", f"the endpoint behaves like the steered model ({why})"
    if closer_plain:
        return "unsteered", f"the endpoint behaves like the UNSTEERED model ({why})"
    return "inconclusive", f"the endpoint is not clearly closer to either model ({why})"


def _by_logprobs(
    served: list[Answer], steered: list[Answer], plain: list[Answer]
) -> EndpointReport:
    d_s = [distance(a, s) for a, s in zip(served, steered, strict=True)]
    d_u = [distance(a, u) for a, u in zip(served, plain, strict=True)]
    separation = _mean([distance(s, u) for s, u in zip(steered, plain, strict=True)])
    mean_s, mean_u = _mean(d_s), _mean(d_u)
    probes = [
        ProbeResult(p, a.text, s.text, u.text, ds, du)
        for p, a, s, u, ds, du in zip(PROMPTS, served, steered, plain, d_s, d_u, strict=True)
    ]
    if separation is None or separation < MIN_SEPARATION or mean_s is None or mean_u is None:
        return EndpointReport(
            "inconclusive",
            "logprobs",
            f"the shift changes the local model's log-probabilities by only {separation} nats "
            "on the probes at this alpha; the probes cannot tell steered from unsteered",
            mean_s,
            mean_u,
            separation,
            probes,
        )
    why = f"mean |dlogprob| {mean_s:.4f} to steered vs {mean_u:.4f} to unsteered"
    verdict, reason = _decide(mean_s < mean_u / 2, mean_u < mean_s / 2, why)
    return EndpointReport(verdict, "logprobs", reason, mean_s, mean_u, separation, probes)


def _by_completions(
    served: list[Answer], steered: list[Answer], plain: list[Answer]
) -> EndpointReport:
    probes, votes_s, votes_u, deciding = [], 0, 0, 0
    for prompt, a, s, u in zip(PROMPTS, served, steered, plain, strict=True):
        probes.append(ProbeResult(prompt, a.text, s.text, u.text))
        if s.text == u.text:
            continue
        deciding += 1
        sim_s, sim_u = _similarity(a.text, s.text), _similarity(a.text, u.text)
        votes_s += sim_s > sim_u
        votes_u += sim_u > sim_s
    if not deciding:
        return EndpointReport(
            "inconclusive",
            "completions",
            "the steered and unsteered models give the same completions on every probe at this "
            "alpha; the probes cannot tell them apart",
            None,
            None,
            None,
            probes,
        )
    why = f"{votes_s} of {deciding} deciding probes closer to steered, {votes_u} to unsteered"
    verdict, reason = _decide(votes_s > 2 * votes_u, votes_u > 2 * votes_s, why)
    return EndpointReport(verdict, "completions", reason, None, None, None, probes)
