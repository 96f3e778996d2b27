"""Does the integer-only program classify as the fake-quantized model does?

    python -m codesign.integer_check                       # W8A8 and W4A8P0.5, poly and shift kernels
    python -m codesign.integer_check --precision W6A8 --kernels shift --images 500 --json

On the shipped default model and its test split (the first ``--images`` images; all 2,000 by
default): the FP32 top-1, then per precision and kernel choice (``nonlinear: int``, the
evaluator's calibration) the top-1 of the fake-quantized model, the top-1 of the same design run
integer-only (:func:`codesign.quant.integer_model`: int64 codes, dyadic rescales, float only at
the input and the logits), how many images get the same top-1 class in both, the largest logit
difference, and the integer program's seconds (:func:`codesign.integer_top1.compare_integer`, the
comparison ``codesign.report --integer`` and the export share). ``--kernels`` takes ``poly``, ``shift`` or
``softmax=shift,gelu=poly,...`` per choice; ``--softmax log2`` quantizes the softmax output in
the log domain instead of uniformly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from codesign.cli.nonlinear_check import parse_kernels
from codesign.integer_top1 import compare_integer, split_logits, top1_pct
from codesign.models import load_default
from codesign.proxy import Evaluator
from codesign.quant import QuantConfig, check_integer_config, parse_precision
from codesign.quant._config import SOFTMAX_SCHEMES
from hwmodel.base.cli import command_parser, positive_int, run_main

COMMAND = "codesign.integer_check"
DEFAULT_PRECISIONS = ("W8A8", "W4A8P0.5")
DEFAULT_KERNELS = ("poly", "shift")


def run_check(
    precisions: Sequence[str],
    kernel_choices: Sequence[dict[str, str]],
    softmax: str = "uniform",
    n_images: int | None = None,
    batch: int = 250,
) -> dict[str, Any]:
    """The figures of the module docstring, one row per (precision, kernel choice)."""
    configs = [
        QuantConfig.uniform(p, softmax=softmax, nonlinear="int", kernels=k)
        for p in precisions
        for k in kernel_choices
    ]
    for cfg in configs:
        check_integer_config(cfg)  # bad input fails before the model loads
    model, splits = load_default()
    ev = Evaluator(model, splits)
    fp32, _ = split_logits(model, splits.test, n_images, batch)
    labels = splits.test.labels[: fp32.shape[0]]
    rows = [
        {
            "precision": cfg.default.to_string(),
            "kernels": dict(cfg.kernels),
            **asdict(compare_integer(ev.quantized(cfg), splits.test, n_images, batch)),
        }
        for cfg in configs
    ]
    return {
        "images": int(labels.shape[0]),
        "softmax": softmax,
        "fp32_top1": top1_pct(fp32, labels),
        "rows": rows,
    }


def _kernels_label(kernels: dict[str, str]) -> str:
    kinds = set(kernels.values())
    return kinds.pop() if len(kinds) == 1 else ",".join(f"{k}={v}" for k, v in kernels.items())


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--precision", nargs="+", default=list(DEFAULT_PRECISIONS), help="uniform precisions")
    p.add_argument(
        "--kernels",
        nargs="+",
        default=list(DEFAULT_KERNELS),
        help="kernel choices: poly, shift or softmax=shift,gelu=poly,... (one row each)",
    )
    p.add_argument("--softmax", choices=SOFTMAX_SCHEMES, default="uniform", help="softmax output quantizer")
    p.add_argument("--images", type=positive_int, help="the first N test images (default: all)")
    p.add_argument("--batch", type=positive_int, default=250)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    for text in args.precision:
        parse_precision(text)
    choices = [parse_kernels(k) for k in args.kernels]
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    res = run_check(args.precision, choices, args.softmax, args.images, args.batch)
    res["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"default model, {res['images']} test images, softmax {res['softmax']}: "
        f"FP32 top-1 {res['fp32_top1']:.2f} %"
    )
    head = (
        "precision",
        "kernels",
        "fake-quant",
        "integer",
        "int − fq",
        "same top-1",
        "max |Δlogit|",
        "integer s",
    )
    table = [head]
    for r in res["rows"]:
        table.append(
            (
                r["precision"],
                _kernels_label(r["kernels"]),
                f"{r['fake_quant_top1']:.2f} %",
                f"{r['integer_top1']:.2f} %",
                f"{r['integer_minus_fake_quant_pt']:+.2f} pt",
                f"{r['same_top1']} / {res['images']}",
                f"{r['max_abs_logit_diff']:.4f}",
                f"{r['integer_s']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"wall time {res['wall_s']:.1f} s")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
