"""``python -m codesign.bench_accuracy --model NAME [--classes K] [--torch-device D] [--json]``.

How fast the accuracy half runs on a ViT of a given size: a random-weight timm model (no weights
are downloaded) on generated images, through the evaluator a search uses (calibration, the
study's default proxy for that class count, fake-quantized evaluation). It prints:

* ``fp32_images_per_s`` and ``fake_quant_images_per_s``: the real evaluation's throughput (FP32,
  and a W8A8 model with the quantized weights already computed, as re-scoring runs);
* ``proxy_kind``, ``proxy_precompute_s`` (calibration and the proxy's terms for the search space's
  choices, once per study) and ``proxy_call_ms`` (per trial, mean over random configs);
* ``peak_rss_mb`` and ``peak_gpu_mb`` (None on the CPU);
* ``extrapolated_study_s``: a study of ``--trials`` trials (default 300) whose ``--designs``
  Pareto designs (40) are re-scored on ``--test-images`` (10,000) images = precompute + trials ×
  proxy call + designs × (quantization + test images / fake-quant throughput). Optuna's sampling
  and the hardware model are left out (together ≈ 0.3 s a trial on the default study).

Generated images measure the model, not the data path (decoding and the image cache are measured
by a search on an image folder: README, "Your own DeiT on ImageNet").
"""

from __future__ import annotations

import json
import random
import resource
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from codesign.data import DataSplits, TensorSplit
from codesign.errors import UserError
from codesign.proxy import Evaluator, random_config
from codesign.quant import QuantConfig
from codesign.space import load_space
from codesign.study import REPO_ROOT
from codesign.torch_device import add_torch_device_argument, configure, gpu_memory_guard, resolve_device
from hwmodel.base.cli import command_parser, positive_int, run_main
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.vit import check_model_name, vit_blocks

COMMAND = "codesign.bench_accuracy"
DEIT_SPACE = REPO_ROOT / "search_spaces" / "deit_zcu102.yaml"


def bench_model(name: str, classes: int) -> nn.Module:
    """A random-weight timm ViT (seeded) with ``classes`` outputs, in eval mode."""
    check_model_name(name)
    torch.manual_seed(0)
    try:
        model: nn.Module = import_timm().create_model(name, pretrained=False, num_classes=classes)
    except (TypeError, RuntimeError) as exc:
        raise UserError(f"model {name!r}: {exc}") from exc
    vit_blocks(model)
    return model.eval()


def generated_splits(model: nn.Module, classes: int, calib: int, test: int) -> DataSplits:
    """Normalised random images of the model's input size, random labels (seeded)."""
    vit: Any = model
    shape = (int(vit.patch_embed.proj.in_channels), *(int(s) for s in vit.patch_embed.img_size))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((calib + test, *shape), generator=gen)
    y = torch.randint(0, classes, (calib + test,), generator=gen)
    return DataSplits(
        train=TensorSplit(x[:0], y[:0]),
        calib_x=x[:calib],
        calib_y=y[:calib],
        test=TensorSplit(x[calib:], y[calib:]),
        num_classes=classes,
        class_names=tuple(str(i) for i in range(classes)),
        seed=0,
    )


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bench(
    name: str,
    classes: int,
    torch_device: str,
    images: int,
    proxy_images: int,
    batch_size: int,
    calls: int,
    trials: int,
    designs: int,
    test_images: int,
) -> dict[str, Any]:
    device = resolve_device(torch_device)
    configure(device, tf32=False)
    model = bench_model(name, classes)
    splits = generated_splits(model, classes, proxy_images, images)
    evaluator = Evaluator(
        model,
        splits,
        proxy_images=proxy_images,
        calib_images=proxy_images,
        proxy_kind="auto",
        batch_size=batch_size,
        device=device,
    )
    space = load_space(DEIT_SPACE).quant
    with gpu_memory_guard(device, "--batch-size"):
        evaluator.top1(evaluator.model)  # warm-up (kernels, allocator)
        _synchronise(device)
        t0 = time.perf_counter()
        evaluator.top1(evaluator.model)
        _synchronise(device)
        fp32_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        evaluator.precompute(space)
        _synchronise(device)
        precompute_s = time.perf_counter() - t0
        rng = random.Random(0)
        configs = [random_config(space, evaluator.layer_names(), rng) for _ in range(calls)]
        evaluator.proxy(configs[0])  # warm-up
        t0 = time.perf_counter()
        for cfg in configs:
            evaluator.proxy(cfg)
        _synchronise(device)
        call_ms = 1e3 * (time.perf_counter() - t0) / calls

        t0 = time.perf_counter()
        qmodel = evaluator.quantized(QuantConfig.uniform("W8A8"))
        quantize_s = time.perf_counter() - t0
        evaluator.correct(qmodel)  # warm-up
        _synchronise(device)
        t0 = time.perf_counter()
        evaluator.correct(qmodel)
        _synchronise(device)
        fq_s = time.perf_counter() - t0
    fq_rate = images / fq_s
    extrapolated = precompute_s + trials * call_ms / 1e3 + designs * (quantize_s + test_images / fq_rate)
    return {
        "model": name,
        "classes": classes,
        "torch_device": str(device),
        "images": images,
        "batch_size": batch_size,
        "fp32_images_per_s": round(images / fp32_s, 2),
        "fake_quant_images_per_s": round(fq_rate, 2),
        "quantize_s": round(quantize_s, 3),
        "proxy_kind": evaluator.proxy_kind,
        "proxy_images": proxy_images,
        "proxy_precompute_s": round(precompute_s, 2),
        "proxy_call_ms": round(call_ms, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if device.type == "cuda"
        else None,
        "extrapolated_study_s": round(extrapolated, 1),
        "extrapolation": {"trials": trials, "designs": designs, "test_images": test_images},
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--model", required=True, help="a timm ViT name, e.g. deit_small_patch16_224")
    p.add_argument("--classes", type=positive_int, default=1000, help="output classes (default 1000)")
    add_torch_device_argument(p)
    p.add_argument("--images", type=positive_int, help="test images timed (default: 64 on CPU, 4096 on CUDA)")
    p.add_argument("--proxy-images", type=positive_int, default=256, help="calibration/proxy images")
    p.add_argument("--batch-size", type=positive_int, help="evaluation batch (default: 64 CPU, 512 CUDA)")
    p.add_argument("--calls", type=positive_int, default=20, help="proxy calls timed")
    p.add_argument("--trials", type=positive_int, default=300)
    p.add_argument("--designs", type=positive_int, default=40)
    p.add_argument("--test-images", type=positive_int, default=10_000)
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.torch_device or "auto"
    on_gpu = resolve_device(spec).type == "cuda"
    res = run_bench(
        args.model,
        args.classes,
        spec,
        args.images or (4096 if on_gpu else 64),
        args.proxy_images,
        args.batch_size or (512 if on_gpu else 64),
        args.calls,
        args.trials,
        args.designs,
        args.test_images,
    )
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    gpu = "" if res["peak_gpu_mb"] is None else f", peak GPU memory {res['peak_gpu_mb']:.0f} MB"
    print(f"{res['model']} ({res['classes']} classes) on {res['torch_device']}, {res['images']} images")
    print(f"FP32 evaluation        {res['fp32_images_per_s']:10.1f} images/s")
    print(f"fake-quant evaluation  {res['fake_quant_images_per_s']:10.1f} images/s (W8A8)")
    print(
        f"proxy ({res['proxy_kind']})  precompute {res['proxy_precompute_s']:.1f} s, "
        f"call {res['proxy_call_ms']:.2f} ms"
    )
    print(f"peak RSS {res['peak_rss_mb']:.0f} MB{gpu}")
    e = res["extrapolation"]
    print(
        f"a {e['trials']}-trial study, {e['designs']} designs re-scored on {e['test_images']:,} images: "
        f"{res['extrapolated_study_s'] / 60:.1f} min (without Optuna's sampling and the hardware model)"
    )
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
