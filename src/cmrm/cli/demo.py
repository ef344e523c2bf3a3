"""``cmrm demo``: the whole pipeline on the bundled model organism."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from err


@app.command()
@cli_errors
def demo(
    model: Annotated[
        str,
        typer.Argument(help="'organism' (bundled) or a directory from `cmrm organism train`."),
    ] = "organism",
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path(
        "cmrm-demo"
    ),
    alphas: Annotated[str, typer.Option(help="Comma-separated alphas.")] = "0.02,0.05,0.1,0.25,1.0",
    positions: Annotated[str, typer.Option(help="Comma-separated: last, text, all.")] = "last,all",
    estimator: Annotated[str, typer.Option(help="Dataset-level estimator: mean or pc1.")] = "mean",
    limit: Annotated[int, typer.Option(min=1, help="Items per held-out suite.")] = 100,
    anchors: Annotated[int, typer.Option(min=1, help="Anchor items for calibration.")] = 200,
    gap: Annotated[bool, typer.Option(help="Run the representation-gap analysis.")] = True,
) -> None:
    """Show the gap, calibrate, evaluate none/dataset/sample CMRM, print the table, write a report."""
    from ..checks import check_output_dir
    from ..demo import DemoConfig, run_demo
    from ..demo.render import table

    check_output_dir(output, "demo output folder")
    config = DemoConfig(
        out_dir=output,
        model=model,
        alphas=_floats(alphas),
        positions=tuple(p.strip() for p in positions.split(",") if p.strip()),
        estimator=estimator,
        limit=limit,
        anchors=anchors,
        gap=gap,
    )
    result = run_demo(config, show_progress=True)
    typer.echo(table(result.records))
    selection = result.selection
    if selection.best is not None:
        state = "met" if selection.met else "not met"
        cut = "-" if selection.relative_cut is None else f"{100 * selection.relative_cut:.1f}%"
        typer.echo(
            f"\nbest: {selection.best.label} (compliance cut {cut}); target {state}: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in selection.checks.items())
        )
    typer.echo(f"\nwrote {output}/summary.json, {output}/report.md and figures")
