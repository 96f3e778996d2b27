"""How much accuracy do the integer non-linear operators cost?

    python -m codesign.nonlinear_check            # default model, W8A8
    python -m codesign.nonlinear_check --precision W6A8 --json

Measures the top-1 on the test split of the FP32 model, of the fake-quantized model at
``--precision`` with float softmax / LayerNorm / GELU, and of the same model with the integer
kernels of :mod:`hwmodel.arch.intops` (``nonlinear: int``), plus what both proxies (``linkl``, the
linearised KL the search uses, and ``kl``, one forward pass) say about the two.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import torch

from codesign.models import load_default
from codesign.proxy import Evaluator
from codesign.quant import QuantConfig
from hwmodel.base.cli import command_parser, run_main

COMMAND = "codesign.nonlinear_check"


def run_check(precision: str, proxy_images: int) -> dict[str, Any]:
    model, splits = load_default()
    ev = Evaluator(model, splits, proxy_kind="linkl", proxy_images=proxy_images)
    out: dict[str, Any] = {"precision": precision, "fp32_accuracy": ev.fp32_accuracy()}
    for mode in ("float", "int"):
        cfg = QuantConfig.uniform(precision, nonlinear=mode)
        out[f"{mode}_accuracy"] = ev.accuracy(cfg)
        out[f"{mode}_linkl"] = ev.linear().score(cfg)
        out[f"{mode}_kl"] = ev.proxy_scores(cfg).kl
    out["int_minus_fp32_pt"] = out["int_accuracy"] - out["fp32_accuracy"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--precision", default="W8A8", help="uniform precision, e.g. W8A8")
    p.add_argument("--proxy-images", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    res = run_check(args.precision, args.proxy_images)
    res["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    rows = [("FP32", f"{res['fp32_accuracy']:.2f} %")]
    for mode in ("float", "int"):
        rows.append(
            (
                f"{args.precision}, {mode} non-linear ops",
                f"{res[f'{mode}_accuracy']:.2f} %  (linkl {res[f'{mode}_linkl']:.5f}, "
                f"kl {res[f'{mode}_kl']:.5f})",
            )
        )
    rows += [("int − FP32", f"{res['int_minus_fp32_pt']:+.2f} pt"), ("wall time", f"{res['wall_s']:.1f} s")]
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        print(f"{key:<{width}}{value}")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
