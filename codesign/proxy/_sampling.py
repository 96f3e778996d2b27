"""Random per-layer configs from a search space (for ``proxy_check`` and tests)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from codesign.errors import UserError
from codesign.quant import ALLOWED_BITS, LayerQuant, QuantConfig, is_matmul_layer


@dataclass(frozen=True)
class SearchSpace:
    """Per-layer choices: weight bits, activation bits and PoT ratios of the weight layers.

    For ``qk``/``sv`` both operands are activations: both bit widths come from ``act_bits`` and the
    PoT ratio is 0.
    """

    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]
    pot_ratios: tuple[float, ...]

    def __post_init__(self) -> None:
        for key in ("weight_bits", "act_bits"):
            vals = getattr(self, key)
            if not vals or any(b not in ALLOWED_BITS for b in vals):
                raise UserError(f"search space {key}={vals}: allowed non-empty subset of 2..16, 32")
        if not self.pot_ratios or any(not 0 <= r <= 1 for r in self.pot_ratios):
            raise UserError(f"search space pot_ratios={self.pot_ratios}: allowed values in [0, 1]")


DEFAULT_SPACE = SearchSpace(
    weight_bits=(2, 3, 4, 5, 6, 8),
    act_bits=(4, 5, 6, 8),
    pot_ratios=(0.0, 0.25, 0.5, 0.75, 1.0),
)


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


def random_config(space: SearchSpace, names: Sequence[str], rng: random.Random) -> QuantConfig:
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
            ratios = [r for r in space.pot_ratios if r == 0 or w <= 8]
            layers[name] = LayerQuant(w, _bracket(rng, ab, a_target), rng.choice(ratios))
    return QuantConfig(LayerQuant(32, 32, 0.0), layers)
