"""``cmrm bench``: list the benchmark loaders, show what one yields, export one to disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cmrm.base.errors import DataError
from cmrm.data import list_benchmarks, load_items, parse_spec
from cmrm.data.images import load_image
from cmrm.data.items import Item

from .app import app, cli_errors
from .choices import SPLITS_LISTED

bench_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmark loaders: list them, print a benchmark's items, or export one to disk.",
)
app.add_typer(bench_app, name="bench")

NameArg = Annotated[
    str, typer.Argument(help="benchmark name (or alias), NAME:SPLIT, or a .jsonl file")
]
RootOpt = Annotated[
    Path | None, typer.Option(help="folder with the upstream layout (default: download)")
]
SplitOpt = Annotated[str | None, typer.Option(help=f"{SPLITS_LISTED} (default: all items)")]
LimitOpt = Annotated[int | None, typer.Option(min=0, help="keep the first N items")]
SeedOpt = Annotated[int, typer.Option(help="seed of the anchor/eval split")]
OptionOpt = Annotated[
    list[str] | None, typer.Option("--option", help="loader option KEY=VALUE; repeat")
]


@bench_app.command("list")
@cli_errors
def list_command() -> None:
    """Name every benchmark with its kind, source, licence and aliases (tab-separated)."""
    for bench in list_benchmarks():
        aliases = ",".join(bench.aliases)
        typer.echo(f"{bench.name}\t{bench.kind}\t{bench.source}\t{bench.licence}\t{aliases}")


def _load(
    name: str, root: Path | None, split: str | None, limit: int | None, seed: int, pairs: list[str]
) -> list[Item]:
    options = parse_loader_options(name, pairs)
    return load_items(name, root=root, split=split, limit=limit, seed=seed, **options)


@bench_app.command("show")
@cli_errors
def show_command(
    name: NameArg,
    root: RootOpt = None,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    option: OptionOpt = None,
    check_images: Annotated[
        bool, typer.Option("--check-images", help="fail (exit 1) on the first missing/bad image")
    ] = False,
) -> None:
    """Print the item count on stderr and the items as JSON lines on stdout.

    In-memory images (the organism's) print as a placeholder; use `cmrm bench export` for a
    file that other commands can read back.
    """
    items = _load(name, root, split, limit, seed, option or [])
    if check_images:
        _check_images(items)
    typer.echo(f"{len(items)} items", err=True)
    for item in items:
        typer.echo(json.dumps(item.to_json(), ensure_ascii=False))


@bench_app.command("export")
@cli_errors
def export_command(
    name: NameArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="folder to write NAME.jsonl and images/ into")
    ],
    root: RootOpt = None,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    option: OptionOpt = None,
) -> None:
    """Write a benchmark's items as a generic JSONL file with its images in OUTPUT/images/.

    The file reads back anywhere a benchmark is accepted: `--anchors`, `--bench`, `--data`.
    Prints the file's path on stdout.
    """
    from cmrm.data.items import write_jsonl
    from cmrm.models.checks import check_items, check_output_dir

    check_output_dir(output, "export folder")
    items = _load(name, root, split, limit, seed, option or [])
    if not items:
        raise DataError(f"{name!r} holds no items to export; check --root, --split and --limit")
    check_items(items, name)
    target = output / f"{_file_stem(name, split)}.jsonl"
    if target.exists() and not target.is_file():
        raise DataError(f"{target} exists and is not a file; pass another -o folder")
    write_jsonl(items, target)
    typer.echo(f"{len(items)} items", err=True)
    typer.echo(str(target))


def _file_stem(name: str, split: str | None) -> str:
    bench, path, spec_split = parse_spec(name)
    base = path.stem if path is not None else bench.name
    side = spec_split or split
    parts = [base] if side is None else [base, side]
    return "-".join(p.replace(":", "-").replace("/", "-") for p in parts)


def parse_loader_options(spec: str, pairs: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as strings (the loader types them by its declarations); a
    malformed pair names the benchmark's valid keys."""
    from cmrm.base.errors import ConfigError
    from cmrm.base.keyvalue import parse_assignments

    try:
        return dict(parse_assignments(pairs, "--option"))
    except ConfigError as err:
        bench = parse_spec(spec)[0]
        valid = ", ".join(sorted(bench.options)) or "none"
        raise DataError(f"{err}; valid keys for {bench.name}: {valid}") from err


def _check_images(items: list[Item]) -> None:
    for item in items:
        if item.image is not None:
            try:
                load_image(item.image)
            except DataError as err:
                raise DataError(f"item {item.id!r}: {err}") from err


__all__ = ["bench_app", "parse_loader_options"]
