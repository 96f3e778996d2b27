"""``python -m devtools.gpu_check [--out FILE]``: the checks that need an NVIDIA GPU, in one run.

1. Fake-quantized logits on CUDA against the CPU's (TF32 off, as evaluation runs): the default
   MNIST model on 500 test images and a random-weight DeiT-S (1,000 classes) on 16 generated
   images, for W8A8, W4A8P0.5 and W3A6; each evaluator calibrates on its own device. Printed:
   the largest |Δ logit| relative to the largest |logit| (target ≤ 1e-4) and the argmax agreement.
2. timm's normalisation of uint8 pixels on CUDA against the CPU's (must be bit-identical: image
   folders are normalised on the GPU).
3. ``codesign.bench_accuracy`` of deit_small and deit_base on ``cuda`` (4,096 images).

CPU-only machines get one line saying so (exit 2). Everything lands in one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codesign.cli.bench_accuracy import bench_model, generated_splits, run_bench
from codesign.data import DataSplits, ImageTransform
from codesign.errors import UserError
from codesign.models import load_default
from codesign.proxy import Evaluator
from codesign.quant import QuantConfig
from codesign.torch_device import configure
from hwmodel.base.cli import command_parser, run_main

COMMAND = "devtools.gpu_check"
CONFIGS = ("W8A8", "W4A8P0.5", "W3A6")


def logits_on(model: nn.Module, splits: DataSplits, device: torch.device, x: torch.Tensor) -> dict[str, Any]:
    ev = Evaluator(model, splits, proxy_images=64, calib_images=64, proxy_kind="kl", device=device)
    with torch.no_grad():
        return {c: ev.quantized(QuantConfig.uniform(c))(x.to(device)).cpu() for c in CONFIGS}


def compare(name: str, model: nn.Module, splits: DataSplits, x: torch.Tensor) -> dict[str, Any]:
    import copy

    cpu = logits_on(copy.deepcopy(model), splits, torch.device("cpu"), x)
    gpu = logits_on(copy.deepcopy(model), splits, torch.device("cuda"), x)
    out: dict[str, Any] = {}
    for c in CONFIGS:
        scale = float(cpu[c].abs().max())
        out[c] = {
            "max_rel_diff": float((gpu[c] - cpu[c]).abs().max()) / max(scale, 1e-12),
            "argmax_agreement_pct": 100.0 * float((gpu[c].argmax(-1) == cpu[c].argmax(-1)).float().mean()),
        }
    return {"model": name, "images": int(x.shape[0]), "configs": out}


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--images", type=int, default=4096)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU visible to torch: run this on the GPU machine")
    configure(torch.device("cuda"), tf32=False)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    model, splits = load_default()
    result["mnist"] = compare("default_vit_mnist", model, splits, splits.test.head(500))
    deit = bench_model("deit_small_patch16_224", 1000)
    dsplits = generated_splits(deit, 1000, 64, 16)
    result["deit_small"] = compare("deit_small_patch16_224", deit, dsplits, dsplits.test.head(16))
    u8 = torch.randint(
        0, 256, (64, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    transform = ImageTransform.for_model(deit)
    on_gpu = transform.normalise(u8.cuda()).cpu()
    result["normalise_bit_identical"] = bool(torch.equal(on_gpu, transform.normalise(u8)))
    result["bench"] = [
        run_bench(name, 1000, "cuda", args.images, 256, 512, 20, 300, 40, 10_000)
        for name in ("deit_small_patch16_224", "deit_base_patch16_224")
    ]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)


if __name__ == "__main__":
    sys.exit(entry())
