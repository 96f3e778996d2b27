"""Random per-layer configs from the quantization part of a search space (``proxy_check``, tests)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from codesign.quant import LayerQuant, QuantConfig, is_matmul_layer
from codesign.space import QuantSpace


def _bracket(rng: random.Random, choices: Sequence[int], target: float) -> int:
    """One of the two choices around ``target``, the nearer one more often (mean ≈ target)."""
    lo = max((c for c in choices if c <= target), default=choices[0])
    hi = min((c for c in choices if c >= target), default=choices[-1])
    if hi == lo:
        return lo
    return hi if rng.random() < (target - lo) / (hi - lo) else lo


def _log_uniform(rng: random.Random, choices: Sequence[int]) -> float:
    lo, hi = min(choices), max(choices)
    return float(lo * (hi / lo) ** rng.random())


def random_config(space: QuantSpace, names: Sequence[str], rng: random.Random) -> QuantConfig:
    """A random mixed config spread from the most aggressive to the mildest choice.

    Each config draws a weight-bit target and an activation-bit target, log-uniform between the
    smallest and the largest choice (every doubling of precision equally likely); each layer takes
    one of the two choices around the target (mean ≈ target) and a random PoT ratio.
    """
    wb, ab = sorted(space.weight_bits), sorted(space.act_bits)
    w_target, a_target = _log_uniform(rng, wb), _log_uniform(rng, ab)
    layers: dict[str, LayerQuant] = {}
    for name in names:
        if is_matmul_layer(name):
            layers[name] = LayerQuant(_bracket(rng, ab, a_target), _bracket(rng, ab, a_target), 0.0)
        else:
            w = _bracket(rng, wb, w_target)
            ratios = [r for r in space.pot_ratio if r == 0 or w <= 8]
            layers[name] = LayerQuant(w, _bracket(rng, ab, a_target), rng.choice(ratios))
    kernels = {kind: rng.choice(variants) for kind, variants in space.kernels.items()}
    return QuantConfig(LayerQuant(32, 32, 0.0), layers, nonlinear=space.nonlinear, kernels=kernels)
