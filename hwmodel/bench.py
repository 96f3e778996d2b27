"""``python -m hwmodel.bench [--json]``: design evaluations per second of the analytic model.

Draws random designs of DeiT-B on ZCU102 (array shape, PoT columns, clock, per-layer bits, PoT
ratio and tiles: what a search trial changes), then times :func:`hwmodel.model.evaluation.evaluate` on them
in this process on one core.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Sequence

from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.base.cli import OneLineParser, positive_float, positive_int, run_main
from hwmodel.model.evaluation import evaluate
from hwmodel.target.device import load_device
from hwmodel.target.workload import Workload, workload_from_name


def random_design(workload: Workload, rng: random.Random, max_freq_mhz: float) -> AcceleratorConfig:
    rows = rng.choice((8, 16, 32, 64))
    cols = rng.choice((8, 16, 32, 64, 128))
    pot_cols = rng.choice((0, cols // 4, cols // 2))
    packing = rng.choice((1, 2, 4))
    layers = {}
    for op in workload.gemms:
        ratio = rng.choice((0.0, 0.25, 0.5)) if op.weight_operand and pot_cols else 0.0
        layers[op.name] = LayerHw(
            weight_bits=rng.choice((4, 6, 8)),
            act_bits=rng.choice((6, 8)),
            pot_ratio=ratio if ratio < 1 else 0.0,
            tm=rng.choice((64, 128, 256)),
            tn=cols * rng.choice((1, 2, 4)),
            tk=rows * rng.choice((4, 8, 16, 64)),
        )
    freq = rng.choice((100.0, 150.0, 200.0, min(250.0, max_freq_mhz)))
    return AcceleratorConfig(
        freq_mhz=freq, rows=rows, cols=cols, pot_cols=pot_cols, packing=packing, layers=layers
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m hwmodel.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_base_patch16_224")
    parser.add_argument("--device", default="zcu102")
    parser.add_argument("--designs", type=positive_int, default=200, help="distinct random designs")
    parser.add_argument("--seconds", type=positive_float, default=3.0, help="time to measure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    workload = workload_from_name(args.model)
    device = load_device(args.device)
    rng = random.Random(args.seed)
    designs = [random_design(workload, rng, device.max_freq_mhz) for _ in range(args.designs)]
    evaluate(workload, designs[0], device)  # warm caches (coefficients, workload arrays)
    n = 0
    feasible = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        report = evaluate(workload, designs[n % len(designs)], device)
        feasible += report.feasible
        n += 1
    elapsed = time.perf_counter() - start
    result = {
        "model": args.model,
        "device": device.name,
        "evaluations": n,
        "seconds": elapsed,
        "evals_per_s": n / elapsed,
        "feasible_fraction": feasible / n,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{n} evaluations of {args.model} on {device.name} in {elapsed:.2f} s")
        print(f"evals_per_s {result['evals_per_s']:.0f} (feasible {result['feasible_fraction']:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog="hwmodel.bench"))
