"""``conditional`` — add, but only to the rows whose state reads as harmful.

A row is steered at layer ``l`` when its state at the last prompt token, before steering, projects
on ``u`` above the threshold ``t`` calibrated between the harmful and benign anchors *with their
image* (the gate is decided in the prefill and kept for the generated tokens). In the spirit of
ASTRA's adaptive steering: leave benign requests, image questions included, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .add import Add


@dataclass(frozen=True)
class Conditional(Add):
    gates: ClassVar[bool] = True
    name: ClassVar[str] = "conditional"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + alpha*v on rows with <h_last,u> > t, else h"


OPERATOR = Conditional
