"""Resource cost of the compute engines and non-linear units, read from the versioned table.

The coefficients live in ``hwmodel/calibration/coefficients.json`` (data, not literals in code):
``python -m hwmodel.calibrate`` refits them from Yosys synthesis of the PyRTL engines. What follows
from the RTL exactly is computed here: DSP slices (one per fixed-point PE, instantiated as
primitives), and the fabric flip-flops (:func:`register_bits`, the registers the generators in
:mod:`hwmodel.rtl.engines` build, counted the same way). The LUT count is a fitted linear model
over structural features of the same RTL (:func:`lut_features`), one coefficient set per Yosys
family (``xcup``, ``xcu``, ``xc7``), each from its own synthesis of the calibration grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hwmodel.arch.engine import FIXED_PIPELINE, EngineConfig, sum_bits
from hwmodel.cost.coefficients import Coefficients, fitted


@dataclass(frozen=True)
class EngineResources:
    """Resources of the compute engines (fixed-point + PoT sub-arrays)."""

    dsp: int
    lut: float
    ff: float


def pot_decoded_bits(engine: EngineConfig) -> int:
    """Width of a decoded PoT code ``{shift, sign, zero}`` (what the PE registers hold)."""
    return engine.pot_weight_bits + 1


def register_bits(engine: EngineConfig) -> int:
    """Flip-flops of the engine's fabric as :mod:`hwmodel.rtl.engines` builds it (exact).

    Fixed: activation hops ``rows·(cols−1)·tokens·act``; the load and swap lines
    ``(cols−1) + (chain−1 + cols−1)``; the valid and first lines ``2·(chain + 5 + cols − 1)``; per
    column and chain one lane register per slot, per column one chain-sum register per slot.
    PoT: activation hops ``rows·(cols−1)·act``; load and active decoded codes per PE; the partial
    sums (``pot_sum_bits(r + 1)`` at row r); the load, swap, valid and first lines.
    The DSP slices' own registers (A, D, AD, B1, B2, M, P) are inside the primitives.
    """
    bits = 0
    rows = engine.rows
    if engine.cols_fixed:
        cols, chain = engine.cols_fixed, engine.chain_rows
        bits += rows * (cols - 1) * engine.tokens * engine.act_bits
        bits += (cols - 1) + (chain - 1 + cols - 1) + 2 * (chain + FIXED_PIPELINE + cols - 1)
        bits += cols * engine.chains * sum(engine.lane_register_bits())
        bits += cols * sum(engine.column_register_bits())
    if engine.cols_pot:
        cols = engine.cols_pot
        bits += rows * (cols - 1) * engine.act_bits
        bits += 2 * rows * cols * pot_decoded_bits(engine)
        bits += cols * sum(engine.pot_sum_bits(r + 1) for r in range(rows))
        bits += (cols - 1) + (rows - 1 + cols - 1) + 2 * (rows + cols - 1)
    return bits


#: Names of the fitted LUT coefficients (``coefficients.json`` → ``array``), one per feature.
LUT_FEATURES: tuple[str, ...] = (
    "lut_lane_separation_bit",
    "lut_mode_select_bit",
    "lut_chain_sum_bit",
    "lut_accumulate_bit",
    "lut_fixed_column",
    "lut_pot_shift_bit",
    "lut_pot_add_bit",
    "lut_pot_column",
    "lut_subarray_const",
)


def lut_features(engine: EngineConfig) -> dict[str, float]:
    """Structural LUT features of an engine (what the fitted model weighs).

    Fixed, per column: for each chain the lane separation (an exact-width incrementer per lane
    above the first, per mode) and, with several modes, the per-slot mode select; the chain-sum
    adders ``(chains − 1)`` per slot; the accumulate adder (``acc_bits``) per slot; a constant per
    column (the B-word packer, gating). PoT: per PE a barrel shifter (product bits × shift bits)
    and one adder (the partial sum's width); per column the code decoder and accumulate adder.
    """
    feats = dict.fromkeys(LUT_FEATURES, 0.0)
    rows = engine.rows
    if engine.cols_fixed:
        cols = engine.cols_fixed
        sep = 0
        for mode in engine.modes:
            sep += (mode.lanes - 1) * sum_bits(engine.chain_rows, mode.weight_bits, mode.act_bits)
        lanes = engine.lane_register_bits()
        feats["lut_lane_separation_bit"] = cols * engine.chains * sep
        if len(engine.modes) > 1:
            feats["lut_mode_select_bit"] = cols * engine.chains * sum(lanes)
        feats["lut_chain_sum_bit"] = cols * (engine.chains - 1) * sum(engine.column_register_bits())
        feats["lut_accumulate_bit"] = cols * engine.slots * engine.acc_bits
        feats["lut_fixed_column"] = cols
        feats["lut_subarray_const"] += 1.0
    if engine.cols_pot:
        cols = engine.cols_pot
        product = engine.pot_sum_bits(1)
        shift_bits = engine.pot_weight_bits - 1
        feats["lut_pot_shift_bit"] = rows * cols * product * shift_bits
        feats["lut_pot_add_bit"] = cols * sum(engine.pot_sum_bits(r + 1) for r in range(rows))
        feats["lut_pot_column"] = cols * (engine.acc_bits + engine.pot_weight_bits)
        feats["lut_subarray_const"] += 1.0
    return feats


@lru_cache(maxsize=4096)
def engine_resources(engine: EngineConfig, synth_family: str, coef: Coefficients) -> EngineResources:
    """DSP/LUT/FF of ``engine`` as Yosys builds it for ``synth_family`` (``xcup``, ``xcu``, ``xc7``).

    Additive over the sub-arrays (each has its own feeders and control); DSP and FF exact.
    Memoised: a search meets the same engine many times.
    """
    return EngineResources(
        dsp=engine.dsp_slices,
        lut=fitted(coef.array_for(synth_family), lut_features(engine)),
        ff=float(register_bits(engine)),
    )
