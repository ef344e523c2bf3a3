"""organism-smol in a real llama.cpp, with images: converted by llama.cpp's own tools, judged by
the same SmolJudge, beside cmrm's own evaluation of the same setting.

The text decoder (LoRA merged) goes through ``convert_hf_to_gguf.py``; the CLIP tower and the
LLaVA projector through the LLaVA-1.5 route (``llava_surgery_v2.py``,
``convert_image_encoder_to_gguf.py --clip-model-is-vision``; see :mod:`tests.engines_models`).
``convert_hf_to_gguf.py --mmproj`` cannot do it: it maps ``LlavaForConditionalGeneration`` to
Pixtral only and stops with ``Unsupported model type: clip_vision_model``.

Two settings: unsteered, and cmrm's exported control vector of the sequential shift (layers
1-29, ``add`` at ``ALPHA``; positions ``all``, as a control vector applies; every item has an
image, so cmrm shifts every row too). Greedy ``NEW``-token answers, as the demo generates for
this organism.

- :func:`test_image_parity`: on the first ``PARITY_ITEMS`` items of each held-out suite, the
  top-k log-probabilities of llama.cpp's answers against transformers', unsteered (the floor) and
  steered (must be as close as the floor: :func:`tests.engines.closeness_problems`). The
  transformers side runs the tower as llama.cpp does: llama.cpp 11434's LLaVA graph puts the
  CLIP class token last (upstream defect, see :mod:`tests.engines_images`), and the test first
  finds which graph the engine runs (it must match one of the two far better than the other),
  so the export is judged against the model the engine really computes.
- :func:`test_organism_rates`: every item of the held-out suites ``organism-smol:harmful-image``
  (refusal), ``benign-image`` (over-refusal) and ``image-qa`` (correct), through llama.cpp and
  through cmrm's own evaluation path (``generate_items``, the batches ``cmrm eval`` runs) of the
  same setting, judged by the same ``SmolJudge``, and through cmrm on llama.cpp's CLS-last
  graph. The export is judged against the model the engine computes: each llama.cpp rate must lie
  in the Wilson 95 % interval of cmrm's rate on that graph. Against cmrm's true graph, each
  llama.cpp rate must lie in cmrm's interval too **unless** cmrm on llama.cpp's graph is outside
  it as well — a divergence the upstream defect explains, recorded under ``upstream`` in the
  report and printed as a warning. On every held-out item (2026-12-07) image QA is such a
  divergence: llama.cpp 93.8 % unsteered and 62.1 % steered against cmrm's 97.1 % and 72.5 %, with
  cmrm on llama.cpp's graph at 93.8 % and 62.5 % (the first 24 items did not show it).

``slow``. ``make test-engines`` runs it; ``CMRM_ENGINES_LIMIT=N`` takes the first N items of
each suite for :func:`test_organism_rates` (quicker and weaker: not the issue's check).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cmrm
from cmrm.data.items import Item
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
NEW = 16
"""The demo's ``max_new_tokens`` for organism-smol."""
ALPHA = 0.35
"""``add`` at 0.35: a setting the demo's organism-smol search reports (docs/organism-smol.md)."""
PARITY_ITEMS = 8
TOP = 10
LIMIT = int(os.environ["CMRM_ENGINES_LIMIT"]) if os.environ.get("CMRM_ENGINES_LIMIT") else None
"""Items per suite in :func:`test_organism_rates`: every held-out item (200 / 150 / 240) unless
``CMRM_ENGINES_LIMIT`` asks for the first N (say so beside any figure it gives)."""
GRAPH_MARGIN = 5.0
"""The graph llama.cpp runs must be this many times closer (agreed-position log-probability
gap) than the other one. Measured (llama.cpp 11434, 24 items, unsteered): 0.0067 nats to the
CLS-last graph against 0.637 to transformers' own."""
REPORT = Path(__file__).parent.parent / ".engines" / "organism-images.json"


@dataclass
class Engine:
    vlm: cmrm.VLM
    shift: cmrm.ShiftVectors
    text_gguf: Path
    mmproj: Path
    cv: Path
    work: Path

    @property
    def intervention(self) -> cmrm.Intervention:
        return cmrm.Intervention(
            "dataset", operator="add", alpha=ALPHA, positions="all", shift=self.shift
        )

    def settings(self) -> dict[str, tuple[cmrm.Intervention | None, tuple[str, ...]]]:
        return {
            "unsteered": (None, ()),
            f"add {ALPHA} (control vector)": (
                self.intervention,
                ("--control-vector", str(self.cv)),
            ),
        }

    def served(
        self, tag: str, extra: Sequence[str], items: Sequence[Item], k: int
    ) -> list[I.Served]:
        assert BIN is not None
        with E.llama_server(BIN, self.text_gguf, "--mmproj", str(self.mmproj), *extra,
                            log=self.work / f"{tag}.log") as server:  # fmt: skip
            prompts = [self.vlm.render(i.prompt, True) for i in items]
            return I.image_completions(server, prompts, items, NEW, k)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    assert SRC is not None and OVERLAY is not None
    work = tmp_path_factory.mktemp("organism-images")
    shift = cmrm.ShiftVectors.load(SHIFT_DIR)
    vlm = cmrm.load_vlm("organism-smol")
    folder = M.save_vlm(vlm, work / "hf")
    text_gguf = M.convert_text(SRC, folder, work / "organism-f32.gguf")
    mmproj = M.convert_mmproj(SRC, folder, work / "mm", OVERLAY)
    cv = work / "cv.gguf"
    write_control_vector(shift, cv, alpha=ALPHA, model_hint="llama")
    return Engine(vlm, shift, text_gguf, mmproj, cv, work)


def _record(key: str, value: Any) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    old = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    old[key] = value
    REPORT.write_text(json.dumps(old, indent=2) + "\n")


def test_image_parity(engine: Engine) -> None:
    items = [i for suite in SUITES for i in load_suite(suite, limit=PARITY_ITEMS)]
    vlm, iv = engine.vlm, engine.intervention
    plain = [s.run for s in engine.served("parity-plain", (), items, TOP)]
    steered = [s.run for s in engine.served("parity-cv", ("--control-vector", str(engine.cv)),
                                             items, TOP)]  # fmt: skip
    hf = {"transformers": (I.hf_image_runs(vlm, items, NEW, TOP),
                           I.hf_image_runs(vlm, items, NEW, TOP, iv))}  # fmt: skip
    with I.cls_last_graph(vlm):
        hf["CLS-last (llama.cpp's graph)"] = (
            I.hf_image_runs(vlm, items, NEW, TOP),
            I.hf_image_runs(vlm, items, NEW, TOP, iv),
        )
    table: dict[str, E.Agreement] = {}
    for graph, (hf_plain, hf_steered) in hf.items():
        table[f"floor vs {graph}"] = E.agreement(hf_plain, plain)
        table[f"control vector vs {graph}"] = E.agreement(hf_steered, steered)
        table[f"steered vs unsteered, {graph}"] = E.agreement(hf_steered, hf_plain)
    gaps = {graph: table[f"floor vs {graph}"].lp_agreed for graph in hf}
    graph = min(gaps, key=gaps.__getitem__)
    other = max(gaps, key=gaps.__getitem__)
    _record("parity", {"items": len(items), "new_tokens": NEW, "top_k": TOP, "alpha": ALPHA,
                       "graph": graph} | {k: a.row() for k, a in table.items()})  # fmt: skip
    logger.info("image parity (llama.cpp runs %s):\n%s", graph, E.summary(table))
    assert gaps[graph] * GRAPH_MARGIN < gaps[other], (
        f"llama.cpp's image path matches neither graph clearly: agreed-position |dlogprob| "
        f"{gaps}; expected one {GRAPH_MARGIN}x closer than the other (a new llama.cpp graph or "
        "converter change? see tests/engines_images.py)"
    )
    floor = table[f"floor vs {graph}"]
    effect = table[f"steered vs unsteered, {graph}"]
    assert effect.lp_first > 5 * floor.lp_first + 0.1, (
        f"the control vector at alpha {ALPHA} barely changes the image answers: {effect.row()}, "
        f"floor {floor.row()}; parity would be vacuous"
    )
    problems = E.closeness_problems(table[f"control vector vs {graph}"], floor)
    assert not problems, (
        f"with images, llama.cpp's --control-vector and cmrm's steering disagree more than the "
        f"engines' floor ({graph}): {'; '.join(problems)}"
    )


def _share(a: Sequence[Any], b: Sequence[Any], key: Any) -> float:
    """Share of positions where ``key`` of ``a`` equals ``key`` of ``b``."""
    return sum(bool(key(x) == key(y)) for x, y in zip(a, b, strict=True)) / max(len(a), 1)


def test_organism_rates(engine: Engine) -> None:
    items = {suite: load_suite(suite, limit=LIMIT) for suite in SUITES}
    vlm = engine.vlm
    judge = SmolJudge()
    options = GenerationOptions(max_new_tokens=NEW)
    report: dict[str, dict[str, dict[str, object]]] = {}
    answers: dict[str, dict[str, dict[str, list[str]]]] = {}
    problems: list[str] = []
    upstream: list[str] = []
    for setting, (iv, extra) in engine.settings().items():
        for suite, chosen in items.items():
            served = [s.text for s in engine.served(f"rates-{setting[:3]}", extra, chosen, 0)]
            ours = generate_items(vlm, chosen, iv, options, batch_size=32)
            with I.cls_last_graph(vlm):
                as_llama = generate_items(vlm, chosen, iv, options, batch_size=32)
            texts = {"llama.cpp": served, "cmrm": ours, "cmrm, CLS-last": as_llama}
            judged = {name: judge.judge(chosen, t) for name, t in texts.items()}
            rates = {name: I.rate(js, suite) for name, js in judged.items()}
            alike = {other: _share(judged["llama.cpp"], judged[other], lambda j: j.label)
                     for other in ("cmrm", "cmrm, CLS-last")}  # fmt: skip
            same_text = {other: _share(served, texts[other], str.strip)
                         for other in ("cmrm", "cmrm, CLS-last")}  # fmt: skip
            row: dict[str, object] = {name: r.text() for name, r in rates.items()}
            row |= {f"judged alike with {k}": round(v, 3) for k, v in alike.items()}
            row |= {f"same text as {k}": round(v, 3) for k, v in same_text.items()}
            report.setdefault(setting, {})[suite] = row
            answers.setdefault(setting, {})[suite] = texts
            logger.info("%s %s: %s", setting, suite, row)
            served_rate = rates["llama.cpp"]
            if not rates["cmrm, CLS-last"].contains(served_rate.value):
                problems.append(
                    f"{setting} {suite}: llama.cpp {served_rate.text()} outside cmrm's "
                    f"{rates['cmrm, CLS-last'].text()} on the graph llama.cpp runs (the export)"
                )
            if not rates["cmrm"].contains(served_rate.value):
                if rates["cmrm"].contains(rates["cmrm, CLS-last"].value):
                    problems.append(
                        f"{setting} {suite}: llama.cpp {served_rate.text()} outside cmrm's "
                        f"{rates['cmrm'].text()}, which llama.cpp's graph does not explain "
                        f"(cmrm on it: {rates['cmrm, CLS-last'].text()})"
                    )
                else:
                    upstream.append(
                        f"{setting} {suite}: llama.cpp {served_rate.text()} against cmrm's "
                        f"{rates['cmrm'].text()}; cmrm on llama.cpp's CLS-last graph "
                        f"{rates['cmrm, CLS-last'].text()}"
                    )
    _record(
        "rates",
        {
            "limit": LIMIT,
            "new_tokens": NEW,
            "alpha": ALPHA,
            "rates": report,
            "upstream": upstream,
        },
    )
    for line in upstream:
        warnings.warn(
            f"llama.cpp's LLaVA graph (CLIP class token last, upstream #25814) changes a rate: "
            f"{line}",
            stacklevel=1,
        )
    REPORT.with_name("organism-images-answers.json").write_text(json.dumps(answers) + "\n")
    assert not problems, (
        "llama.cpp with the converted organism does not reproduce cmrm's evaluation: "
        + "; ".join(problems)
        + f". Expected each llama.cpp rate within cmrm's 95 % interval on the graph llama.cpp "
        f"runs, and on cmrm's own graph wherever llama.cpp's does not explain the difference; "
        f"full table in {REPORT}"
    )
