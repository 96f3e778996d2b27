"""Resource cost of the compute engines and non-linear units, read from the versioned table.

The coefficients live in ``hwmodel/calibration/coefficients.json`` (data, not literals in code):
``python -m hwmodel.calibrate`` refits them from Yosys synthesis of the PyRTL engines. Structural
counts that follow from the RTL exactly (DSPs per multiplier, register bits) are computed here;
the LUT counts are a fitted linear model over per-PE features, and so are the registers that
Yosys packs into the DSP slices' own input registers (on 7-series; none on UltraScale(+)). Each Yosys
family (``xcup``, ``xcu``, ``xc7``) has its own fitted set, from its own synthesis of the same grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hwmodel.device import SYNTH_FAMILIES
from hwmodel.errors import InputError

COEFFICIENTS_PATH = Path(__file__).parent / "calibration" / "coefficients.json"


@dataclass(frozen=True)
class PackingRule:
    """Up to ``macs_per_dsp`` MACs that share one operand fit one DSP slice at these widths."""

    max_weight_bits: int
    max_act_bits: int
    macs_per_dsp: int


@dataclass(frozen=True)
class NonlinearCost:
    """One lane of a pipelined non-linear unit (softmax, LayerNorm, GELU)."""

    passes: int
    pipeline_cycles: int
    lut_per_lane: float
    ff_per_lane: float
    dsp_per_lane: int


@dataclass(frozen=True)
class Coefficients:
    """The versioned resource table the analytic model reads."""

    version: str
    yosys_version: str | None
    dsp_packing: dict[str, tuple[PackingRule, ...]]
    array: dict[str, dict[str, float]]  # Yosys family → fitted LUT and DSP-absorbed FF coefficients
    nonlinear: dict[str, NonlinearCost]
    system: dict[str, float]

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> Coefficients:
        return Coefficients(
            version=str(raw["version"]),
            yosys_version=raw.get("yosys_version"),
            dsp_packing={
                dsp: tuple(PackingRule(**rule) for rule in rules) for dsp, rules in raw["dsp_packing"].items()
            },
            array={fam: {k: float(v) for k, v in c.items()} for fam, c in raw["array"].items()},
            nonlinear={k: NonlinearCost(**v) for k, v in raw["nonlinear"].items()},
            system={k: float(v) for k, v in raw["system"].items()},
        )

    def array_for(self, synth_family: str) -> dict[str, float]:
        """The engine coefficients fitted to Yosys's synthesis for ``synth_family``."""
        try:
            return self.array[synth_family]
        except KeyError:
            known = ", ".join(sorted(self.array))
            raise InputError(
                f"coefficients {self.version}: no engine calibration for Yosys family {synth_family!r} "
                f"(calibrated: {known}; run python -m hwmodel.calibrate)"
            ) from None


@lru_cache(maxsize=4)
def load_coefficients(path: Path = COEFFICIENTS_PATH) -> Coefficients:
    """Read (once per path) the coefficient table."""
    with open(path, encoding="utf-8") as fh:
        return Coefficients.from_dict(json.load(fh))


@dataclass(frozen=True)
class EngineResources:
    """Resources of the compute engines (fixed-point + PoT sub-arrays with feeders)."""

    dsp: int
    lut: float
    ff: float


def macs_per_dsp(weight_bits: int, act_bits: int, dsp_type: str, coef: Coefficients) -> int:
    """MACs sharing an operand that one DSP slice performs at these widths (≥ 1 for ≤ 18×27).

    Wider operands than any rule need several slices per multiplier: returned as a negative
    count of slices per MAC (see :func:`fixed_multiplier_dsp`).
    """
    rules = coef.dsp_packing[dsp_type]
    for rule in rules:
        if weight_bits <= rule.max_weight_bits and act_bits <= rule.max_act_bits:
            return rule.macs_per_dsp
    widest = rules[-1]
    slices = -(-weight_bits // widest.max_weight_bits) * -(-act_bits // widest.max_act_bits)
    return -slices


def fixed_multiplier_dsp(
    rows: int, cols_fixed: int, weight_bits: int, act_bits: int, dsp_type: str, coef: Coefficients
) -> int:
    """DSP slices of the fixed-point sub-array: packed PEs share the row's activation."""
    if cols_fixed == 0:
        return 0
    per = macs_per_dsp(weight_bits, act_bits, dsp_type, coef)
    if per > 0:
        return rows * -(-cols_fixed // per)
    return rows * cols_fixed * -per


def pe_pairs(cols: int, lanes_per_dsp: int) -> int:
    """Packed PE pairs of one row (columns 2j, 2j + 1 share a multiplier when 2 lanes per DSP)."""
    return cols // 2 if lanes_per_dsp >= 2 else 0


def _index_bits(values: int) -> int:
    return max(1, (values - 1).bit_length())


def pot_shift_stages(pot_weight_bits: int, acc_bits: int) -> int:
    """Barrel-shifter stages of a PoT PE: shift amount bits, capped at ⌈log2 acc_bits⌉."""
    return min(max(pot_weight_bits - 1, 1), _index_bits(acc_bits))


def array_register_bits(
    rows: int,
    cols: int,
    weight_bits: int,
    act_bits: int,
    acc_bits: int,
    lanes_per_dsp: int = 1,
) -> int:
    """Flip-flops of one R×C sub-array as ``hwmodel.rtl`` registers them (exact).

    Per PE lane: accumulator, shadow and preload (3·acc); activation hops R·(C−1)·act; weight
    hops (R−1)·C·w plus, for packed pairs, the last row's delayed high-lane weight; skew feeders
    act·R(R−1)/2 + w·C(C−1)/2; the ``first``/``last`` diagonal delay lines 2·(R+C−2).
    """
    if cols == 0 or rows == 0:
        return 0
    lanes = rows * cols * 3 * acc_bits
    hops = rows * (cols - 1) * act_bits + (rows - 1) * cols * weight_bits
    hops += pe_pairs(cols, lanes_per_dsp) * weight_bits
    feeders = act_bits * rows * (rows - 1) // 2 + weight_bits * cols * (cols - 1) // 2
    flags = 2 * (rows + cols - 2)
    return lanes + hops + feeders + flags


#: Names of the fitted LUT coefficients (``coefficients.json`` → ``array``), one per feature.
LUT_FEATURES: tuple[str, ...] = (
    "lut_fixed_lane_per_acc_bit",
    "lut_single_lane_per_acc_bit",
    "lut_fixed_pair_per_bit",
    "lut_pot_lane_per_acc_bit",
    "lut_pot_lane_per_acc_bit_stage",
    "lut_readout_per_acc_bit_row",
    "lut_per_row",
    "lut_subarray_const",
)


def lut_features(
    rows: int,
    cols: int,
    pot: bool,
    weight_bits: int,
    act_bits: int,
    acc_bits: int,
    lanes_per_dsp: int = 1,
) -> dict[str, float]:
    """Structural LUT features of one sub-array (all zero when it has no columns).

    fixed lanes: accumulate adder + preload select per acc bit, apart for packed lanes and lanes
    with a multiplier of their own (7-series Yosys folds the latter's adder into the DSP48E1's
    ALU); packed pairs: the packing add and the high-lane sign correction (act + 2·w bits); PoT
    lanes: adder/negate per acc bit and the barrel shifter (acc bits × stages); readout: a rows:1
    mux per column and acc bit; per row: the preload row decode.
    """
    feats = dict.fromkeys(LUT_FEATURES, 0.0)
    if cols == 0 or rows == 0:
        return feats
    lanes = rows * cols
    if pot:
        feats["lut_pot_lane_per_acc_bit"] = lanes * acc_bits
        feats["lut_pot_lane_per_acc_bit_stage"] = lanes * acc_bits * pot_shift_stages(weight_bits, acc_bits)
    else:
        packed = 2 * rows * pe_pairs(cols, lanes_per_dsp)
        feats["lut_fixed_lane_per_acc_bit"] = packed * acc_bits
        feats["lut_single_lane_per_acc_bit"] = (lanes - packed) * acc_bits
        feats["lut_fixed_pair_per_bit"] = rows * pe_pairs(cols, lanes_per_dsp) * (act_bits + 2 * weight_bits)
    feats["lut_readout_per_acc_bit_row"] = cols * acc_bits * (rows - 1)
    feats["lut_per_row"] = rows
    feats["lut_subarray_const"] = 1.0
    return feats


def lanes_per_dsp(weight_bits: int, act_bits: int, dsp_type: str, coef: Coefficients) -> int:
    """PE lanes sharing one multiplier in the RTL (2 for packed pairs, else 1)."""
    return 2 if macs_per_dsp(weight_bits, act_bits, dsp_type, coef) >= 2 else 1


#: Names of the fitted DSP-absorbed register coefficients (``coefficients.json`` → ``array``).
FF_ABSORBED_FEATURES: tuple[str, ...] = (
    "ff_dsp_edge_act_bit",
    "ff_dsp_edge_weight_bit",
    "ff_dsp_pair_weight_bit",
    "ff_dsp_single_lane_bit",
)


def ff_absorbed_features(
    rows: int, cols: int, weight_bits: int, act_bits: int, lanes_per_dsp: int = 1
) -> dict[str, float]:
    """Register bits of a fixed-point sub-array that Yosys may pack into DSP input registers.

    A register whose only load is a multiplier port can become the slice's A/B/D register: the
    last column's activation hops (R·act), the last row's weight hops (C·w) and its delayed
    high-lane weights (pairs·w); lanes with a multiplier of their own also cascade operands
    through the slices (lanes·(act + w)). Zero for PoT sub-arrays (no DSP).
    """
    feats = dict.fromkeys(FF_ABSORBED_FEATURES, 0.0)
    if cols == 0 or rows == 0:
        return feats
    pairs = pe_pairs(cols, lanes_per_dsp)
    feats["ff_dsp_edge_act_bit"] = rows * act_bits
    feats["ff_dsp_edge_weight_bit"] = cols * weight_bits
    feats["ff_dsp_pair_weight_bit"] = pairs * weight_bits
    feats["ff_dsp_single_lane_bit"] = rows * (cols - 2 * pairs) * (act_bits + weight_bits)
    return feats


def _fitted(coef: dict[str, float], feats: dict[str, float]) -> float:
    return sum(coef.get(name, 0.0) * value for name, value in feats.items())


@dataclass(frozen=True)
class EngineFeatures:
    """What the fitted engine model weighs: LUT features, the RTL's register bits (exact) and the
    features of the registers Yosys may pack into DSP slices (fixed + PoT sub-arrays together)."""

    lut: dict[str, float]
    register_bits: int
    ff_absorbed: dict[str, float]


def engine_features(
    rows: int,
    cols_fixed: int,
    cols_pot: int,
    weight_bits: int,
    pot_weight_bits: int,
    act_bits: int,
    acc_bits: int,
    lanes_per_dsp: int,
) -> EngineFeatures:
    """Features of the mixed engine: the model (:func:`engine_resources`) and the calibration fit
    (``hwmodel.calibrate``) read the same ones."""
    fix = lut_features(rows, cols_fixed, False, weight_bits, act_bits, acc_bits, lanes_per_dsp)
    pot = lut_features(rows, cols_pot, True, pot_weight_bits, act_bits, acc_bits, 1)
    regs = array_register_bits(rows, cols_fixed, weight_bits, act_bits, acc_bits, lanes_per_dsp)
    regs += array_register_bits(rows, cols_pot, pot_weight_bits, act_bits, acc_bits, 1)
    return EngineFeatures(
        lut={k: fix[k] + pot[k] for k in LUT_FEATURES},
        register_bits=regs,
        ff_absorbed=ff_absorbed_features(rows, cols_fixed, weight_bits, act_bits, lanes_per_dsp),
    )


def engine_resources(
    rows: int,
    cols_fixed: int,
    cols_pot: int,
    weight_bits: int,
    pot_weight_bits: int,
    act_bits: int,
    acc_bits: int,
    synth_family: str,
    coef: Coefficients,
) -> EngineResources:
    """DSP/LUT/FF of the mixed engine (fixed sub-array R×Cf plus PoT sub-array R×Cp) as Yosys
    builds it for ``synth_family`` (``xcup``, ``xcu``, ``xc7``).

    Additive: ``engine(Cf, Cp) == engine(Cf, 0) + engine(0, Cp)`` (each sub-array has its own
    feeders and control). FF: the RTL's registers (exact) less those packed into DSP slices.
    """
    dsp_type = SYNTH_FAMILIES[synth_family]
    fam = coef.array_for(synth_family)
    dsp = fixed_multiplier_dsp(rows, cols_fixed, weight_bits, act_bits, dsp_type, coef)
    lanes = lanes_per_dsp(weight_bits, act_bits, dsp_type, coef)
    feats = engine_features(
        rows, cols_fixed, cols_pot, weight_bits, pot_weight_bits, act_bits, acc_bits, lanes
    )
    ff = feats.register_bits - _fitted(fam, feats.ff_absorbed)
    return EngineResources(dsp=dsp, lut=_fitted(fam, feats.lut), ff=float(ff))
