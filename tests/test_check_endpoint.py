"""`cmrm check-endpoint` against real `cmrm serve` instances with and without the shift, and
against a server of the baked (hf-bias) checkpoint."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmrm.calibration.shift import ShiftVectors
from cmrm.cli import app
from cmrm.export.bias import export_hf_bias
from cmrm.export.endpoint import Answer, distance
from cmrm.models import VLM, load_vlm
from cmrm.serve import ServedIntervention, ServerConfig

from .serving import organism_and_shift, serving

runner = CliRunner()


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory) -> tuple[VLM, ShiftVectors, Path]:
    vlm, shift = organism_and_shift()
    return vlm, shift, shift.save(tmp_path_factory.mktemp("shift"))


def check(base: str, shift_dir: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(
        app, ["check-endpoint", base, "--model", "organism", "--shift", str(shift_dir), *extra]
    )
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, report, result.output


@pytest.mark.parametrize("mode", ["auto", "completions"])
def test_a_steered_server_is_recognised(
    organism: tuple[VLM, ShiftVectors, Path], mode: str
) -> None:
    vlm, shift, shift_dir = organism
    config = ServerConfig("organism", ServedIntervention("dataset", shift=shift))
    with serving(vlm, config) as (_, base, _):
        code, report, output = check(base, shift_dir, "--mode", mode)
    assert code == 0, output
    assert report["verdict"] == "steered"
    assert report["evidence"] == ("logprobs" if mode == "auto" else "completions")
    if mode == "auto":
        assert report["distance_steered"] == pytest.approx(0.0, abs=1e-4)
        assert report["distance_unsteered"] > 0.1


def test_an_unsteered_server_is_caught(organism: tuple[VLM, ShiftVectors, Path]) -> None:
    vlm, _, shift_dir = organism
    with serving(vlm, ServerConfig("organism")) as (_, base, _):
        code, report, output = check(base, shift_dir)
        assert code == 3, output
        assert report["verdict"] == "unsteered"
        assert "UNSTEERED" in output
        code, report, _ = check(base, shift_dir, "--expect", "unsteered", "--mode", "completions")
        assert code == 0 and report["verdict"] == "unsteered"
        code, report, output = check(base, shift_dir, "--alpha", "0")
        assert code == 4 and report["verdict"] == "inconclusive", output


def test_a_server_of_the_baked_checkpoint_is_steered(
    organism: tuple[VLM, ShiftVectors, Path], tmp_path: Path
) -> None:
    """The export path end to end: bake, load without hooks, serve with no intervention, check."""
    _, shift, shift_dir = organism
    fresh = load_vlm("organism")
    export_hf_bias(fresh, shift, tmp_path / "baked")
    baked = load_vlm(str(tmp_path / "baked"))
    with serving(baked, ServerConfig("organism")) as (_, base, _):
        code, report, output = check(base, shift_dir)
    assert code == 0, output
    assert report["verdict"] == "steered"
    assert report["distance_steered"] < 1e-3


def test_an_unreachable_endpoint_is_one_clear_error(
    organism: tuple[VLM, ShiftVectors, Path],
) -> None:
    _, _, shift_dir = organism
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, output = check(f"http://127.0.0.1:{port}", shift_dir)
    assert code == 1
    assert output.count("Error:") == 1 and "cannot reach" in output


def test_distance_compares_only_positions_with_the_same_prefix() -> None:
    served = Answer("a b", ("a", "b"), ({"a": -0.1, "c": -2.0}, {"b": -0.5}))
    same = Answer("a b", ("a", "b"), ({"a": -0.1, "c": -2.0}, {"b": -0.5}))
    other = Answer("c d", ("c", "d"), ({"c": -0.2, "a": -1.0}, {"d": -0.1, "b": -9.0}))
    assert distance(served, same) == 0.0
    # only position 0 is comparable (the prefixes differ after it)
    assert distance(served, other) == pytest.approx((abs(-0.1 + 1.0) + abs(-2.0 + 0.2)) / 2)
