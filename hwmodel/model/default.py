"""The documented default design: uniform W8A8 fixed-point on the fastest array that fits.

Array shapes: rows and cols powers of two from 4 to 128 (rows ≤ 64), WP486 packing (two tokens
per DSP slice), the device's default clock, 16 to 128 non-linear lanes (powers of two: they run
beside the GEMMs and share the device with the array); the fastest design under the utilisation
caps wins (ties: fewer DSP slices, then fewer lanes). Tiles: Tm covers every token of the
workload (weights are fetched once per layer), Tn two folds of the array's channels, Tk the
k-folds that cover 1024 (clipped to each layer). The partial sums are as wide as the deepest
layer needs (``acc_bits`` left to :func:`hwmodel.arch.engine.required_acc_bits`: no overflow for
any K of the workload).
"""

from __future__ import annotations

from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.base.errors import UserError
from hwmodel.model.evaluation import DesignReport, UtilisationCaps, evaluate
from hwmodel.target.device import Device
from hwmodel.target.workload import Workload

_ROWS = (4, 8, 16, 32, 64)
_COLS = (4, 8, 16, 32, 64, 128)
_LANES = (16, 32, 64, 128)
PACKING = 2


def default_tiling(workload: Workload, rows: int, cols: int) -> LayerHw:
    """Every token, two folds of the (2-token, 1-channel) columns, k-folds covering 1024."""
    tk = -(-1024 // rows) * rows
    return LayerHw(weight_bits=8, act_bits=8, pot_ratio=0.0, tm=workload.tokens, tn=2 * cols, tk=tk)


def default_config(
    workload: Workload, device: Device, caps: UtilisationCaps | None = None
) -> AcceleratorConfig:
    """Uniform W8A8 on the fastest feasible array (see module docstring)."""
    best: tuple[tuple[float, int, int], AcceleratorConfig] | None = None
    for rows in _ROWS:
        for cols in _COLS:
            for lanes in _LANES:
                cfg = AcceleratorConfig(
                    freq_mhz=device.default_freq_mhz,
                    rows=rows,
                    cols=cols,
                    packing=PACKING,
                    nonlinear_lanes=lanes,
                    default=default_tiling(workload, rows, cols),
                )
                rep: DesignReport = evaluate(workload, cfg, device, caps)
                if rep.feasible:
                    rank = (-rep.fps, rep.resources.dsp, lanes)
                    if best is None or rank < best[0]:
                        best = (rank, cfg)
    if best is None:
        raise UserError(f"no W8A8 array of at least 4×4 PEs fits device '{device.name}'")
    return best[1]
