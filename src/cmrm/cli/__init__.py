"""cmrm's command line: ``cmrm --help`` lists the commands."""

from . import core as _core  # noqa: F401  (registers commands)
from .app import app

__all__ = ["app"]
