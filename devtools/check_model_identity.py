"""``python -m devtools.check_model_identity OUT.json [--seeds N]``: every field of the analytic
model's reports on a fixed set of designs, as canonical JSON (floats by ``repr``), so two
versions of :func:`hwmodel.model.evaluation.evaluate` can be compared byte for byte::

    git stash; python -m devtools.check_model_identity /tmp/before.json; git stash pop
    python -m devtools.check_model_identity /tmp/after.json && cmp /tmp/before.json /tmp/after.json

Per workload/device pair (DeiT-B and DeiT-S on ZCU102, DeiT-Tiny on ZCU104, the default MNIST
ViT on ZCU102) the designs are: the documented default design (:func:`hwmodel.model.default.default_config`)
and a few it refuses (one per input check); per seed, :func:`hwmodel.bench.random_design`, a
variant of it (some layers left to the config's default, a fixed ``acc_bits`` on odd seeds,
other non-linear lanes) and a design off the benchmark's grid (:func:`wild`). Each is
evaluated with and without the per-layer table, all in one process (so caches shared between
workloads and designs are exercised); a design the model refuses records its error message.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.base.errors import UserError
from hwmodel.bench import random_design
from hwmodel.model.default import default_config
from hwmodel.model.evaluation import evaluate
from hwmodel.target.device import Device, load_device
from hwmodel.target.workload import Workload, workload_from_name

#: (workload name as workload_from_name takes it, device)
PAIRS: tuple[tuple[str, str], ...] = (
    ("deit_base_patch16_224", "zcu102"),
    ("deit_small_patch16_224", "zcu102"),
    ("deit_tiny_patch16_224", "zcu104"),
    ("default_vit_mnist", "zcu102"),
)


def canonical(value: Any) -> Any:
    """JSON-ready ``value`` with every float as its ``repr`` (exact, no formatting choices)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    raise TypeError(f"unexpected {type(value).__name__} in a report: {value!r}")


def variant(config: AcceleratorConfig, rng: random.Random, seed: int) -> AcceleratorConfig:
    """``config`` with about a third of its layers left to the default, a fixed accumulator on odd
    seeds and another number of non-linear lanes."""
    layers = {name: hw for name, hw in config.layers.items() if rng.random() > 1 / 3}
    return replace(
        config,
        layers=layers,
        acc_bits=rng.choice((24, 32, 40)) if seed % 2 else None,
        nonlinear_lanes=rng.choice((1, 4, 8, 16, 32)),
    )


def wild(workload: Workload, rng: random.Random) -> AcceleratorConfig:
    """A design off the benchmark's grid (the ranges of ``tests/test_model.py``: odd array
    sides and tiles, 2…16-bit layers, PoT ratios up to 1, a wrapping accumulator now and then)."""
    rows, cols = rng.choice((1, 2, 3, 4, 8, 16, 24, 32, 64)), rng.choice((2, 3, 4, 8, 16, 32, 64))
    pot_cols = rng.randint(0, cols - 1)
    layers = {
        op.name: LayerHw(
            weight_bits=rng.choice((2, 3, 4, 6, 8, 16)),
            act_bits=rng.choice((2, 3, 4, 6, 8, 16)),
            pot_ratio=rng.choice((0.0, 0.25, 0.5, 0.75, 1.0)) if op.weight_operand and pot_cols else 0.0,
            tm=rng.randint(1, 300),
            tn=rng.randint(1, 800),
            tk=rng.randint(1, 4000),
        )
        for op in workload.gemms
    }
    return AcceleratorConfig(
        freq_mhz=rng.choice((50.0, 100.0, 200.0, 300.0)),
        rows=rows,
        cols=cols,
        pot_cols=pot_cols,
        acc_bits=rng.choice((None, None, 20, 48)),
        packing=rng.choice((1, 2, 4)),
        nonlinear_lanes=rng.choice((1, 3, 16, 64)),
        layers=layers,
    )


def refused(workload: Workload, config: AcceleratorConfig) -> list[tuple[str, AcceleratorConfig]]:
    """Designs the model refuses, one per check (their messages are part of its output)."""
    names = workload.layer_names()
    act_act = next(op.name for op in workload.gemms if not op.weight_operand)
    return [
        ("bad-unknown-layer", replace(config, layers={**config.layers, "nope": config.default})),
        (
            "bad-pot-act-act",
            replace(config, pot_cols=4, layers={act_act: replace(config.default, pot_ratio=0.5)}),
        ),
        (
            "bad-pot-no-cols",
            replace(config, pot_cols=0, layers={names[0]: replace(config.default, pot_ratio=0.5)}),
        ),
        ("bad-all-pot", replace(config, pot_cols=config.cols, layers={})),
        ("bad-wide", replace(config, layers={names[-1]: replace(config.default, weight_bits=32)})),
    ]


def report_record(workload: Workload, config: AcceleratorConfig, device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {"config": canonical(config.to_dict())}
    for detail in (False, True):
        key = "detail" if detail else "plain"
        try:
            rep = evaluate(workload, config, device, detail=detail)
        except UserError as exc:
            out[key] = {"error": str(exc)}
            continue
        out[key] = {
            "fields": canonical(asdict(rep)),
            "to_dict": canonical(rep.to_dict()),
            "feasible": rep.feasible,
            "latency_ms": repr(rep.latency_ms),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.check_model_identity")
    parser.add_argument("out", help="JSON file to write")
    parser.add_argument("--seeds", type=int, default=100, help="random designs per workload (seeds 0..N-1)")
    args = parser.parse_args(argv)
    records: dict[str, Any] = {}
    for model, dev in PAIRS:
        workload = workload_from_name(model)
        device = load_device(dev)
        base = default_config(workload, device)
        designs: list[tuple[str, AcceleratorConfig]] = [("default", base), *refused(workload, base)]
        for seed in range(args.seeds):
            rng = random.Random(seed)
            cfg = random_design(workload, rng, device.max_freq_mhz)
            designs.append((f"seed{seed}", cfg))
            designs.append((f"seed{seed}-variant", variant(cfg, rng, seed)))
            designs.append((f"seed{seed}-wild", wild(workload, rng)))
        records[f"{model}@{dev}"] = {name: report_record(workload, cfg, device) for name, cfg in designs}
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=1, sort_keys=True)
        fh.write("\n")
    n = sum(len(v) for v in records.values())
    print(f"{n} designs × 2 reports → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
