"""The input-conditioned operators beyond the paper: ``alphasteer`` (null-space-constrained
read-out, AlphaSteer) and ``mars`` (risk-gated trust-region step, after MARS). The generic
operator checks (alpha 0 identity, rows without an image untouched, KV-cache positions, batched
equals one by one, the exact formula in cached generation) run for them in test_steer.py,
test_families.py, test_generate.py and test_serve.py, which take every registered operator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cmrm.base.errors import IncompatibleShiftError
from cmrm.calibration.axes import SafetyAxes, fit_gate
from cmrm.calibration.capture import capture_states
from cmrm.calibration.estimate import calibrate
from cmrm.calibration.shift import ShiftVectors
from cmrm.cli import app
from cmrm.data.items import Item
from cmrm.interventions.operators import OPERATORS, get_operator
from cmrm.interventions.steering import steer
from cmrm.models import VLM


def test_gate_vanishes_on_benign_states_and_reads_one_on_harmful() -> None:
    gen = torch.Generator().manual_seed(0)
    common = 3 * torch.randn(32, generator=gen)
    benign = common + torch.randn(12, 32, generator=gen)
    harmful = common + 2 * torch.randn(32, generator=gen) + 0.3 * torch.randn(10, 32, generator=gen)
    w = fit_gate(harmful, benign)
    assert float((benign @ w).abs().max()) < 1e-4
    assert float((harmful @ w).mean()) == pytest.approx(1.0, abs=0.1)
    # anything in the benign span reads zero too (the null-space constraint, not a fit)
    mix = 0.3 * benign[0] - 1.7 * benign[5]
    assert abs(float(mix @ w)) < 1e-4


def anchors(image: Image.Image) -> list[Item]:
    prompts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w10", "w11 w12", "w13 w14 w15", "w2 w9"]
    colours = ["red", "blue", "green", "yellow", "purple", "orange", "white"]
    return [
        Item(
            id=str(i),
            prompt=p,
            image=Image.new("RGB", image.size, colours[i]),
            kind="harmful" if i % 2 else "benign",
        )
        for i, p in enumerate(prompts)
    ]


def test_alphasteer_shifts_harmful_anchor_states_and_leaves_benign_ones(
    vlm: VLM, image: Image.Image, tmp_path: Path
) -> None:
    items = anchors(image)
    shift = calibrate(vlm, items, gate=True, contrast="image", layers=[1])
    loaded = ShiftVectors.load(shift.save(tmp_path / "s"))
    assert loaded.axes is not None and loaded.axes.gate is not None
    torch.testing.assert_close(loaded.axes.gate, shift.axes.gate)  # type: ignore[union-attr]
    prompts, images = [i.prompt for i in items], [i.image for i in items]
    plain = capture_states(vlm, prompts, images, layers=[1])[0]  # type: ignore[arg-type]
    with steer(vlm, loaded, alpha=1.0, positions="last", operator="alphasteer"):
        moved = capture_states(vlm, prompts, images, layers=[1])[0]  # type: ignore[arg-type]
    step = (moved - plain).norm(dim=-1)
    full = loaded.vectors[0].norm()
    benign = [i for i, it in enumerate(items) if it.kind == "benign"]
    harmful = [i for i, it in enumerate(items) if it.kind == "harmful"]
    assert float(step[benign].max()) < 1e-3 * float(full)
    assert float(step[harmful].mean()) == pytest.approx(float(full), rel=0.2)


def test_alphasteer_without_a_gate_is_refused_before_any_hook(vlm: VLM, image: Image.Image) -> None:
    shift = calibrate(vlm, anchors(image))
    assert shift.axes is not None and shift.axes.gate is None
    with (
        pytest.raises(IncompatibleShiftError, match="calibrate --gate"),
        steer(vlm, shift, operator="alphasteer"),
    ):
        pass


def test_mars_moves_only_risky_rows_and_never_past_the_reference() -> None:
    op = get_operator("mars")
    assert op.gates and op.needs_axis and "mars" in OPERATORS
    u = torch.tensor([1.0, 0.0])
    from cmrm.calibration.axes import SafetyAxis

    axis = SafetyAxis(u, reference=2.0, threshold=0.5)
    hidden = torch.tensor([[[1.5, 1.0]], [[0.2, 1.0]]])  # row 0 above the threshold
    delta = torch.tensor([[3.0, 0.0], [3.0, 0.0]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    # the row gate itself is applied by steer(); the step is the trust-region one
    out = op(hidden, delta, mask, axis)
    assert out[0, 0].tolist() == pytest.approx([2.0, 1.0])  # stopped at r = 2
    assert out[1, 0].tolist() == pytest.approx([2.0, 1.0])
    assert SafetyAxes((0,), u[None], torch.tensor([2.0]), torch.tensor([0.5])).axis(0).gate is None


def test_cli_calibrate_gate(tmp_path: Path) -> None:
    out = tmp_path / "shift"
    args = ["calibrate", "organism", "--anchors", "organism:anchor", "--limit", "16", "--gate",
            "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    shift = ShiftVectors.load(out)
    assert shift.axes is not None and shift.axes.gate is not None
    assert tuple(shift.axes.gate.shape) == tuple(shift.vectors.shape)
