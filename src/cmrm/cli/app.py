"""The typer application, shared options and the error wrapper every command uses.

Commands live in sibling modules (one per command group) and register themselves on ``app``;
``cmrm.cli.__init__`` imports them. Results go to stdout, logs and progress bars to stderr.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from ..base.errors import CmrmError, DataError

if TYPE_CHECKING:
    from ..data.items import Item

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Cross-Modality Representation Manipulation: analyse and close the image-text "
    "representation gap that degrades the safety alignment of vision-language models.",
)

P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print expected errors as ``Error: <message>`` on stderr and exit 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CmrmError as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(code=1) from err

    return wrapper


@contextmanager
def resumable(output: Path, *, say: bool = True) -> Iterator[None]:
    """Ctrl-C inside the block ends the command with exit code 130 and one line on stderr: the
    run folder keeps what is finished, and the same command resumes it (``say=False``: silent,
    e.g. on ranks other than the main one)."""
    try:
        yield
    except KeyboardInterrupt:
        if say:
            typer.echo(err=True)  # past a progress bar's line
            typer.echo(
                f"interrupted: the run folder {output} keeps what is finished; re-run the same "
                "command to resume it",
                err=True,
            )
        raise typer.Exit(code=130) from None


@app.callback()
def main(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="-v for INFO logs, -vv for DEBUG.")
    ] = 0,
) -> None:
    """Configure logging once for every command."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if verbose < 2:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()


def load_data(spec: str, *, root: Path | None = None, limit: int | None = None) -> list[Item]:
    """Items of a benchmark (``NAME[:split]``) or a generic JSONL file, checked: an empty set,
    an empty prompt or a missing image file is an error."""
    from ..data import load_items
    from ..models.checks import check_items

    items = load_items(spec, root=root, limit=limit)
    if not items:
        raise DataError(f"{spec!r} holds no items; check the file or the benchmark's --root")
    check_items(items, spec)
    return items
