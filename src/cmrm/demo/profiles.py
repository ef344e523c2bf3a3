"""What ``cmrm demo`` runs on each bundled organism: its suites (by name), judge and knobs.

The demo reaches an organism only through registry names: the model (``MODELS``), the suites
(``BENCHMARKS``) and the judge (``JUDGES``). A profile says which suite plays which part:

- ``harmful_text`` / ``harmful_image``: held-out harmful requests without and with an image (the
  target: refusal with an image back to the text-only level);
- ``extra_harmful``: further harmful suites reported alongside (organism v1: a blank image);
- ``benign``: held-out benign requests (over-refusal); ``qa``: image questions (utility);
- ``anchors``: the calibration set; ``val``: the validation suites ``cmrm tune`` chooses on.

Every knob here (items per suite, the tune grid, the paper's alphas) was set before looking at a
held-out number; the grid's reasons are in docs/organism.md and docs/organism-smol.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.errors import unknown_name
from ..tuning.space import TuneSpace


@dataclass(frozen=True)
class DemoProfile:
    """The demo's view of one bundled organism."""

    model: str
    description: str
    judge: str
    harmful_text: str
    harmful_image: str
    benign: str
    qa: str
    anchors: str
    val: tuple[str, ...]
    extra_harmful: tuple[str, ...] = ()
    limit: int = 100
    """Held-out items per suite."""
    anchor_limit: int = 200
    val_limit: int = 32
    max_new_tokens: int = 24
    batch_size: int = 64
    paper_alphas: tuple[float, ...] = (0.05, 0.25, 1.0)
    """The paper's CMRM (``add``, every layer, every position) is evaluated at these alphas."""
    tune: TuneSpace = field(default_factory=TuneSpace)
    budget: int | None = None
    threads: int = 1
    """Torch threads (the tiny organism runs fastest on one)."""

    @property
    def harmful(self) -> tuple[str, ...]:
        return (self.harmful_text, self.harmful_image, *self.extra_harmful)

    @property
    def suites(self) -> tuple[str, ...]:
        """Every held-out suite of the evaluation, in report order."""
        return (*self.harmful, self.benign, self.qa)


PROFILES: dict[str, DemoProfile] = {
    "organism": DemoProfile(
        model="organism",
        description="a 0.8M-parameter LLaVA speaking a 125-word toy language (the negative control)",
        judge="organism",
        harmful_text="organism:harmful-text",
        harmful_image="organism:harmful-image",
        extra_harmful=("organism:harmful-blank",),
        benign="organism:benign-text",
        qa="organism:image-qa",
        anchors="organism:anchor",
        val=("organism:val-harmful-image", "organism:val-benign-image", "organism:val-image-qa"),
        tune=TuneSpace(
            contrasts=("null", "image"),
            sequential=(False, True),
            alphas=(0.05, 0.1, 0.25, 0.5, 1.0),
            bands=("all", "2", "3"),
            positions=("last", "all"),
        ),
    ),
    "organism-smol": DemoProfile(
        model="organism-smol",
        description="SmolLM2-135M-Instruct, safety-tuned on text, given eyes on benign scenes",
        judge="organism-smol",
        harmful_text="organism-smol:harmful-text",
        harmful_image="organism-smol:harmful-image",
        benign="organism-smol:benign-image",
        qa="organism-smol:image-qa",
        anchors="organism-smol:anchor",
        val=(
            "organism-smol:val-harmful-image",
            "organism-smol:val-benign-image",
            "organism-smol:val-image-qa",
        ),
        limit=32,
        anchor_limit=96,
        val_limit=12,
        max_new_tokens=16,
        batch_size=32,
        paper_alphas=(0.25, 1.0),
        tune=TuneSpace(
            sources=("dataset",),
            contrasts=("null",),
            sequential=(False,),
            alphas=(0.5, 1.0, 2.0),
            bands=("10",),
            positions=("all",),
        ),
        threads=2,
    ),
}


def get_profile(name: str) -> DemoProfile:
    """The profile of a bundled organism; UnknownNameError with a did-you-mean otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise unknown_name("organism", name, list(PROFILES)) from None
