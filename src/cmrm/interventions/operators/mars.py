"""``mars`` — refusal steering gated by risk, within a trust region (after MARS).

After D'Incà, Mancini and Sebe, "Harnessing Textual Refusal Directions for Multimodal Safety"
(arXiv 2606.31876), as far as its abstract describes the method: steer along the *textual*
refusal direction (here the safety axis ``u``, harmful minus benign text-only anchor means),
correct the modality misalignment by re-centring (here: the decision threshold ``t`` is the
harmful/benign midpoint measured on *image-conditioned* anchor states, so the image's offset
along ``u`` is already in it), act only where the state reads as risky and only as far as a
trust region allows, at the first generated token. The equations below are ours, not the
paper's (we had its description, not its formulas):

- the row is steered only when its last-prompt state, before steering, projects above ``t``
  (decided in the prefill — the state that produces the first generated token — and kept for
  the generated tokens, like ``conditional``);
- the step along ``u`` is ``min(alpha <v, u>, max(0, r - <h, u>))`` when positive: ReLU-gated
  and never past the text-only harmful reference ``r`` (the trust region), like ``gated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .gated import Gated


@dataclass(frozen=True)
class Mars(Gated):
    gates: ClassVar[bool] = True
    name: ClassVar[str] = "mars"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = (
        "rows with <h_last,u> > t: h + min(alpha*<v,u>, max(0, r - <h,u>)) u; others: h"
    )


OPERATOR = Mars
