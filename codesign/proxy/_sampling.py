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


def _around(rng: random.Random, choices: Sequence[int], level: int, p_keep: float) -> int:
    """``level`` with probability ``p_keep``, else a neighbour of it in ``choices``."""
    if rng.random() < p_keep:
        return choices[level]
    lo, hi = max(0, level - 1), min(len(choices) - 1, level + 1)
    return choices[rng.randint(lo, hi)]


def random_config(
    space: SearchSpace, names: Sequence[str], rng: random.Random, p_keep: float = 0.6
) -> QuantConfig:
    """A random mixed config: one weight level and one activation level per config (so configs
    spread from the most aggressive to the mildest choice), each layer at or next to them, and
    a random PoT ratio per weight layer."""
    wb, ab = sorted(space.weight_bits), sorted(space.act_bits)
    w_level, a_level = rng.randrange(len(wb)), rng.randrange(len(ab))
    layers: dict[str, LayerQuant] = {}
    for name in names:
        if is_matmul_layer(name):
            layers[name] = LayerQuant(
                _around(rng, ab, a_level, p_keep), _around(rng, ab, a_level, p_keep), 0.0
            )
        else:
            w = _around(rng, wb, w_level, p_keep)
            ratios = [r for r in space.pot_ratios if r == 0 or w <= 8]
            layers[name] = LayerQuant(w, _around(rng, ab, a_level, p_keep), rng.choice(ratios))
    return QuantConfig(LayerQuant(32, 32, 0.0), layers)
