"""``cmrm bench``: list the benchmark loaders and show what one yields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cmrm.data import list_benchmarks, load_items, parse_spec
from cmrm.errors import DataError
from cmrm.images import load_image
from cmrm.items import Item

from .app import app, cli_errors

bench_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmark loaders: list them, or print a benchmark's items as JSON lines.",
)
app.add_typer(bench_app, name="bench")


@bench_app.command("list")
@cli_errors
def list_command() -> None:
    """Name every benchmark with its kind, source and licence (tab-separated, on stdout)."""
    for bench in list_benchmarks():
        typer.echo(f"{bench.name}\t{bench.kind}\t{bench.source}\t{bench.licence}")


@bench_app.command("show")
@cli_errors
def show_command(
    name: Annotated[str, typer.Argument(help="benchmark name, NAME:SPLIT, or a .jsonl file")],
    root: Annotated[
        Path | None, typer.Option(help="folder with the upstream layout (default: download)")
    ] = None,
    split: Annotated[str | None, typer.Option(help="anchor or eval (default: all items)")] = None,
    limit: Annotated[int | None, typer.Option(help="keep the first N items")] = None,
    seed: Annotated[int, typer.Option(help="seed of the anchor/eval split")] = 0,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="loader option KEY=VALUE")
    ] = None,
    check_images: Annotated[
        bool, typer.Option("--check-images", help="fail (exit 1) on the first missing/bad image")
    ] = False,
) -> None:
    """Print the item count on stderr and the items as JSON lines on stdout."""
    options = _parse_options(name, option or [])
    items = load_items(name, root=root, split=split, limit=limit, seed=seed, **options)
    if check_images:
        _check_images(items)
    typer.echo(f"{len(items)} items", err=True)
    for item in items:
        typer.echo(json.dumps(item.to_json(), ensure_ascii=False))


def _parse_options(spec: str, pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            bench = parse_spec(spec)[0]
            valid = ", ".join(sorted(bench.options)) or "none"
            raise DataError(f"--option expects KEY=VALUE, got {pair!r}; valid keys: {valid}")
        options[key.strip()] = value
    return options


def _check_images(items: list[Item]) -> None:
    for item in items:
        if item.image is not None:
            try:
                load_image(item.image)
            except DataError as err:
                raise DataError(f"item {item.id!r}: {err}") from err


__all__ = ["bench_app"]
