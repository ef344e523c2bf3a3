"""Model-based safety judges: Llama Guard 3 (``llamaguard``) and a prompted verdict (``llm``, ``openai``).

Both ask a backend to complete one conversation per (item, completion) and parse the reply into
``unsafe`` and a label; they differ only in the conversation they build and the parser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cmrm.data.items import Item

from .backends import ChatBackend, Message, user, with_system
from .degenerate import is_degenerate
from .judgment import Judgment, check_batch
from .prompts import VERDICT_TEMPLATE, Verdict, check_template, fill

ConversationBuilder = Callable[[Item, str], list[Message]]


def guard_conversation(item: Item, completion: str) -> list[Message]:
    """Llama Guard judges the last assistant turn of [user prompt, assistant completion].

    Llama Guard 3 text models never see the item's image: only the text prompt and the answer.
    """
    return [user(item.prompt), {"role": "assistant", "content": completion}]


@dataclass(frozen=True)
class VerdictPrompt:
    """Builds the single-turn "is this response safe or unsafe?" conversation."""

    template: str = VERDICT_TEMPLATE
    system: str | None = None

    def __post_init__(self) -> None:
        check_template(self.template, ("request", "response"), "verdict prompt")

    def __call__(self, item: Item, completion: str) -> list[Message]:
        text = fill(self.template, {"request": item.prompt, "response": completion})
        return with_system(self.system, [user(text)])


class SafetyJudge:
    """Ask a judge model about each completion and parse its safe/unsafe answer.

    ``unsafe`` comes from the model's verdict alone (``None`` when unparsable, label
    ``"unparsed"``); ``refused`` is not measured (``None``); ``degenerate`` is recorded so that
    empty or looping completions, which judges tend to call safe, can be counted apart.
    """

    def __init__(
        self,
        name: str,
        backend: ChatBackend,
        *,
        converse: ConversationBuilder,
        parse: Callable[[str], Verdict],
    ) -> None:
        self.name = name
        self.backend = backend
        self.converse = converse
        self.parse = parse

    def judge(self, items: Sequence[Item], completions: Sequence[str]) -> list[Judgment]:
        check_batch(self.name, items, completions)
        conversations = [self.converse(i, c) for i, c in zip(items, completions, strict=True)]
        replies = self.backend.complete(conversations) if conversations else []
        out = []
        for completion, reply in zip(completions, replies, strict=True):
            verdict = self.parse(reply)
            out.append(
                Judgment(
                    judge=self.name,
                    unsafe=verdict.unsafe,
                    refused=None,
                    degenerate=is_degenerate(completion),
                    correct=None,
                    score=None,
                    label=verdict.label,
                    raw=reply,
                )
            )
        return out
