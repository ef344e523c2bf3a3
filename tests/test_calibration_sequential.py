"""Sequential calibration does not compound; safety axes come from kinded anchors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from cmrm.base.errors import IncompatibleShiftError
from cmrm.calibration.capture import capture_states
from cmrm.calibration.estimate import calibrate
from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.data.images import NullImage
from cmrm.data.items import Item
from cmrm.interventions.steering import steer
from cmrm.models import VLM


def anchors() -> list[Item]:
    colours = ["red", "blue", "green", "yellow", "purple", "orange"]
    prompts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w10", "w11 w12", "w13 w14 w15"]
    return [
        Item(
            id=str(i),
            prompt=p,
            image=Image.new("RGB", (40 + 4 * i, 30), colours[i]),
            kind="harmful" if i % 2 else "benign",
        )
        for i, p in enumerate(prompts)
    ]


def steered_gap(vlm: VLM, shift: ShiftVectors, items: list[Item]) -> torch.Tensor:
    """Per layer, |mean steered null-image state - mean text-only state| at the last token."""
    prompts = [item.prompt for item in items]
    nulls = [NullImage().like(item.image, vlm.image_mean) for item in items]  # type: ignore[arg-type]
    text = capture_states(vlm, prompts, [None] * len(items))
    with steer(vlm, shift, alpha=1.0, positions="all"):
        steered = capture_states(vlm, prompts, nulls)
    return (steered.mean(dim=1) - text.mean(dim=1)).norm(dim=-1)


@pytest.mark.parametrize("estimator", ["mean"])
def test_sequential_matches_text_only_at_every_layer(vlm: VLM, estimator: str) -> None:
    items = anchors()
    sequential = calibrate(vlm, items, sequential=True, positions="all", batch_size=4)
    independent = calibrate(vlm, items, batch_size=4)
    text_norm = capture_states(vlm, [i.prompt for i in items], [None] * len(items)).norm(dim=-1)
    scale = float(text_norm.mean())
    seq_gap = steered_gap(vlm, sequential, items)
    ind_gap = steered_gap(vlm, independent, items)
    assert float(seq_gap.max()) < 1e-4 * scale, seq_gap
    # layer 0 is the same either way; later layers compound without the sequential estimate
    torch.testing.assert_close(sequential.vectors[0], independent.vectors[0])
    assert float(ind_gap[1:].max()) > 1e-2 * scale, ind_gap
    assert sequential.meta.sequential and sequential.meta.calibration["alpha"] == 1.0
    assert not independent.meta.sequential


def test_sequential_is_recorded_and_round_trips(vlm: VLM, tmp_path: Path) -> None:
    shift = calibrate(vlm, anchors(), sequential=True, calibration_alpha=0.5, positions="last")
    loaded = ShiftVectors.load(shift.save(tmp_path / "s"))
    assert loaded.meta.sequential
    assert dict(loaded.meta.calibration) == {"alpha": 0.5, "positions": "last", "operator": "add"}
    torch.testing.assert_close(loaded.vectors, shift.vectors)
    assert loaded.axes is not None and shift.axes is not None
    torch.testing.assert_close(loaded.axes.directions, shift.axes.directions)
    torch.testing.assert_close(loaded.axes.reference, shift.axes.reference)


def test_safety_axes_are_the_normalised_kind_difference(vlm: VLM) -> None:
    items = anchors()
    shift = calibrate(vlm, items, batch_size=4)
    text = capture_states(vlm, [i.prompt for i in items], [None] * len(items))
    harmful = text[:, [i for i, it in enumerate(items) if it.kind == "harmful"]].mean(dim=1)
    benign = text[:, [i for i, it in enumerate(items) if it.kind == "benign"]].mean(dim=1)
    direction = (harmful - benign) / (harmful - benign).norm(dim=-1, keepdim=True)
    assert shift.axes is not None
    torch.testing.assert_close(shift.axes.directions, direction, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        shift.axes.reference, (harmful * direction).sum(-1), rtol=1e-4, atol=1e-4
    )


def test_no_axes_without_both_kinds(vlm: VLM) -> None:
    items = [Item(id=it.id, prompt=it.prompt, image=it.image) for it in anchors()]
    shift = calibrate(vlm, items)
    assert shift.axes is None
    with (
        pytest.raises(IncompatibleShiftError, match="needs safety axes"),
        steer(vlm, shift, operator="project"),
    ):
        pass


def reference_sequential(
    vlm: VLM, items: list[Item], layers: tuple[int, ...], alpha: float, positions: str
) -> torch.Tensor:
    """The O(layers²) definition, written out: one pass per layer over the anchors, each with
    the earlier layers steered through :func:`steer` (the algorithm cmrm used before)."""
    text = capture_states(vlm, [i.prompt for i in items], [None] * len(items), layers=list(layers))
    nulls = [NullImage().like(item.image, vlm.image_mean) for item in items]  # type: ignore[arg-type]
    vectors: list[torch.Tensor] = []
    for i, layer in enumerate(layers):
        if vectors:
            meta = ShiftMeta(
                source_model=vlm.model_id,
                model_type=vlm.model_type,
                hidden_size=vlm.hidden_size,
                num_layers=vlm.num_layers,
            )
            done = ShiftVectors(layers=layers[:i], vectors=torch.stack(vectors), meta=meta)
            with steer(vlm, done, alpha=alpha, positions=positions):
                state = capture_states(vlm, [it.prompt for it in items], nulls, layers=[layer])
        else:
            state = capture_states(vlm, [it.prompt for it in items], nulls, layers=[layer])
        vectors.append(text[i].mean(dim=0) - state[0].mean(dim=0))
    return torch.stack(vectors)


@pytest.mark.parametrize(
    ("layers", "alpha", "positions"),
    [(None, 1.0, "all"), ((0, 2), 0.5, "text"), ((1,), 1.0, "last")],
)
def test_one_pass_sequential_equals_the_per_layer_definition(
    vlm: VLM, layers: tuple[int, ...] | None, alpha: float, positions: str
) -> None:
    items = anchors()
    chosen = tuple(range(vlm.num_layers)) if layers is None else layers
    shift = calibrate(
        vlm,
        items,
        layers=list(chosen),
        sequential=True,
        calibration_alpha=alpha,
        positions=positions,
        batch_size=4,
    )
    expected = reference_sequential(vlm, items, chosen, alpha, positions)
    torch.testing.assert_close(shift.vectors, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("estimator", ["mean", "pc1"])
def test_carried_states_on_disk_give_the_same_bits(
    vlm: VLM, estimator: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Beyond the carry budget every batch waits on disk between layers (one in memory at a
    time): the vectors are bit-identical to keeping them in memory, and the folder is gone."""
    from cmrm.calibration import spill

    folders: list[Path] = []
    original = spill.CarryStore.decide
    put = spill.CarryStore.put
    files: list[int] = []

    def counting_put(self: spill.CarryStore, slot: int, value: Any) -> None:
        put(self, slot, value)
        if self.spilled:
            files.append(len(list(Path(self._tmp.name).iterdir())))  # type: ignore[union-attr]

    def decide(self: spill.CarryStore, per_batch: int, batches: int) -> None:
        self.parent = tmp_path
        original(self, per_batch, batches)
        if self.spilled:
            folders.append(Path(self._tmp.name))  # type: ignore[union-attr]

    monkeypatch.setattr(spill.CarryStore, "decide", decide)
    monkeypatch.setattr(spill.CarryStore, "put", counting_put)
    items = anchors()
    kw: dict[str, Any] = dict(sequential=True, batch_size=3, estimator=estimator)
    memory = calibrate(vlm, items, carry_budget=None, **kw)
    assert not folders
    disk = calibrate(vlm, items, carry_budget=0, **kw)
    assert len(folders) == 1 and not folders[0].exists()
    batches = -(-len(items) // 3)
    assert batches > 1 and max(files) == batches  # one file per batch, rewritten per layer
    assert torch.equal(memory.vectors, disk.vectors)
    default = calibrate(vlm, items, **kw)  # a few KiB: under the default budget, in memory
    assert len(folders) == 1
    assert torch.equal(memory.vectors, default.vectors)


def test_the_carry_store_round_trips_nested_values_and_shares_tensors(tmp_path: Path) -> None:
    from cmrm.calibration.spill import CarryStore, tensor_bytes

    shared = torch.arange(6.0).reshape(2, 3)
    value = {
        "h": torch.ones(2, 2, dtype=torch.bfloat16),
        "calls": [(True, (shared,), {"p": (shared, None, 3)})],
    }
    assert tensor_bytes(value) == 2 * 2 * 2 + 6 * 4
    with CarryStore(budget=0, folder=tmp_path) as store:
        store.decide(tensor_bytes(value), 2)
        assert store.spilled
        store.put(0, value)
        back = store.get(0)
        folder = next(tmp_path.iterdir())
    assert not folder.exists()
    assert back["h"].dtype == torch.bfloat16 and torch.equal(back["h"], value["h"])
    _, (arg,), kwargs = back["calls"][0]
    assert torch.equal(arg, shared) and kwargs["p"][0] is arg and kwargs["p"][1:] == (None, 3)
