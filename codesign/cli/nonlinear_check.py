"""How much accuracy do the integer non-linear operators cost?

    python -m codesign.nonlinear_check            # default model, W8A8
    python -m codesign.nonlinear_check --precision W6A8 --json
    python -m codesign.nonlinear_check --kernels shift --finetune   # + the shift kernels, + QAT

Measures the top-1 on the test split of the FP32 model, of the fake-quantized model at
``--precision`` with float softmax / LayerNorm / GELU, and of the same model with the integer
kernels of :mod:`hwmodel.arch.intops` (``nonlinear: int``, the ``poly`` kernels), plus what both
proxies (``linkl``, the linearised KL the search uses, and ``kl``, one forward pass) say about the
two. ``--kernels`` adds the model with other kernel variants (``shift`` for every op kind, or
``softmax=shift,gelu=poly,...``), post-training; ``--finetune`` also fine-tunes that model
(:func:`codesign.qat.finetune`, its default settings unless ``--epochs`` / ``--lr``: the
training split, straight-through gradients through the integer kernels) and measures it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import torch

from codesign.errors import UserError
from codesign.models import load_default
from codesign.proxy import Evaluator
from codesign.qat import FinetuneSettings, finetune
from codesign.quant import VARIANTS, QuantConfig
from hwmodel.arch.config import NONLINEAR_KINDS, kernel_choice
from hwmodel.base.cli import command_parser, positive_float, positive_int, run_main

COMMAND = "codesign.nonlinear_check"


def parse_kernels(text: str) -> dict[str, str]:
    """``shift`` (every op kind) or ``softmax=shift,gelu=poly`` → kind → variant (checked)."""
    if "=" not in text:
        return kernel_choice(dict.fromkeys(NONLINEAR_KINDS, text.strip()), "--kernels")
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if any(len(p) != 2 for p in pairs):
        raise UserError(f"--kernels {text!r}: expected a variant ({', '.join(VARIANTS)}) or kind=variant,...")
    return kernel_choice({k.strip(): v.strip() for k, v in pairs}, "--kernels")


def run_check(
    precision: str,
    proxy_images: int,
    kernels: dict[str, str] | None = None,
    settings: FinetuneSettings | None = None,
) -> dict[str, Any]:
    """The figures of the module docstring (``kernels``: the extra variants measured; with
    ``settings``, that model also fine-tuned)."""
    model, splits = load_default()
    ev = Evaluator(model, splits, proxy_kind="linkl", proxy_images=proxy_images)
    out: dict[str, Any] = {"precision": precision, "fp32_accuracy": ev.fp32_accuracy()}
    for mode in ("float", "int"):
        cfg = QuantConfig.uniform(precision, nonlinear=mode)
        out[f"{mode}_accuracy"] = ev.accuracy(cfg)
        out[f"{mode}_linkl"] = ev.linear().score(cfg)
        out[f"{mode}_kl"] = ev.proxy_scores(cfg).kl
    out["int_minus_fp32_pt"] = out["int_accuracy"] - out["fp32_accuracy"]
    if kernels is not None:
        cfg = QuantConfig.uniform(precision, nonlinear="int", kernels=kernels)
        out["kernels"] = dict(cfg.kernels)
        out["kernels_accuracy"] = ev.accuracy(cfg)
        out["kernels_linkl"] = ev.linear().score(cfg)
        out["kernels_kl"] = ev.proxy_scores(cfg).kl
        out["kernels_minus_fp32_pt"] = out["kernels_accuracy"] - out["fp32_accuracy"]
        if settings is not None:
            result = finetune(ev.quantized(cfg), ev.model, ev.splits, settings)
            out["finetuned_accuracy"] = ev.top1(result.model)
            out["finetuned_minus_fp32_pt"] = out["finetuned_accuracy"] - out["fp32_accuracy"]
            out["finetune"] = {
                "epochs": settings.epochs,
                "steps": result.steps,
                "lr": settings.lr,
                "batch": settings.batch,
                "seed": settings.seed,
                "wall_s": round(result.wall_s, 1),
            }
    return out


def _accuracy_row(label: str, res: dict[str, Any], key: str) -> tuple[str, str]:
    """A table row: the top-1 of result ``key`` with its linkl and KL proxies."""
    return (
        label,
        f"{res[f'{key}_accuracy']:.2f} %  (linkl {res[f'{key}_linkl']:.5f}, kl {res[f'{key}_kl']:.5f})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--precision", default="W8A8", help="uniform precision, e.g. W8A8")
    p.add_argument("--proxy-images", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--kernels",
        help="also measure these kernel variants: shift (every kind) or softmax=shift,gelu=poly,...",
    )
    p.add_argument(
        "--finetune", action="store_true", help="also fine-tune the --kernels model (QAT) and measure it"
    )
    p.add_argument("--epochs", type=positive_int, default=FinetuneSettings.epochs, help="fine-tuning epochs")
    p.add_argument("--lr", type=positive_float, default=FinetuneSettings.lr, help="fine-tuning learning rate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.finetune and args.kernels is None:
        raise UserError("--finetune needs --kernels (the variants to fine-tune through)")
    kernels = parse_kernels(args.kernels) if args.kernels is not None else None
    settings = FinetuneSettings(epochs=args.epochs, lr=args.lr) if args.finetune else None
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    res = run_check(args.precision, args.proxy_images, kernels, settings)
    res["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    rows = [("FP32", f"{res['fp32_accuracy']:.2f} %")]
    for mode in ("float", "int"):
        rows.append(_accuracy_row(f"{args.precision}, {mode} non-linear ops", res, mode))
    rows.append(("int − FP32", f"{res['int_minus_fp32_pt']:+.2f} pt"))
    if kernels is not None:
        named = ", ".join(f"{k} {v}" for k, v in res["kernels"].items())
        rows.append(_accuracy_row(f"{args.precision}, int non-linear ops ({named})", res, "kernels"))
        rows.append(("  − FP32", f"{res['kernels_minus_fp32_pt']:+.2f} pt"))
    if settings is not None:
        ft = res["finetune"]
        rows.append(
            (
                "  fine-tuned",
                f"{res['finetuned_accuracy']:.2f} %  ({ft['steps']} steps, {ft['epochs']} epochs, "
                f"lr {ft['lr']:g}, {ft['wall_s']:.0f} s)",
            )
        )
        rows.append(("  fine-tuned − FP32", f"{res['finetuned_minus_fp32_pt']:+.2f} pt"))
    rows.append(("wall time", f"{res['wall_s']:.1f} s"))
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        print(f"{key:<{width}}{value}")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
