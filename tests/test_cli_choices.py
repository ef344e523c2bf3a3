"""Every ``--help`` that lists names lists every name the option accepts, read from the registry
(or the tuple) that checks it: a new operator, judge or estimator needs no help string edited.
Checked on the help strings of the real commands (click's parameters, before rich wraps them)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import click
import pytest
import typer.main

import cmrm.cli  # noqa: F401  (registers every command)
from cmrm.calibration.names import CONTRASTS, ESTIMATORS, READ_POSITIONS
from cmrm.cli.app import app
from cmrm.cli.export import EXPECTED, FORMATS, MODES
from cmrm.cli.organism import ORGANISM_OF
from cmrm.data.images import NullImage
from cmrm.data.splits import SPLITS
from cmrm.evaluation.presets import PRESETS
from cmrm.generation.names import BASELINES, METHOD_NAMES
from cmrm.interventions.names import SOURCES
from cmrm.interventions.operators import operator_names
from cmrm.judges.registry import JUDGES
from cmrm.models.names import POSITIONS
from cmrm.models.registry import MODELS
from cmrm.tuning.options import SEQUENTIAL

NULL_KINDS = [NullImage.parse(spec).kind for spec in ("blank", "noise", "mean")]

ACCEPTED: dict[str, Sequence[str]] = {
    "--operator": operator_names(),
    "--operators": operator_names(),
    "--estimator": ESTIMATORS,
    "--estimators": ESTIMATORS,
    "--contrast": CONTRASTS,
    "--contrasts": CONTRASTS,
    "--judge": JUDGES.names(),
    "--null": NULL_KINDS,
    "--format": FORMATS,
    "--method": METHOD_NAMES,
    "--positions": POSITIONS,
    "--read": READ_POSITIONS,
    "--split": SPLITS,
    "--sources": SOURCES,
    "--preset": PRESETS.names(),
    "--mode": MODES,
    "--expect": EXPECTED,
    "--recipe": [*(r.value for r in ORGANISM_OF), *ORGANISM_OF.values()],
    "--organism": MODELS.names(),
    "model": MODELS.names(),
}
"""Option (or argument) name -> every name it accepts."""


def commands(
    cmd: click.Command | None = None, path: str = ""
) -> Iterator[tuple[str, click.Command]]:
    cmd = cmd or typer.main.get_command(app)
    subs = getattr(cmd, "commands", {})
    if not subs:
        yield path, cmd
    for name, sub in subs.items():
        yield from commands(sub, f"{path} {name}".strip())


def mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


CHECKED = [
    (path, param, key)
    for path, cmd in commands()
    for param in cmd.params
    for key in [next((o for o in [*param.opts, param.name or ""] if o in ACCEPTED), None)]
    if key is not None and not getattr(param, "is_flag", False)
]


def test_the_checked_options_cover_every_command_that_takes_a_name() -> None:
    checked = {(path, key) for path, _, key in CHECKED}
    for path in ("eval", "generate", "gap", "serve"):
        assert (path, "--operator") in checked
    assert ("tune", "--operators") in checked and ("calibrate", "--estimator") in checked
    assert ("export", "--format") in checked and ("demo", "--organism") in checked
    assert ("inspect", "model") in checked and ("organism eval", "--recipe") in checked
    assert len(CHECKED) > 40


@pytest.mark.parametrize(("path", "param", "key"), CHECKED, ids=lambda v: getattr(v, "name", v))
def test_help_lists_every_accepted_name(path: str, param: click.Parameter, key: str) -> None:
    text = getattr(param, "help", None) or ""
    missing = [n for n in ACCEPTED[key] if not mentions(text, n)]
    assert not missing, f"`cmrm {path} --help`, {key}: {missing} missing from {text!r}"


def test_tune_sequential_lists_its_choices() -> None:
    (param,) = [
        p for path, c in commands() if path == "tune" for p in c.params if p.name == "sequential"
    ]
    assert all(mentions(param.help or "", choice) for choice in SEQUENTIAL)


LISTS = {
    "operator": operator_names(),
    "judge": [n for n in JUDGES.names() if n not in MODELS.names()],  # not the organisms' names
    "baseline": [n for n in BASELINES if n != "none"],  # "none", "dataset": ordinary words too
}


@pytest.mark.parametrize("kind", LISTS)
def test_no_help_lists_some_names_and_omits_others(kind: str) -> None:
    """A help string naming two or more operators (judges, baselines) names them all: no stale
    hand-written list anywhere, under any option."""
    names = LISTS[kind]
    for path, cmd in commands():
        for param in cmd.params:
            text = getattr(param, "help", None) or ""
            named = [n for n in names if mentions(text, n)]
            if len(named) >= 2:
                assert set(named) == set(names), f"cmrm {path} {param.opts}: {text!r}"
