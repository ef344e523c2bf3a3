"""``cmrm organism``: train the model organism, or show how degraded it is."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors

organism_app = typer.Typer(
    no_args_is_help=True,
    help="The bundled model organism: a tiny LLaVA whose safety degrades under images.",
)
app.add_typer(organism_app, name="organism")


@organism_app.command("train")
@cli_errors
def train(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write the organism to.")
    ],
    seed: Annotated[int, typer.Option(help="Seed of every random draw in the recipe.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A miniature run in seconds (for tests, not a model).")
    ] = False,
) -> None:
    """Train an organism from scratch (the shipped one: seed 0, about 7 minutes on one CPU thread)."""
    from cmrm.checks import check_output_dir
    from cmrm.organism.loading import save_organism
    from cmrm.organism.train import QUICK, TrainConfig, train_organism

    check_output_dir(output, "organism folder")
    cfg = dataclasses.replace(QUICK if quick else TrainConfig(), seed=seed)
    model, processor = train_organism(cfg, show_progress=True)
    recipe = {"config": dataclasses.asdict(cfg), "quick": quick}
    save_organism(model, processor, output, recipe=recipe)
    typer.echo(str(output))


@organism_app.command("eval")
@cli_errors
def evaluate(
    path: Annotated[
        Path | None, typer.Argument(help="A trained organism directory (default: the shipped one).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N items of each suite.")
    ] = None,
) -> None:
    """Print the degradation table on the held-out suites (organism judge, greedy decoding)."""
    from cmrm.organism import degradation_table, format_table, load_organism

    model, processor = load_organism(path)
    typer.echo(format_table(degradation_table(model, processor, limit=limit, show_progress=True)))
