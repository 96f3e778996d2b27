"""How long a term proxy takes: precompute over a search space, then one call (for benchmarks)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
from torch import nn

from codesign.proxy._evaluator import resolve_proxy_kind, term_proxy
from codesign.proxy._sampling import random_config
from codesign.proxy._streamed import TOPK_CLASSES
from codesign.quant import Calibration, QuantConfig
from codesign.space import QuantSpace
from hwmodel.target.vit import layer_names


@dataclass(frozen=True)
class ProxyTiming:
    """Seconds of a term proxy on one model and batch of images (``kind`` as resolved)."""

    kind: str
    classes: int
    images: int
    #: the FP32 activation statistics (shared with the real evaluator)
    calibration_s: float
    #: the proxy's terms of every choice of the space (includes the quantized weights)
    precompute_s: float
    terms: int
    #: mean milliseconds of one call once precomputed (random mixed configs)
    call_ms: float
    #: CPU seconds of this process for calibration + precompute (all threads; on a shared
    #: machine the one-thread figure is what an idle core would take)
    setup_cpu_s: float


def measure_proxy(
    model: nn.Module,
    images: torch.Tensor,
    space: QuantSpace,
    kind: str = "auto",
    *,
    topk: int = TOPK_CLASSES,
    configs: int = 20,
    seed: int = 0,
    progress: bool = False,
) -> ProxyTiming:
    """Build the calibration and the proxy on ``images``, precompute every choice of ``space``,
    then time ``configs`` calls on random mixed configs (after one warm-up call)."""
    model = model.eval()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    calibration = Calibration(model, images)
    calibration_s = time.perf_counter() - t0
    with torch.no_grad():
        n_classes = int(model(images[:1]).shape[1])
    resolved = resolve_proxy_kind(kind, n_classes)
    t0 = time.perf_counter()
    proxy = term_proxy(resolved, model, images, calibration, topk)
    cfg = QuantConfig.uniform("W8A8", nonlinear=space.nonlinear)
    terms = proxy.precompute(
        space.weight_bits, space.act_bits, space.pot_ratio, cfg, progress=progress, kernels=space.kernels
    )
    precompute_s = time.perf_counter() - t0
    setup_cpu_s = time.process_time() - cpu0
    rng = random.Random(seed)
    names = layer_names(model)
    cfgs = [random_config(space, names, rng) for _ in range(max(configs, 1))]
    proxy.score(cfgs[0])
    t0 = time.perf_counter()
    for c in cfgs:
        proxy.score(c)
    call_ms = (time.perf_counter() - t0) / len(cfgs) * 1e3
    n_images = int(images.shape[0])
    seconds = (calibration_s, precompute_s, terms, call_ms, setup_cpu_s)
    return ProxyTiming(resolved, n_classes, n_images, *seconds)
