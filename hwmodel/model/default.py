"""The documented default design: uniform W8A8 fixed-point on the fastest array that fits.

Array shapes: rows and cols powers of two from 4 to 128 (rows ≤ 64), WP486 packing (two tokens
per DSP slice), the device's default clock, 16 to 128 softmax lanes and 16 to 128 LayerNorm
lanes (powers of two; GELU 16: they run beside the GEMMs and share the device with the array)
computing the poly or the shift-and-add kernels (all kinds alike); the fastest design under the
utilisation caps wins (ties: fewer DSP slices, then fewer lanes, then poly, then one m tile).
Tiles: Tm covers every token of the workload (weights are fetched once per layer) or half of
them (two m tiles: the non-linear unit takes the first half's rows while the GEMM computes the
second), Tn two folds of the array's channels, Tk the k-folds that cover 1024 (clipped to each
layer). The partial sums are as wide as the deepest layer needs (``acc_bits`` left to
:func:`hwmodel.arch.engine.required_acc_bits`: no overflow for any K of the workload).
"""

from __future__ import annotations

import itertools

from hwmodel.arch.config import NONLINEAR_KINDS, AcceleratorConfig, LayerHw
from hwmodel.arch.intops import VARIANTS
from hwmodel.base.errors import UserError
from hwmodel.model.evaluation import DesignReport, UtilisationCaps, evaluate
from hwmodel.target.device import Device
from hwmodel.target.workload import Workload

_ROWS = (4, 8, 16, 32, 64)
_COLS = (4, 8, 16, 32, 64, 128)
_LANES = (16, 32, 64, 128)
#: The lanes of the GELU unit (it takes each output tile of fc1 beside the next: few keep pace).
GELU_LANES = 16
#: The kernel variant of every unit (:data:`hwmodel.arch.intops.VARIANTS`), in order of preference.
_KERNELS = VARIANTS
PACKING = 2


def default_tiling(workload: Workload, rows: int, cols: int, m_tiles: int = 1) -> LayerHw:
    """The tokens in ``m_tiles`` tiles, two folds of the (2-token, 1-channel) columns, k-folds
    covering 1024."""
    tk = -(-1024 // rows) * rows
    tm = -(-workload.tokens // m_tiles)
    return LayerHw(weight_bits=8, act_bits=8, pot_ratio=0.0, tm=tm, tn=2 * cols, tk=tk)


def default_config(
    workload: Workload, device: Device, caps: UtilisationCaps | None = None
) -> AcceleratorConfig:
    """Uniform W8A8 on the fastest feasible array (see module docstring)."""
    best: tuple[tuple[float, int, int, int, int], AcceleratorConfig] | None = None
    grid = itertools.product(_ROWS, _COLS, _LANES, _LANES, enumerate(_KERNELS), (1, 2))
    for rows, cols, sm_lanes, ln_lanes, (pref, variant), m_tiles in grid:
        cfg = AcceleratorConfig(
            freq_mhz=device.default_freq_mhz,
            rows=rows,
            cols=cols,
            packing=PACKING,
            nonlinear_lanes=GELU_LANES,
            default=default_tiling(workload, rows, cols, m_tiles),
            nonlinear_kernels=dict.fromkeys(NONLINEAR_KINDS, variant),
            nonlinear_kind_lanes={"softmax": sm_lanes, "layernorm": ln_lanes},
        )
        rep: DesignReport = evaluate(workload, cfg, device, caps)
        if rep.feasible:
            rank = (-rep.fps, rep.resources.dsp, sm_lanes + ln_lanes, pref, m_tiles)
            if best is None or rank < best[0]:
                best = (rank, cfg)
    if best is None:
        raise UserError(f"no W8A8 array of at least 4×4 PEs fits device '{device.name}'")
    return best[1]
