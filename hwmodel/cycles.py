"""Cycle model of the output-stationary systolic engines — the single source of the convention.

Convention (identical in the PyRTL harness, ``hwmodel.rtl``):

* An engine is an R-row × C-column output-stationary array computing C[M×N] = A[M×K]·B[K×N].
  Rows map output rows (tokens, M), columns map output channels (N). A[m, k] enters row ``r`` at
  the left edge skewed by ``r`` cycles, B[k, n] enters column ``c`` at the top skewed by ``c``.
* A *fold* is one R×C block of outputs over a depth of ``tk``: the first operand enters PE(0, 0)
  in cycle 0, PE(R−1, C−1) takes its last operand pair in cycle tk + R + C − 3, so a fold takes
  ``tk + R + C − 2`` cycles. Fill and drain are paid for every fold and the full array skew is paid
  even when an edge fold uses fewer rows or columns. Folds run back to back; the finished
  accumulators move to shadow registers in the cycle after the fold and are read out while the
  next fold computes, so readout adds no cycles (SCALE-Sim v3 reports the same count minus one:
  it prints the 0-based index of the last cycle).
* A tile (Tm, Tn, Tk) held in the on-chip buffers is ⌈tm/R⌉·⌈tn/C⌉ folds of depth tk. Partial
  sums of a tile with Tk < K are preloaded into the accumulators from the output buffer, so they
  cost no cycles beyond the fold.
* The mixed engine is a fixed-point sub-array R×Cf and a power-of-two sub-array R×Cp side by side,
  both reading the same A tile: a tile of tn output channels is split into ``tn_pot =
  round(ratio·tn)`` PoT channels and ``tn − tn_pot`` fixed channels; the two sub-arrays run their
  folds independently and the tile takes the max of the two.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def ceil_div(a: int, b: int) -> int:
    """⌈a / b⌉ for non-negative ``a`` and positive ``b``."""
    return -(-a // b)


def fold_cycles(tk: int, rows: int, cols: int) -> int:
    """Cycles of one output-stationary fold of depth ``tk`` on a rows × cols array."""
    return tk + rows + cols - 2


def tile_compute_cycles(tm: int, tn: int, tk: int, rows: int, cols: int) -> int:
    """Cycles to compute one on-chip tile (tm × tn outputs, depth tk) on one sub-array.

    Zero when the tile gives the sub-array nothing to do (``tn == 0``).
    """
    if tm <= 0 or tn <= 0 or tk <= 0:
        return 0
    folds = ceil_div(tm, rows) * ceil_div(tn, cols)
    return folds * fold_cycles(tk, rows, cols)


def split_channels(tn: int, pot_ratio: float) -> tuple[int, int]:
    """Split ``tn`` output channels into (fixed, pot) by the PoT ratio (round half to even)."""
    tn_pot = round(pot_ratio * tn)
    return tn - tn_pot, tn_pot


def mixed_tile_cycles(
    tm: int, tn: int, tk: int, rows: int, cols_fixed: int, cols_pot: int, pot_ratio: float
) -> int:
    """Cycles of one tile on the mixed engine: max of the fixed and PoT sub-arrays."""
    tn_fix, tn_pot = split_channels(tn, pot_ratio)
    if tn_fix > 0 and cols_fixed == 0:
        raise ValueError("fixed-point channels assigned but the engine has no fixed columns")
    if tn_pot > 0 and cols_pot == 0:
        raise ValueError("power-of-two channels assigned but the engine has no PoT columns")
    fix = tile_compute_cycles(tm, tn_fix, tk, rows, cols_fixed) if tn_fix else 0
    pot = tile_compute_cycles(tm, tn_pot, tk, rows, cols_pot) if tn_pot else 0
    return max(fix, pot)


def tile_extents(total: int, tile: int) -> list[int]:
    """Sizes of the tiles that cover ``total`` with tiles of ``tile`` (the last may be short)."""
    full, rest = divmod(total, tile)
    return [tile] * full + ([rest] if rest else [])


def gemm_compute_cycles(
    m: int,
    n: int,
    k: int,
    rows: int,
    cols_fixed: int,
    cols_pot: int,
    pot_ratio: float,
    tm: int,
    tn: int,
    tk: int,
) -> int:
    """Compute cycles of a whole GEMM tiled (Tm, Tn, Tk), tiles run back to back (no memory)."""
    total = 0
    for em in tile_extents(m, tm):
        for en in tile_extents(n, tn):
            for ek in tile_extents(k, tk):
                total += mixed_tile_cycles(em, en, ek, rows, cols_fixed, cols_pot, pot_ratio)
    return total
