"""Resource cost of the compute engines and non-linear units, read from the versioned table.

The coefficients live in ``hwmodel/calibration/coefficients.json`` (data, not literals in code):
``python -m hwmodel.calibrate`` refits them from Yosys synthesis of the PyRTL engines. Structural
counts that follow from the RTL exactly (DSPs per multiplier, register bits) are computed here;
the LUT counts are a fitted linear model over per-PE features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    array: dict[str, float]
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
            array={k: float(v) for k, v in raw["array"].items()},
            nonlinear={k: NonlinearCost(**v) for k, v in raw["nonlinear"].items()},
            system={k: float(v) for k, v in raw["system"].items()},
        )


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


def array_register_bits(rows: int, cols: int, weight_bits: int, act_bits: int, acc_bits: int) -> int:
    """Flip-flops of one R×C sub-array: PE registers, shadow accumulators and skew feeders."""
    if cols == 0:
        return 0
    pe = weight_bits + act_bits + 2 * acc_bits
    feeders = act_bits * rows * (rows - 1) // 2 + weight_bits * cols * (cols - 1) // 2
    return rows * cols * pe + feeders


def engine_resources(
    rows: int,
    cols_fixed: int,
    cols_pot: int,
    weight_bits: int,
    pot_weight_bits: int,
    act_bits: int,
    acc_bits: int,
    dsp_type: str,
    coef: Coefficients,
) -> EngineResources:
    """DSP/LUT/FF of the mixed engine: fixed sub-array R×Cf plus PoT sub-array R×Cp."""
    a = coef.array
    dsp = fixed_multiplier_dsp(rows, cols_fixed, weight_bits, act_bits, dsp_type, coef)
    shift_range = max(2 ** (pot_weight_bits - 1) - 2, 0)
    lut_fixed = cols_fixed * rows * (a["lut_fixed_pe_const"] + a["lut_fixed_pe_per_acc_bit"] * acc_bits)
    lut_pot = (
        cols_pot
        * rows
        * (
            a["lut_pot_pe_const"]
            + a["lut_pot_pe_per_acc_bit"] * acc_bits
            + a["lut_pot_pe_per_act_bit_shift"] * act_bits * max(shift_range, 1).bit_length()
        )
    )
    cols = cols_fixed + cols_pot
    lut = lut_fixed + lut_pot + a["lut_control_const"] + a["lut_per_row"] * rows + a["lut_per_col"] * cols
    ff = (
        array_register_bits(rows, cols_fixed, weight_bits, act_bits, acc_bits)
        + array_register_bits(rows, cols_pot, pot_weight_bits, act_bits, acc_bits)
        + a["ff_control_const"]
    )
    return EngineResources(dsp=dsp, lut=lut, ff=float(ff))
