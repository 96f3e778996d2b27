"""The documented default design: uniform W8A8 fixed-point on the largest array that fits.

Array shapes are tried from the most PEs down (rows and cols powers of two from 4 to 256, rows ≤
cols·4 and cols ≤ rows·4); the first feasible one under the utilisation caps wins. Tiles: Tm covers
the tokens in whole folds (⌈min(M, 256)/R⌉·R), Tn = 2·cols, Tk = 512, all clipped to the layer.
The clock is the device default; the accumulators are as wide as the deepest layer needs
(:func:`required_acc_bits`: no overflow for any K of the workload).
"""

from __future__ import annotations

from hwmodel.config import AcceleratorConfig, LayerHw
from hwmodel.device import Device
from hwmodel.errors import InputError
from hwmodel.model import UtilisationCaps, evaluate
from hwmodel.workload import Workload

_SIDES = (4, 8, 16, 32, 64, 128, 256)


def required_acc_bits(workload: Workload, weight_bits: int, act_bits: int) -> int:
    """Accumulator width that cannot overflow: w + a + ⌈log2 K_max⌉ for signed products."""
    k_max = max(op.k for op in workload.gemms)
    return weight_bits + act_bits + max(k_max - 1, 1).bit_length()


def default_tiling(workload: Workload, rows: int, cols: int) -> LayerHw:
    tm = -(-min(workload.tokens, 256) // rows) * rows
    return LayerHw(weight_bits=8, act_bits=8, pot_ratio=0.0, tm=tm, tn=2 * cols, tk=512)


def default_config(
    workload: Workload, device: Device, caps: UtilisationCaps | None = None
) -> AcceleratorConfig:
    """Uniform W8A8 on the largest feasible array (see module docstring)."""
    shapes = sorted(
        ((r, c) for r in _SIDES for c in _SIDES if r <= 4 * c and c <= 4 * r),
        key=lambda rc: (-(rc[0] * rc[1]), -rc[1]),
    )
    for rows, cols in shapes:
        cfg = AcceleratorConfig(
            freq_mhz=device.default_freq_mhz,
            rows=rows,
            cols=cols,
            acc_bits=required_acc_bits(workload, 8, 8),
            default=default_tiling(workload, rows, cols),
        )
        if evaluate(workload, cfg, device, caps).feasible:
            return cfg
    raise InputError(f"no W8A8 array of at least 4×4 PEs fits device '{device.name}'")
