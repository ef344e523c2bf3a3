"""``python -m cmrm``: the command line, also as the target of ``torchrun -m cmrm`` and
``accelerate launch -m cmrm`` (a rank of a multi-process job ends through
:func:`cmrm.base.distributed.exit_process`)."""

from .base import distributed
from .cli import app

try:
    app(prog_name="cmrm")
except SystemExit as done:
    distributed.exit_process(done.code)
