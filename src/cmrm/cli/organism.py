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
) -> None:
    """Print the degradation table on the held-out suites (organism judge, greedy decoding).

    Runs `cmrm eval`'s runner (method none, judge organism) on every evaluation suite.
    """
    import tempfile

    from cmrm.demo.degradation import format_table, measure
    from cmrm.models import load_bundled

    vlm = load_bundled("organism", path)
    if output is None:
        with tempfile.TemporaryDirectory(prefix="cmrm-organism-eval-") as tmp:
            rows = measure(vlm, tmp, limit=limit, show_progress=True)
    else:
        from cmrm.report import write_report

        rows = measure(vlm, output, limit=limit, show_progress=True)
        write_report(output)
    typer.echo(format_table(rows))
