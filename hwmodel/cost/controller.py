"""Resources of the tile controller: FF exact from the RTL, LUT fitted per Yosys family.

The controller (:mod:`hwmodel.arch.controller`, built by :mod:`hwmodel.rtl.controller`) is priced
from its structure: its registers counted as the generator builds them, its LUTs a linear model
over structural features fitted by ``python -m hwmodel.calibrate --controller``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodel.arch.controller import CONTROL_BITS, LOOPS, ControllerSpec
from hwmodel.cost.coefficients import fitted


def controller_register_bits(spec: ControllerSpec) -> int:
    """Flip-flops of the controller as :mod:`hwmodel.rtl.controller` builds it (exact): the
    control bits, one counter per loop, and per buffer the engine-side and DMA-side word counters
    and the DMA's bank counter."""
    bits = CONTROL_BITS + len(LOOPS) * spec.tile_bits
    for b in spec.buffers:
        bits += 2 * b.addr_bits + b.bank_bits
    return bits


#: Features of the fitted LUT model (``coefficients.json`` → ``controller`` → family).
CONTROLLER_FEATURES: tuple[str, ...] = ("const", "tile_bit", "addr_bit", "bank", "mux_bit")


def controller_features(spec: ControllerSpec) -> dict[str, float]:
    """Structural LUT features: a constant (the schedule FSM), per loop-counter bit (increment,
    compare with its last value, wrap), per address-counter bit (two counters per buffer with
    their wrap compares), per bank (the DMA's bank counter and one write enable, or one C read
    mux input per bank) and per C read-mux input bit and level (``banks · width · bank_bits``:
    Yosys's LUTs per input of the bank mux grow with its depth, checked on the grid)."""
    feats = dict.fromkeys(CONTROLLER_FEATURES, 0.0)
    feats["const"] = 1.0
    feats["tile_bit"] = float(len(LOOPS) * spec.tile_bits)
    for b in spec.buffers:
        feats["addr_bit"] += 2 * b.addr_bits
        feats["bank"] += b.banks if b.banks > 1 else 0
        if b.role == "c" and b.banks > 1:
            feats["mux_bit"] += b.banks * b.width_bits * b.bank_bits
    return feats


@dataclass(frozen=True)
class ControllerResources:
    lut: float
    ff: int


def controller_resources(spec: ControllerSpec, coef: dict[str, float]) -> ControllerResources:
    """LUT (fitted, ``coef`` = the family's ``controller`` coefficients) and FF (exact)."""
    feats = controller_features(spec)
    return ControllerResources(lut=fitted(coef, feats), ff=controller_register_bits(spec))
