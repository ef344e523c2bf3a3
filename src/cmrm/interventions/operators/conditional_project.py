"""``conditional-project`` — project, but only on the rows whose state reads as harmful.

``project``'s step ``alpha * <v, u> u`` (only the shift's component along the safety direction)
with ``conditional``'s row gate: a row is steered at layer ``l`` when its last-prompt state, before
steering, projects on ``u`` above the threshold ``t`` calibrated between harmful and benign anchors
with their image (decided in the prefill, kept for the generated tokens). The projection keeps what
the image shows; the gate keeps benign requests and image questions untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .project import Project


@dataclass(frozen=True)
class ConditionalProject(Project):
    gates: ClassVar[bool] = True
    name: ClassVar[str] = "conditional-project"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + alpha*<v,u> u on rows with <h_last,u> > t, else h"


OPERATOR = ConditionalProject
