"""Resources of the non-linear units: LUT and FF fitted per family, DSP slices counted from the RTL.

A unit (:mod:`hwmodel.arch.nonlinear`) is priced from the lanes :mod:`hwmodel.rtl.nonlinear`
builds: its multipliers as Yosys maps them (:mod:`hwmodel.cost.dspcount`) and a linear fabric model
over structural features, fitted by ``python -m hwmodel.calibrate --nonlinear``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hwmodel.arch.intops import NONLINEAR_BITS
from hwmodel.arch.nonlinear import unit_spec
from hwmodel.cost.coefficients import Coefficients, fitted
from hwmodel.cost.dspcount import Multiplier, multipliers_dsp_slices, netlist_multipliers

#: Features of the fitted fabric model of a unit (per lane: a constant, per input bit, per
#: row-buffer address bit), the keys of ``coefficients.json`` → ``nonlinear`` (or the variant's
#: section, :func:`hwmodel.cost.coefficients.nonlinear_section`) → family → kind → ``lut`` /
#: ``ff``. DSP slices are counted, not fitted (:func:`lane_dsp_slices`).
UNIT_FEATURES: tuple[str, ...] = ("lane", "lane_bit", "lane_row_bit")

#: The features each kernel variant's fit weighs (:data:`hwmodel.arch.intops.VARIANTS`). The
#: shift lanes' fabric (pipelined and serial dividers, shift-add squarer) grows with the width and
#: the row-buffer address bits as the poly lanes' does, so the same features carry them: on the
#: committed table their held-out points (3 lanes, 12 bits, 64-word rows) are within 3 % in LUT and
#: FF on every family (``python -m hwmodel.validate``, ``nonlinear_families``).
VARIANT_FEATURES: dict[str, tuple[str, ...]] = {"poly": UNIT_FEATURES, "shift": UNIT_FEATURES}


def unit_feature_names(variant: str = "poly") -> tuple[str, ...]:
    """The features of the fabric model of a unit built with kernel ``variant``."""
    try:
        return VARIANT_FEATURES[variant]
    except KeyError:
        raise ValueError(
            f"unknown kernel variant {variant!r} (known: {', '.join(VARIANT_FEATURES)})"
        ) from None


def unit_features(lanes: int, in_bits: int, log2_rows: int, variant: str = "poly") -> dict[str, float]:
    """Structural features of a unit of ``lanes`` lanes built with kernel ``variant`` (what the
    fitted model weighs: the names :func:`unit_feature_names`)."""
    every = {
        "lane": float(lanes),
        "lane_bit": float(lanes * in_bits),
        "lane_row_bit": float(lanes * log2_rows),
    }
    return {name: every[name] for name in unit_feature_names(variant)}


@lru_cache(maxsize=256)
def lane_multipliers(
    kind: str, in_bits: int, log2_rows: int, variant: str = "poly"
) -> tuple[Multiplier, ...]:
    """The multipliers of one lane of :func:`unit_spec` (``in_bits``) with ``log2_rows`` buffer
    address bits, as Yosys sees them (:func:`hwmodel.cost.dspcount.netlist_multipliers` of the lane
    :mod:`hwmodel.rtl.nonlinear` builds, in a PyRTL block of its own; a few ms to 0.1 s, once).
    ``variant``: the kernel (:data:`hwmodel.arch.intops.VARIANTS`; the shift lanes have none)."""
    import pyrtl

    from hwmodel.rtl.nonlinear import build_unit

    with pyrtl.temp_working_block():
        build_unit(kind, unit_spec(kind, in_bits), 1, log2_rows, variant)
        return netlist_multipliers(pyrtl.working_block())


@lru_cache(maxsize=1024)
def lane_dsp_slices(kind: str, in_bits: int, log2_rows: int, synth_family: str, variant: str = "poly") -> int:
    """DSP slices of one lane: the sum over its multipliers (:func:`lane_multipliers`) of what
    Yosys's ``synth_xilinx -family <synth_family>`` maps each to
    (:func:`hwmodel.cost.dspcount.mul_dsp_slices`); the lanes share nothing, so a unit has ``lanes``
    times as many. Equal to Yosys's count on every line of ``nonlinear_table.csv`` (poly lanes)
    and on one synthesised lane per shift variant (0: tests/test_dspcount.py, slow)."""
    return multipliers_dsp_slices(lane_multipliers(kind, in_bits, log2_rows, variant), synth_family)


@dataclass(frozen=True)
class UnitResources:
    """Fabric and DSP slices of one non-linear unit (its row buffers are priced as buffers)."""

    lut: float
    ff: float
    dsp: int


def unit_resources(
    kind: str,
    synth_family: str,
    coef: Coefficients,
    lanes: int,
    log2_rows: int,
    in_bits: int = NONLINEAR_BITS,
    variant: str = "poly",
) -> UnitResources:
    """Resources of a unit built with kernel ``variant``: LUT and FF from the unit's fitted
    coefficients for ``synth_family`` and ``variant``
    (:meth:`~hwmodel.cost.coefficients.Coefficients.nonlinear_for`), DSP slices counted from its
    multipliers (``lanes`` × :func:`lane_dsp_slices`; 0 for the shift lanes)."""
    coefs = coef.nonlinear_for(synth_family, kind, variant)
    feats = unit_features(lanes, in_bits, log2_rows, variant)
    dsp = lanes * lane_dsp_slices(kind, in_bits, log2_rows, synth_family, variant)
    return UnitResources(lut=fitted(coefs["lut"], feats), ff=fitted(coefs["ff"], feats), dsp=dsp)
