"""Reference-relative scoring through a judge model: LLaVA-Bench and MM-Vet style.

- ``llava-bench``: the judge rates the reference answer (Assistant 1) and the model's answer
  (Assistant 2) from 1 to 10 on a first line "R M"; ``score = M / R``. LLaVA-Bench's published
  "relative score" is the ratio of the *sums* over a set, not the mean of per-item ratios: use
  :func:`relative_score` on the judgments.
- ``mm-vet``: the judge completes a correctness score 0.0-1.0 for the prediction against a ground
  truth that may use ``<AND>`` / ``<OR>``; ``score`` is that number.

The prompts follow LLaVA's GPT-4 review rule and MM-Vet's grader, abbreviated (MM-Vet's official
prompt has more few-shot rows; pass it as ``template`` to reproduce published numbers exactly).
Judge model and template change the numbers: report both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from cmrm.base.errors import ConfigError, DataError
from cmrm.data.items import Item

from .backends import ChatBackend, Message, user, with_system
from .degenerate import is_degenerate
from .judgment import Judgment, check_batch
from .prompts import check_template, fill

Mode = Literal["llava-bench", "mm-vet"]
MODES: tuple[str, ...] = ("llava-bench", "mm-vet")

LLAVA_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
LLAVA_TEMPLATE = """[Context]
{context}

[Question]
{question}

[Assistant 1]
{reference}

[End of Assistant 1]

[Assistant 2]
{response}

[End of Assistant 2]

[System]
We would like to request your feedback on the performance of two AI assistants in response to \
the user question displayed above. The user asks the question on observing an image. For your \
reference, the visual content in the image is represented with a few sentences describing the \
image.
Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each \
assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better \
overall performance.
Please first output a single line containing only two values indicating the scores for \
Assistant 1 and 2, respectively. The two scores are separated by a space.
In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding \
any potential bias and ensuring that the order in which the responses were presented does not \
affect your judgment."""

MMVET_TEMPLATE = """Compare the ground truth and prediction from AI models, to give a correctness \
score for the prediction. <AND> in the ground truth means it is totally right only when all \
elements in the ground truth are present in the prediction, and <OR> means it is totally right \
when any one element in the ground truth is present in the prediction. The correctness score is \
0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just \
complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
{question} | {reference} | {response} | """

_REQUIRED = ("question", "reference", "response")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_ASSISTANT = re.compile(r"assistant\s*[12]\b", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"\s*(?:/|out\s+of)\s*10\b", re.IGNORECASE)
_PAIR_LABEL = re.compile(r"^model=(\S+) reference=(\S+)$")


def parse_pair(text: str) -> tuple[float, float] | None:
    """(reference score, model score) from a LLaVA-Bench review, or ``None``.

    Reads the first line holding two numbers ("8 6", "8, 6", "Scores: 8/10 6/10"), ignoring the
    digits in "Assistant 1" / "Assistant 2"; falls back to the first two numbers anywhere. Both
    must lie in 0..10.
    """
    cleaned = _OUT_OF_TEN.sub("", _ASSISTANT.sub("", text))
    candidates = [_NUMBER.findall(line) for line in cleaned.splitlines()]
    pair = next((n[:2] for n in candidates if len(n) >= 2), None)
    if pair is None:
        every = _NUMBER.findall(cleaned)
        pair = every[:2] if len(every) >= 2 else None
    if pair is None:
        return None
    ref, model = float(pair[0]), float(pair[1])
    return (ref, model) if 0 <= ref <= 10 and 0 <= model <= 10 else None


def parse_correctness(text: str) -> float | None:
    """The first number in an MM-Vet grader reply, if it lies in [0, 1]."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(0))
    return value if 0.0 <= value <= 1.0 else None


def relative_score(judgments: Iterable[Judgment]) -> float | None:
    """LLaVA-Bench relative score: sum of model scores / sum of reference scores (parsed rows).

    Returns ``None`` when no row parsed or the reference scores sum to zero.
    """
    model_total = reference_total = 0.0
    for judgment in judgments:
        match = _PAIR_LABEL.match(judgment.label)
        if match:
            model_total += float(match.group(1))
            reference_total += float(match.group(2))
    return model_total / reference_total if reference_total > 0 else None


class ReferenceJudge:
    """Score answers against references with a judge model (see the module docstring).

    Args:
        backend: an HF or OpenAI-compatible chat backend.
        mode: ``"llava-bench"`` or ``"mm-vet"``.
        template: a replacement prompt; placeholders ``{question}``, ``{reference}``,
            ``{response}`` (and optionally ``{context}``, the image caption).
        system: a system message (default: LLaVA's for llava-bench, none for mm-vet).
    """

    name = "reference"

    def __init__(
        self,
        backend: ChatBackend,
        *,
        mode: Mode = "llava-bench",
        template: str | None = None,
        system: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"reference judge: mode must be one of {MODES}, got {mode!r}")
        default = LLAVA_TEMPLATE if mode == "llava-bench" else MMVET_TEMPLATE
        self.template = check_template(template or default, _REQUIRED, "reference judge")
        self.system = system if system is not None or mode == "mm-vet" else LLAVA_SYSTEM
        self.mode = mode
        self.backend = backend

    def conversation(self, item: Item, completion: str) -> list[Message]:
        if item.reference is None:
            raise DataError(
                f"item {item.id!r} has no reference answer; the reference judge ({self.mode}) "
                "needs Item.reference (LLaVA-Bench: the reference answer; MM-Vet: ground truth)"
            )
        values = {
            "question": item.prompt,
            "reference": item.reference,
            "response": completion,
            "context": item.caption or "(no image description available)",
        }
        return with_system(self.system, [user(fill(self.template, values))])

    def judge(self, items: Sequence[Item], completions: Sequence[str]) -> list[Judgment]:
        check_batch(self.name, items, completions)
        conversations = [self.conversation(i, c) for i, c in zip(items, completions, strict=True)]
        replies = self.backend.complete(conversations) if conversations else []
        return [self._read(c, r) for c, r in zip(completions, replies, strict=True)]

    def _read(self, completion: str, reply: str) -> Judgment:
        score: float | None
        if self.mode == "mm-vet":
            score = parse_correctness(reply)
            label = "unparsed" if score is None else "scored"
        else:
            pair = parse_pair(reply)
            if pair is None:
                score, label = None, "unparsed"
            else:
                ref, model = pair
                score = model / ref if ref > 0 else None
                label = f"model={model:g} reference={ref:g}"
        return Judgment(
            judge=self.name,
            unsafe=None,
            refused=None,
            degenerate=is_degenerate(completion),
            correct=None,
            score=score,
            label=label,
            raw=reply,
        )
