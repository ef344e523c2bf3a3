"""Multiple-choice answer extraction (ScienceQA-style): which option did the completion pick?

Options are lettered A, B, C ... in the order of ``Item.choices``. The extractor tries, in order:

1. an explicit statement: "The answer is B", "Answer: (B)", "the answer is b." (a lower-case
   letter only in parentheses or before punctuation, so "the answer is a cat" is not A);
2. a leading letter: "B", "(B)", "B.", "B) ...", "B: ..." (upper case, and "A cat ..." is not A);
3. exactly one parenthesised letter anywhere: "I pick (C) because ...";
4. the text of exactly one choice (case-insensitive, whole words; a choice contained in a longer
   matching choice does not count separately).

Anything else is "unparsed" and counts as wrong, as in LLaVA's ScienceQA evaluation.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from cmrm.base.errors import DataError
from cmrm.data.items import Item

from .degenerate import is_degenerate
from .judgment import Judgment, check_batch

LETTERS = string.ascii_uppercase
_EXPLICIT = re.compile(
    r"\b(?i:answer)\s*(?:(?i:is)|:)?\s*:?\s*"
    r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z0-9])|([a-z])(?=\s*(?:$|[.,;:!])))"
)
_LEADING = re.compile(r"^(?:\(([A-Z])\)|([A-Z])\)|([A-Z])(?:$|[.:\]]|\s*\n))")
_PAREN = re.compile(r"\(([A-Z])\)")


def _choice_text_match(text: str, choices: Sequence[str]) -> int | None:
    lowered = text.lower()
    spans: list[tuple[int, int, int]] = []
    for index, choice in enumerate(choices):
        needle = choice.strip().lower()
        if not needle:
            continue
        pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
        spans += [(m.start(), m.end(), index) for m in re.finditer(pattern, lowered)]
    kept = {
        index
        for start, end, index in spans
        if not any(s <= start and end <= e and (s, e) != (start, end) for s, e, _ in spans)
    }
    return kept.pop() if len(kept) == 1 else None


def extract_choice(text: str, choices: Sequence[str]) -> int | None:
    """The index of the option a completion picks, or ``None`` if it cannot be told."""
    stripped = text.strip()
    n = len(choices)

    def index_of(letter: str) -> int | None:
        position = LETTERS.find(letter.upper())
        return position if 0 <= position < n else None

    for match in (_EXPLICIT.search(stripped), _LEADING.match(stripped)):
        letter = next((g for g in match.groups() if g), None) if match else None
        if letter and (found := index_of(letter)) is not None:
            return found
    parens = {i for m in _PAREN.finditer(stripped) if (i := index_of(m.group(1))) is not None}
    if len(parens) == 1:
        return parens.pop()
    return _choice_text_match(stripped, choices)


def answer_index(item: Item) -> int:
    """The gold option index of a multiple-choice item (answer as index, letter or choice text)."""
    choices, answer = item.choices, item.answer
    if not choices or answer is None:
        raise DataError(
            f"item {item.id!r}: the mc judge needs 'choices' and 'answer', got choices={choices!r}"
            f", answer={answer!r}; use it only on multiple-choice benchmarks such as ScienceQA"
        )
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(choices):
        return answer
    if isinstance(answer, str):
        if len(answer) == 1 and 0 <= LETTERS.find(answer.upper()) < len(choices):
            return LETTERS.find(answer.upper())
        matches = [i for i, c in enumerate(choices) if c.strip().lower() == answer.strip().lower()]
        if len(matches) == 1:
            return matches[0]
    raise DataError(
        f"item {item.id!r}: answer {answer!r} does not name one of its {len(choices)} choices; "
        f"expected an index 0..{len(choices) - 1}, a letter A..{LETTERS[len(choices) - 1]} or a "
        "choice's text"
    )


class MultipleChoiceJudge:
    """Correctness of multiple-choice answers (``correct``; ``score`` 1.0 / 0.0).

    The label is the extracted letter, or ``"unparsed"``.
    """

    name = "mc"

    def judge(self, items: Sequence[Item], completions: Sequence[str]) -> list[Judgment]:
        check_batch(self.name, items, completions)
        return [self._one(i, c) for i, c in zip(items, completions, strict=True)]

    def _one(self, item: Item, completion: str) -> Judgment:
        gold = answer_index(item)
        assert item.choices is not None  # checked by answer_index
        picked = extract_choice(completion, item.choices)
        correct = picked == gold
        return Judgment(
            judge=self.name,
            unsafe=None,
            refused=None,
            degenerate=is_degenerate(completion),
            correct=correct,
            score=1.0 if correct else 0.0,
            label="unparsed" if picked is None else LETTERS[picked],
            raw=None,
        )
