"""Cycle model of the weight-stationary engines — the single source of the convention.

Identical to what the PyRTL controller (:mod:`hwmodel.rtl.harness`) does and the RTL
(:mod:`hwmodel.rtl.engines`) takes; checked cycle-exact against simulation.

* A sub-array of R rows (the reduction) × C columns computes its share of a tile (em tokens,
  en channels, depth ek) in F = ⌈ek / R⌉ · ⌈en / (κ·C)⌉ *folds*; a fold holds R k-values × κ·C
  channels of weights in the PEs while the em tokens stream through, τ per cycle:
  ``steps = ⌈em / τ⌉`` cycles. (τ, κ) = tokens and channels per DSP slice of the layer's packing
  mode (:meth:`hwmodel.arch.engine.EngineConfig.mode_for`); a PoT PE takes (1, 1).
* Folds overlap: the next fold's weights are shifted into the PEs' load registers while the
  current one streams, and swapped in behind its last token. A fold of the fixed sub-array
  starts ``max(steps, L + R − 1)`` cycles after the previous one (L = cascade chain length:
  the weights may only move once the previous swap has reached every chain offset); a PoT fold
  ``max(steps, 2R − 1)`` cycles after it (its single chain spans R rows).
* Fill and drain, once per tile: fixed ``R + L + C + 3`` (weight load R − 1, chain offsets L − 1,
  slice pipeline 4, lane and sum registers 2, column skew C − 1, the count is the last output
  cycle + 1), PoT ``2R + C`` (weight load and swap R + 1, rows R − 1, column skew C − 1, + 1).
  A sub-array's tile: ``(F − 1) · period + steps + fill/drain``; 0 when it gets no channels.
* The fixed and PoT sub-arrays take the same tile at once (the tile's channels split by the
  layer's PoT ratio, round half to even); the tile lasts the longer of the two; tiles run back
  to back (m, n, k order, k innermost; partial sums of Tk < K stay in the output buffer).
"""

from __future__ import annotations

from collections import Counter

from hwmodel.arch.engine import EngineConfig
from hwmodel.base.jit import jit

#: Fill/drain constants beyond R, L and C (see the module docstring).
FIXED_DRAIN = 3
POT_DRAIN = 0


@jit
def ceil_div(a: int, b: int) -> int:
    """⌈a / b⌉ for non-negative ``a`` and positive ``b``."""
    return -(-a // b)


@jit
def fixed_tile_cycles(
    em: int, en: int, ek: int, rows: int, cols: int, chain_rows: int, tokens: int, channels: int
) -> int:
    """Cycles of the fixed-point sub-array on one tile (0 when it gets no channels)."""
    if em <= 0 or en <= 0 or ek <= 0:
        return 0
    folds = ceil_div(ek, rows) * ceil_div(en, channels * cols)
    steps = ceil_div(em, tokens)
    period = max(steps, chain_rows + rows - 1)
    return (folds - 1) * period + steps + rows + chain_rows + cols + FIXED_DRAIN


@jit
def pot_tile_cycles(em: int, en: int, ek: int, rows: int, cols: int) -> int:
    """Cycles of the power-of-two sub-array on one tile (0 when it gets no channels)."""
    if em <= 0 or en <= 0 or ek <= 0:
        return 0
    folds = ceil_div(ek, rows) * ceil_div(en, cols)
    period = max(em, 2 * rows - 1)
    return (folds - 1) * period + em + 2 * rows + cols + POT_DRAIN


@jit
def split_channels(tn: int, pot_ratio: float) -> tuple[int, int]:
    """Split ``tn`` output channels into (fixed, pot) by the PoT ratio (round half to even)."""
    tn_pot = round(pot_ratio * tn)
    return tn - tn_pot, tn_pot


def mixed_tile_cycles(
    em: int, en: int, ek: int, engine: EngineConfig, pot_ratio: float, layer_bits: tuple[int, int]
) -> int:
    """Cycles of one tile on the mixed engine: the longer of the fixed and PoT sub-arrays."""
    tn_fix, tn_pot = split_channels(en, pot_ratio)
    if tn_fix > 0 and engine.cols_fixed == 0:
        raise ValueError("fixed-point channels assigned but the engine has no fixed columns")
    if tn_pot > 0 and engine.cols_pot == 0:
        raise ValueError("power-of-two channels assigned but the engine has no PoT columns")
    fix = 0
    if tn_fix:
        mode = engine.mode_for(*layer_bits)
        fix = fixed_tile_cycles(
            em, tn_fix, ek, engine.rows, engine.cols_fixed, engine.chain_rows, mode.tokens, mode.channels
        )
    pot = pot_tile_cycles(em, tn_pot, ek, engine.rows, engine.cols_pot) if tn_pot else 0
    return max(fix, pot)


def tile_extents(total: int, tile: int) -> list[int]:
    """Sizes of the tiles that cover ``total`` with tiles of ``tile`` (the last may be short)."""
    full, rest = divmod(total, tile)
    return [tile] * full + ([rest] if rest else [])


def gemm_compute_cycles(
    m: int,
    n: int,
    k: int,
    engine: EngineConfig,
    pot_ratio: float,
    tm: int,
    tn: int,
    tk: int,
    layer_bits: tuple[int, int] | None = None,
) -> int:
    """Compute cycles of a whole GEMM tiled (Tm, Tn, Tk), tiles back to back (no memory).

    ``layer_bits`` = (weight, activation) bits of the layer (default: the engine's widths).
    """
    bits = layer_bits if layer_bits is not None else (engine.weight_bits, engine.act_bits)
    total = 0
    # tiles of equal extents take equal cycles: one evaluation per distinct (em, en, ek)
    for em, cm in Counter(tile_extents(m, tm)).items():
        for en, cn in Counter(tile_extents(n, tn)).items():
            for ek, ck in Counter(tile_extents(k, tk)).items():
                total += cm * cn * ck * mixed_tile_cycles(em, en, ek, engine, pot_ratio, bits)
    return total
