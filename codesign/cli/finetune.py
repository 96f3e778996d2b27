"""``python -m codesign.finetune runs/<study> --trial N [--epochs E | --steps S] [--distill]``.

Quantization-aware fine-tuning (:mod:`codesign.qat`) of the exported design N with the quantizers
it was exported with, on the study's training split (seeded, progress bar): ``--epochs`` passes
over the shipped MNIST split, or a budget of ``--steps`` batches streamed from an image folder
through timm's training transform (default 1,000), on the study's torch device. Replaces the design's
``model_int.pt`` (and ``model.qonnx.onnx``, when there is one) and records the fine-tuned top-1
in ``quant.json`` beside the post-training one (``accuracy.finetuned_top1``, ``finetune``); each
file is written beside the old one and swapped in once complete. It always starts from the FP32
model, so running it again retrains rather than compounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from codesign.errors import UserError
from codesign.export import write_int_model, write_json
from codesign.qat import FOLDER_STEPS, FinetuneSettings, finetune
from codesign.qonnx_export import QONNX_FILE, export_qonnx
from codesign.quant import on_cpu
from codesign.run_folder import design_dir, load_run_evaluator, read_design_quant, read_summary
from codesign.torch_device import add_torch_device_argument
from hwmodel.base.cli import command_parser, positive_float, positive_int, run_main

COMMAND = "codesign.finetune"


def gap_recovered_pct(fp32: float, ptq: float, tuned: float) -> float | None:
    """Share of the post-training gap to FP32 that fine-tuning closed (None without a gap)."""
    gap = fp32 - ptq
    return None if gap <= 0 else 100.0 * (tuned - ptq) / gap


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("run_dir", help="a run folder, e.g. runs/default")
    p.add_argument("--trial", type=int, required=True, help="the exported design to fine-tune")
    p.add_argument(
        "--epochs", type=positive_int, default=FinetuneSettings.epochs, help="passes over in-memory data"
    )
    p.add_argument(
        "--steps", type=positive_int, help=f"optimiser steps (image folders: default {FOLDER_STEPS})"
    )
    p.add_argument("--lr", type=positive_float, default=FinetuneSettings.lr, help="AdamW learning rate")
    p.add_argument("--batch", type=positive_int, default=FinetuneSettings.batch)
    p.add_argument("--distill", action="store_true", help="also distil from the FP32 model (T = 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    add_torch_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    info = read_summary(run_dir)
    folder = design_dir(run_dir, args.trial, info)
    doc, config = read_design_quant(folder)
    if not (folder / "model_int.pt").is_file():
        raise UserError(f"{folder}: no model_int.pt to fine-tune (a hardware-only design)")
    evaluator = load_run_evaluator(run_dir, info, args.torch_device)
    ptq = evaluator.quantized(config)
    settings = FinetuneSettings(
        epochs=args.epochs,
        steps=args.steps,
        lr=args.lr,
        batch=args.batch,
        distill=args.distill,
        seed=args.seed,
    )
    bar: Any = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=1, desc=f"fine-tuning trial {args.trial}", unit="step")

    def progress(step: int, steps: int, loss: float) -> None:
        if bar is not None:
            bar.total = steps
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

    result = finetune(ptq, evaluator.model, evaluator.splits, settings, progress)
    if bar is not None:
        bar.close()
    fp32, post, tuned = evaluator.fp32_accuracy(), evaluator.top1(ptq), evaluator.top1(result.model)
    write_int_model(folder / "model_int.pt", result.model)
    if (folder / QONNX_FILE).is_file():
        export_qonnx(on_cpu(result.model), evaluator.splits.test.head(2), folder / QONNX_FILE)
    record = {
        "epochs": round(result.epochs, 3),
        "lr": settings.lr,
        "batch": settings.batch,
        "distill": settings.distill,
        "seed": settings.seed,
        "steps": result.steps,
        "train_images": len(evaluator.splits.train),
        "torch_device": str(evaluator.device),
        "wall_s": round(result.wall_s, 1),
    }
    doc["accuracy"] = {**doc.get("accuracy", {}), "fp32_top1": fp32, "finetuned_top1": tuned}
    doc["finetune"] = record
    write_json(folder / "quant.json", doc)
    out = {
        "trial": args.trial,
        "fp32_top1": fp32,
        "post_training_top1": post,
        "finetuned_top1": tuned,
        "gap_recovered_pct": gap_recovered_pct(fp32, post, tuned),
        **record,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        rec = out["gap_recovered_pct"]
        gap = "" if rec is None else f", {rec:.0f} % of the gap to FP32 recovered"
        print(
            f"trial {args.trial}: top-1 FP32 {fp32:.2f} %, post-training {post:.2f} %, fine-tuned "
            f"{tuned:.2f} %{gap} ({result.steps} steps, {result.epochs:.3g} epochs, "
            f"{result.wall_s:.0f} s) -> {folder}"
        )
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
