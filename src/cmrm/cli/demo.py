"""``cmrm demo``: the whole pipeline on a bundled model organism."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors
from .choices import MODELS_LISTED, one_of
from .organism import ORGANISM_OF, parse_recipe


@app.command()
@cli_errors
def demo(
    model: Annotated[
        str | None,
        typer.Argument(
            help=f"A bundled organism ({MODELS_LISTED}) or a directory trained with its "
            "recipe (then say which with --organism)."
        ),
    ] = None,
    organism: Annotated[
        str | None,
        typer.Option(
            help=f"The organism: {one_of(list(ORGANISM_OF.values()))} (default: organism), or "
            f"its recipe's name as `cmrm organism --recipe` takes it: {one_of(list(ORGANISM_OF))}.",
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path(
        "cmrm-demo"
    ),
    limit: Annotated[
        int | None, typer.Option(min=1, help="Held-out items per suite (default: the profile's).")
    ] = None,
    budget: Annotated[
        int | None, typer.Option(min=1, help="At most N tune settings (default: the profile's).")
    ] = None,
    val_limit: Annotated[
        int | None, typer.Option(min=1, help="Validation items per suite (default: profile's).")
    ] = None,
    anchor_limit: Annotated[
        int | None, typer.Option(min=1, help="Anchors for calibration (default: profile's).")
    ] = None,
    gap: Annotated[bool, typer.Option(help="Run the representation-gap analysis.")] = True,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Smoke run: the profile's small suites and grid (not powered; the output says "
            "so). Default: the powered protocol (>= 64 validation items per suite, full "
            "held-out suites).",
        ),
    ] = False,
) -> None:
    """Calibrate, tune on validation suites, evaluate the baselines, the paper's CMRM and every
    operator's best setting on held-out suites; print the table and write a report."""
    from ..base.errors import ConfigError
    from ..demo import DemoConfig, run_demo
    from ..demo.profiles import PROFILES
    from ..demo.render import table
    from ..models.checks import check_output_dir

    if organism is not None:
        organism = ORGANISM_OF[parse_recipe(organism, "--organism")]
    weights: Path | None = None
    if model is not None and model not in PROFILES:
        weights = Path(model)
        if not weights.is_dir():
            raise ConfigError(
                f"{model!r} is neither a bundled organism ({', '.join(PROFILES)}) nor a folder "
                "of trained weights"
            )
    elif model is not None and organism is not None and model != organism:
        raise ConfigError(f"MODEL {model!r} and --organism {organism!r} disagree; give one")
    name = organism or (model if weights is None and model is not None else "organism")
    check_output_dir(output, "demo output folder")
    config = DemoConfig(
        out_dir=output,
        organism=name,
        weights=weights,
        limit=limit,
        budget=budget,
        val_limit=val_limit,
        anchor_limit=anchor_limit,
        gap=gap,
        quick=quick,
    )
    result = run_demo(config, show_progress=True)
    typer.echo(table(result))
    targets = result.targets
    if targets.checks:
        state = "met" if targets.met else "NOT met"
        what = (
            "recommended: no intervention, as no setting met the constraints on validation "
            f"(the closest, {result.tune.get('closest')}, is in the table)"
            if result.tune.get("abstained")
            else "recommended (chosen on validation)"
        )
        typer.echo(
            f"\n{what}: targets {state}: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in targets.checks.items())
        )
    typer.echo(f"\nwrote {output}/summary.json, {output}/report.md and figures")
