"""``python -m devtools.shift_kernels_report``: today's ("poly") vs the shift-and-add ("shift") kernels.

    python -m devtools.shift_kernels_report                 # errors and cycles (seconds)
    python -m devtools.shift_kernels_report --synth         # + one lane of each through Yosys (~1 min)

Prints, per op kind and kernel variant (:data:`hwmodel.arch.intops.KERNELS`):

* the max abs error vs the float reference on random 16-bit inputs (normal, σ = amax/3, clipped
  at ±amax, rows of the DeiT-B length: 197 for softmax, 768 for LayerNorm, GELU element-wise),
  for a few input ranges amax, and the bound the registry holds the kernel to;
* the cycles of one lane on one DeiT-B row (:func:`hwmodel.arch.nonlinear.row_cycles`; the
  GELU pipeline's latency and one 3,072-element fc1 row);
* with ``--synth``: LUT / FF / DSP of one 16-bit lane (``NONLINEAR_BITS``) as the pinned Yosys
  gives it for ``--family`` (one synthesis at a time), next to the DSP slices counted from the
  netlist (:func:`hwmodel.cost.nonlinear.lane_dsp_slices`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwmodel.arch.intops import KERNELS, NONLINEAR_BITS, VARIANTS, frac_bits_for
from hwmodel.arch.nonlinear import design_spec, gelu_latency, log2_rows_for, row_cycles

#: DeiT-B row lengths: attention rows of 197 tokens, LayerNorm over 768 channels, fc1 of 3,072.
DEIT_B_ROWS: dict[str, int] = {"softmax": 197, "layernorm": 768, "gelu": 3072}
AMAX: tuple[float, ...] = (1.0, 4.0, 8.0, 30.0)


@dataclass(frozen=True)
class KernelLine:
    """One line of the report: a kind's variant, its errors per amax and its lane cycles."""

    kind: str
    variant: str
    errors: tuple[float, ...]
    bound: float
    row_cycles: int
    latency_cycles: int


def max_errors(kind: str, variant: str, rows: int, seed: int) -> tuple[float, ...]:
    """Max abs error vs the float reference for each of :data:`AMAX` (16-bit codes)."""
    op = KERNELS[kind][variant]
    out = []
    for amax in AMAX:
        spec = op.spec(NONLINEAR_BITS, frac_bits_for(amax, NONLINEAR_BITS), NONLINEAR_BITS)
        x = np.random.default_rng(seed).normal(0.0, amax / 3, (rows, DEIT_B_ROWS[kind])).clip(-amax, amax)
        q = np.round(x * 2.0**spec.in_frac).astype(np.int64)
        y = op(q, spec) * 2.0**-spec.out_frac
        ref = op.reference(np.ldexp(q, -spec.in_frac).astype(np.float64))
        out.append(float(np.abs(y - ref).max()))
    return tuple(out)


def lane_cycles(kind: str, variant: str) -> tuple[int, int]:
    """(cycles of one DeiT-B row on one lane, pipeline latency: GELU's, else the row's)."""
    n = DEIT_B_ROWS[kind]
    spec = design_spec(kind)
    if kind == "gelu":
        lat = gelu_latency(spec, variant)
        return n + lat, lat
    cyc = row_cycles(kind, spec, n, log2_rows_for(n), variant)
    return cyc, cyc


def report_lines(rows: int, seed: int) -> list[KernelLine]:
    lines = []
    for kind in KERNELS:
        for variant in VARIANTS:
            cyc, lat = lane_cycles(kind, variant)
            err = max_errors(kind, variant, rows, seed)
            lines.append(KernelLine(kind, variant, err, KERNELS[kind][variant].max_abs_error, cyc, lat))
    return lines


@dataclass(frozen=True)
class LaneSynth:
    """One lane through Yosys: its fabric, its DSP slices, and the DSP slices counted."""

    kind: str
    variant: str
    lut: int
    ff: int
    dsp: int
    dsp_counted: int
    bram36: float


def synth_lanes(family: str) -> list[LaneSynth]:
    """One 16-bit lane of every kind and variant through the pinned Yosys (one at a time)."""
    from hwmodel.cost.nonlinear import lane_dsp_slices
    from hwmodel.rtl.nonlinear import unit_verilog
    from hwmodel.rtl.verilog import synthesize_verilog

    out = []
    for kind in KERNELS:
        log2_rows = 0 if kind == "gelu" else log2_rows_for(DEIT_B_ROWS[kind])
        for variant in VARIANTS:
            verilog = unit_verilog(kind, design_spec(kind), 1, log2_rows, variant=variant)
            res = synthesize_verilog(verilog, family=family)
            counted = lane_dsp_slices(kind, NONLINEAR_BITS, log2_rows, family, variant)
            out.append(LaneSynth(kind, variant, res.lut, res.ff, res.dsp, counted, res.bram36))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=64, help="random rows per kind and amax")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synth", action="store_true", help="also synthesise one lane of each (Yosys)")
    p.add_argument("--family", default="xcup", help="Yosys family for --synth")
    args = p.parse_args(argv)
    head = "  ".join(f"amax {a:>4g}" for a in AMAX)
    print(f"max abs error vs float, {NONLINEAR_BITS}-bit codes; one lane's cycles per DeiT-B row")
    print(f"{'kind':<10} {'variant':<8} {head}  {'bound':>6}  {'row':>6} {'cycles':>7} {'latency':>8}")
    for line in report_lines(args.rows, args.seed):
        errs = "  ".join(f"{e:9.4f}" for e in line.errors)
        n = DEIT_B_ROWS[line.kind]
        print(
            f"{line.kind:<10} {line.variant:<8} {errs}  {line.bound:6.3f}  {n:>6} {line.row_cycles:>7} "
            f"{line.latency_cycles:>8}"
        )
    if args.synth:
        print(f"\none {NONLINEAR_BITS}-bit lane, Yosys synth_xilinx -family {args.family}")
        print(f"{'kind':<10} {'variant':<8} {'LUT':>6} {'FF':>6} {'DSP':>4} {'counted':>8} {'BRAM36':>6}")
        for s in synth_lanes(args.family):
            fabric = f"{s.lut:>6} {s.ff:>6} {s.dsp:>4} {s.dsp_counted:>8} {s.bram36:>6}"
            print(f"{s.kind:<10} {s.variant:<8} {fabric}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
