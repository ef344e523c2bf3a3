"""How much of the scene an intervention erases: cross-validated linear probes of the image
questions' answers (shape colour, background colour) from the decoder's last-prompt states, per
layer, without and with the intervention.

    python scripts/scene_probe.py organism-smol --shift TUNE_DIR [--operator O --alpha A
        --positions P --layers L] [--bench organism-smol:val-image-qa] [--limit 150]
        [--every 5] [-o probe.json]

Without setting flags the shift's recommendation (``cmrm tune``) is probed, as ``cmrm eval`` does.
Validation image questions by default: the probe is evidence for choosing, not a held-out result.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cmrm.analysis.probe import scene_probes
from cmrm.calibration.shift import ShiftVectors
from cmrm.data import load_items
from cmrm.interventions.build import InterventionOptions, build_intervention
from cmrm.models import load_bundled

logger = logging.getLogger("scene_probe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a bundled organism (organism, organism-smol)")
    parser.add_argument("--shift", type=Path, required=True)
    parser.add_argument("--operator")
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--positions")
    parser.add_argument("--layers")
    parser.add_argument("--bench", default="organism-smol:val-image-qa")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--every", type=int, default=5, help="probe every N-th layer")
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    vlm = load_bundled(args.model)
    shift = ShiftVectors.load(args.shift)
    options = InterventionOptions(
        shift=shift,
        alpha=args.alpha,
        operator=args.operator,
        positions=args.positions,
        layers=args.layers,
    )
    intervention = build_intervention(options)
    items = load_items(args.bench, limit=args.limit)
    layers = sorted({*range(0, vlm.num_layers, args.every), vlm.num_layers - 1})
    result = {"bench": args.bench, "layers": layers, "intervention": repr(intervention)}
    for name, iv in (("none", None), ("steered", intervention)):
        probes = scene_probes(vlm, items, layers, iv, show_progress=True)
        result[name] = [p.to_json() for p in probes]
    text = json.dumps(result, indent=2)
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")
    logger.info("%s", text)


if __name__ == "__main__":
    main()
