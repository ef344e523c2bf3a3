"""Papercuts of the command line, each through the real command (its parser, or a run that
stops at the check): the anchor-leak hint names suites that exist; eval and tune take both
spellings of the grid flags; gap's measured layers have their own name; the organism names of
--recipe and --organism; the MODEL help; serve on a busy port; an interrupted eval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

import cmrm
import cmrm.cli
from cmrm.cli.app import app
from cmrm.cli.organism import ORGANISM_OF, parse_recipe
from cmrm.data.registry import BENCHMARKS
from cmrm.evaluation.sources import held_out_hint
from cmrm.models.registry import MODELS
from cmrm.serve.server import running_server


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_evaluating_on_an_organisms_anchors_suggests_its_held_out_suites(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "organism",
            "--bench",
            "organism:anchor",
            "--anchors",
            "organism:anchor",
            "--method",
            "dataset",
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1, result.output
    (line,) = _error_lines(result.output)
    assert "never evaluate on anchors" in line and "Traceback" not in result.output
    assert "organism:anchor:eval" not in line and "organism:eval" not in line
    suggested = line.split("--bench ", 1)[1].rstrip(".").split(",")
    assert "organism:harmful-image" in suggested
    for name in suggested:  # every suggestion is a real, held-out suite
        assert name in BENCHMARKS and name != "organism:anchor" and ":val-" not in name
    assert not (tmp_path / "run").exists()


def test_held_out_hint_per_kind_of_anchor_set() -> None:
    smol = held_out_hint("organism-smol:anchor")
    assert "organism-smol:harmful-image" in smol and "organism-smol:anchor" not in smol
    assert held_out_hint("vlsafe:anchor") == "Evaluate on vlsafe:eval instead."
    assert "disjoint" in held_out_hint("mine.jsonl")


def _parsed(command: str, args: list[str]) -> dict[str, object]:
    """What the real command line parser makes of ``args`` (nothing is run)."""
    cmd = typer.main.get_command(app)
    for part in command.split():
        cmd = cmd.commands[part]  # type: ignore[attr-defined]
    with cmd.make_context(command, args) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("command", ["eval", "tune"])
def test_eval_and_tune_take_both_spellings_of_the_grid_flags(command: str) -> None:
    singular = ["--operator", "add,mars", "--alpha", "0.5,1", "--estimator", "pc1"]
    plural_args = [a + "s" if a.startswith("--") else a for a in singular]
    one = _parsed(command, ["-o", "out", *singular])
    many = _parsed(command, ["-o", "out", *plural_args])
    assert one == many
    values = {k: v for k, v in one.items() if v in ("add,mars", "0.5,1", "pc1")}
    assert len(values) == 3, one  # every flag reached its option, in both spellings


def test_a_bad_value_reads_the_same_under_either_spelling(tmp_path: Path) -> None:
    outputs = []
    for flag in ("--operator", "--operators"):
        result = CliRunner().invoke(
            app,
            [
                "tune",
                "organism",
                flag,
                "nope",
                "--anchors",
                "organism:anchor",
                "-o",
                str(tmp_path / "t"),
            ],
        )
        assert result.exit_code == 1
        (line,) = _error_lines(result.output)
        outputs.append(line)
    assert outputs[0] == outputs[1] and "nope" in outputs[0]


def test_gap_names_the_measured_layers_and_keeps_the_old_flag() -> None:
    assert _parsed("gap", ["--measure-layers", "1:3"])["layers"] == "1:3"
    assert _parsed("gap", ["--layers", "1:3"])["layers"] == "1:3"
    assert _parsed("gap", ["--steer-layers", "2"])["steer_layers"] == "2"
    cmd = typer.main.get_command(app).commands["gap"]  # type: ignore[attr-defined]
    (param,) = [p for p in cmd.params if p.name == "layers"]
    assert param.opts[0] == "--measure-layers" and "MEASURE" in (param.help or "")


@pytest.mark.parametrize("name", ["tiny", "organism", "smol", "organism-smol"])
def test_recipe_and_organism_take_the_same_names(name: str) -> None:
    recipe = parse_recipe(name)
    assert recipe.value in name or ORGANISM_OF[recipe] == name
    assert ORGANISM_OF[recipe] in MODELS


def test_an_unknown_recipe_is_one_error_line_naming_both_spellings() -> None:
    result = CliRunner().invoke(app, ["organism", "eval", "--recipe", "smoll"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = _error_lines(result.output)
    assert "'smoll'" in line and "smol (= organism-smol)" in line and "tiny (= organism)" in line


def test_demo_organism_takes_a_recipe_name(tmp_path: Path) -> None:
    taken = tmp_path / "file"
    taken.write_text("x")
    # the same organism under its two names: no disagreement; the demo stops at the output check
    agree = CliRunner().invoke(
        app, ["demo", "organism-smol", "--organism", "smol", "-o", str(taken)]
    )
    (line,) = _error_lines(agree.output)
    assert "disagree" not in line and str(taken) in line
    clash = CliRunner().invoke(app, ["demo", "organism", "--organism", "smol", "-o", str(taken)])
    (line,) = _error_lines(clash.output)
    assert "disagree" in line


def test_model_argument_help_names_every_bundled_model() -> None:
    result = CliRunner().invoke(app, ["generate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "organism-smol" in result.output and MODELS.names() == ["organism", "organism-smol"]


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: the other server that holds the port."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"busy"})


def test_serve_on_a_busy_port_is_one_error_line_before_anything_loads() -> None:
    with running_server(_hello) as base:  # a real server on 127.0.0.1 holds the port
        port = int(base.rsplit(":", 1)[1])
        assert httpx.get(base).text == "busy"
        started = time.monotonic()
        result = CliRunner().invoke(app, ["serve", "organism", "--port", str(port)])
        elapsed = time.monotonic() - started
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "serving" not in result.output  # nothing claims to serve
    (line,) = _error_lines(result.output)
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line
    suggested = int(line.rsplit("--port ", 1)[1])
    assert suggested != port and suggested > 0
    assert elapsed < 5, "refused before the model was loaded"


def test_serve_refuses_a_host_that_is_not_this_machine() -> None:
    result = CliRunner().invoke(app, ["serve", "organism", "--host", "192.0.2.1", "--port", "8765"])
    assert result.exit_code == 1
    (line,) = _error_lines(result.output)
    assert "192.0.2.1:8765" in line and "--host" in line


def test_ctrl_c_during_eval_says_the_run_folder_resumes(tmp_path: Path) -> None:
    """The real command in its own process, interrupted (SIGINT) once its first rows are on
    disk: exit 130 and one line naming the run folder and how to resume."""
    run = tmp_path / "run"
    # a shell's background job (nohup ... &) starts its children with SIGINT ignored, and Python
    # then never turns SIGINT into KeyboardInterrupt: the child restores Python's handler first
    restore = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'cmrm'; runpy.run_module('cmrm', run_name='__main__')"
    )
    command = [sys.executable, "-c", restore, "eval", "organism", "--bench"]
    command += ["organism:harmful-image", "--method", "none", "--limit", "64", "-o", str(run)]
    command += ["--batch-size", "1", "--max-new-tokens", "4"]  # the first row is soon on disk
    env = {**os.environ, "PYTHONPATH": str(Path(cmrm.__file__).parent.parent)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        rows = run / "generations.jsonl"
        deadline = time.monotonic() + 120
        while not (rows.is_file() and rows.stat().st_size) and process.poll() is None:
            assert time.monotonic() < deadline, "no row written"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("interrupted:")]
    expected = f"interrupted: the run folder {run} keeps what is finished; re-run the same "
    assert lines == [expected + "command to resume it"], err
    assert "Traceback" not in err
