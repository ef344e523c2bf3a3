"""cmrm's command line: ``cmrm --help`` lists the commands."""

from . import bench as _bench  # noqa: F401  (registers `cmrm bench`)
from . import core as _core  # noqa: F401  (registers inspect, calibrate, generate)
from . import demo as _demo  # noqa: F401  (registers `cmrm demo`)
from . import evaluate as _evaluate  # noqa: F401  (registers eval, report)
from . import export as _export  # noqa: F401  (registers export, check-endpoint)
from . import gap as _gap  # noqa: F401  (registers `cmrm gap`)
from . import organism as _organism  # noqa: F401  (registers `cmrm organism`)
from . import serve as _serve  # noqa: F401  (registers `cmrm serve`)
from . import tune as _tune  # noqa: F401  (registers `cmrm tune`)
from .app import app

__all__ = ["app"]
