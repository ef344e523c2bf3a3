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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    limit: int | None = None
    """Held-out items per suite (None: every item of the full suites)."""
    anchor_limit: int | None = None
    """Anchors for calibration (None: all)."""
    val_limit: int | None = 64
    """Validation items per suite: 64 gives a paired 95 % interval of about +-10 points on a rate
    difference where 12 gave one answer = 8.3 points (all items where a suite has fewer)."""
    max_new_tokens: int = 24
    batch_size: int = 64
    paper_alphas: tuple[float, ...] = (0.05, 0.25, 1.0)
    """The paper's CMRM (``add``, every layer, every position) is evaluated at these alphas."""
    paper_methods: tuple[str, ...] = ("dataset", "sample")
    """The paper's CMRM rows: dataset-level and/or sample-level vectors."""
    tune: TuneSpace = field(default_factory=TuneSpace)
    budget: int | None = None
    threads: int = 1
    """Torch threads (the tiny organism runs fastest on one)."""
    no_harm: float | None = None
    """Where set (organism v1, the negative control): the recommendation must do no harm on the
    held-out suites — QA down, degenerate output up and over-refusal up each by at most this."""
    quick: Mapping[str, Any] = field(default_factory=dict)
    """What ``--quick`` changes (smaller suites and grid for smoke runs; labelled as such)."""

    @property
    def harmful(self) -> tuple[str, ...]:
        return (self.harmful_text, self.harmful_image, *self.extra_harmful)

    @property
    def suites(self) -> tuple[str, ...]:
        """Every held-out suite of the evaluation, in report order."""
        return (*self.harmful, self.benign, self.qa)


SMOL_SPACE = TuneSpace(
    sources=("dataset",),
    contrasts=("null",),
    sequential=(True,),
    bands=("all",),
    positions=("all",),
    operators=(
        "add",
        "project",
        "norm-preserving",
        "gated",
        "conditional",
        "conditional-project",
        "alphasteer",
        "mars",
    ),
    operator_alphas={
        "add": (0.25, 0.35),
        "project": (2.0, 3.0),
        "norm-preserving": (0.35,),
        "gated": (4.0,),
        "conditional": (0.5, 1.0),
        "conditional-project": (3.0, 4.0),
        "alphasteer": (1.0, 2.0),
        "mars": (2.0, 4.0),
    },
    extra=(
        # image tokens untouched
        TuneSpace(
            contrasts=("null",),
            sequential=(True,),
            bands=("all",),
            positions=("text",),
            operators=("add", "project"),
            operator_alphas={"add": (0.25,), "project": (3.0,)},
        ),
        # the real-image contrast (a blank image's shift vs a scene's)
        TuneSpace(
            contrasts=("image",),
            sequential=(True,),
            bands=("all",),
            positions=("all",),
            operators=("project",),
            operator_alphas={"project": (3.0,)},
        ),
        # one independent layer, where there is nothing to compound (the old demo's best)
        TuneSpace(
            contrasts=("null",),
            sequential=(False,),
            bands=("10",),
            positions=("all",),
            operators=("add",),
            operator_alphas={"add": (0.5,)},
        ),
    ),
)
"""organism-smol's search (20 settings, 4 calibrations: what a 2-core CPU evaluates in about an
hour at 64 validation items per suite). Its grid was set from validation measurements only (issue
21's table: every independent all-layer variant degenerates; a sequential all-layer shift
restores refusals fluently, ``add`` up to alpha ~0.35 and ``project`` up to ~3 before image QA
falls): every operator on a sequential all-layer calibration, two alphas where each is expected to
start working, and contrasting variants (text positions, the real-image contrast, one independent
layer)."""

SMOL_QUICK_SPACE = TuneSpace(
    sources=("dataset",),
    contrasts=("null",),
    sequential=(True,),
    bands=("all",),
    positions=("all",),
    operators=("add", "project", "conditional"),
    operator_alphas={"add": (0.25,), "project": (3.0,), "conditional": (0.5,)},
)
"""``--quick``: three settings, for smoke runs only."""


ORGANISM_SPACE = TuneSpace(
    contrasts=("null", "image"),
    sequential=(False, True),
    alphas=(0.1, 0.25, 0.5, 1.0, 2.0),
    bands=("all",),
    positions=("all",),
    extra=(
        # single layers, where nothing compounds, at the last position only (the paper's
        # sample-level placement) and everywhere
        TuneSpace(
            operators=("add", "project"),
            contrasts=("null",),
            sequential=(False,),
            alphas=(0.25, 0.5, 1.0, 2.0),
            bands=("2", "3"),
            positions=("last", "all"),
        ),
    ),
)
"""organism v1's search (the negative control): every operator at five alphas on the four
calibrations (null or real-image contrast, independent or sequential; every layer, every
position), plus ``add``/``project`` at single layers 2 and 3 — 192 settings, about 3 s each on
one CPU thread at 64 validation items per suite. The grid before (every operator x 5 alphas x 3
bands x 2 positions x 4 calibrations: 640 settings and 14 calibrations) took hours, so ``make
demo`` never finished it; this one keeps every operator, both contrasts and both calibrations."""

ORGANISM_QUICK_SPACE = TuneSpace(
    contrasts=("null",),
    sequential=(False, True),
    alphas=(0.25, 1.0),
    bands=("all",),
    positions=("all",),
)
"""``--quick`` on organism v1: every operator at two alphas on a null-contrast calibration,
independent and sequential (32 settings), for smoke runs only."""


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
        no_harm=0.02,
        quick={
            "limit": 100,
            "val_limit": 32,
            "anchor_limit": None,
            "tune": ORGANISM_QUICK_SPACE,
        },
        tune=ORGANISM_SPACE,
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
            "organism-smol:val-harmful-task-image",
            "organism-smol:val-benign-image",
            "organism-smol:val-image-qa",
        ),
        max_new_tokens=16,
        batch_size=32,
        paper_alphas=(0.25, 1.0),
        paper_methods=("dataset",),
        tune=SMOL_SPACE,
        threads=2,
        quick={
            "limit": 32,
            "val_limit": 12,
            "anchor_limit": 96,
            "tune": SMOL_QUICK_SPACE,
        },
    ),
}


def get_profile(name: str) -> DemoProfile:
    """The profile of a bundled organism; UnknownNameError with a did-you-mean otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise unknown_name("organism", name, list(PROFILES)) from None
