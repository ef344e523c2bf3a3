"""Wall time of ``cmrm calibrate --sequential`` against the independent estimate, in pairs.

Runs the real CLI (model load included) as a subprocess, independent and sequential back to back,
the order alternating from pair to pair, and reports per pair the ratio sequential / independent
of the wall time and of the child's CPU time (user + system, every thread), then the median and
the range over the pairs. A figure is printed after every pair, so a cut-short run still says
what it measured.

    python benchmarks/calibration_pairs.py --pairs 3 --limit 96
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(
    model: str, anchors: str, limit: int, sequential: bool, out: Path
) -> tuple[float, float]:
    """Wall and child CPU seconds of one ``cmrm calibrate`` run."""
    cmd = [sys.executable, "-m", "cmrm", "calibrate", model, "--anchors", anchors]
    cmd += ["--limit", str(limit), "-o", str(out)] + (["--sequential"] if sequential else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (range {min(values):.3f}-{max(values):.3f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organism-smol")
    parser.add_argument("--anchors", default="organism-smol:anchor")
    parser.add_argument("--limit", type=int, default=96)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    wall_ratios: list[float] = []
    cpu_ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            order = [False, True] if pair % 2 == 0 else [True, False]
            got: dict[bool, tuple[float, float]] = {}
            for sequential in order:
                got[sequential] = run_once(
                    args.model, args.anchors, args.limit, sequential, Path(tmp) / str(sequential)
                )
            (iw, ic), (sw, sc) = got[False], got[True]
            wall_ratios.append(sw / iw)
            cpu_ratios.append(sc / ic)
            first = "sequential" if order[0] else "independent"
            print(
                f"pair {pair + 1} ({first} first): independent {iw:.1f} s wall / {ic:.1f} s CPU, "
                f"sequential {sw:.1f} s wall / {sc:.1f} s CPU; ratio wall {sw / iw:.3f}, "
                f"CPU {sc / ic:.3f}",
                flush=True,
            )
            print(f"  so far: wall {spread(wall_ratios)}; CPU {spread(cpu_ratios)}", flush=True)


if __name__ == "__main__":
    main()
