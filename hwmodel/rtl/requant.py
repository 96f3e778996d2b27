"""PyRTL generator of the requantization lanes: the GEMM epilogue's dyadic rescale (and residual
add) that turns int32 accumulators into the next op's codes, bit for bit as
:func:`hwmodel.arch.dyadic.rescale`.

A lane computes ``y = clamp(⌊(x·M + c + 2^(s−1)) / 2^s⌋, lo, hi)`` on one element a cycle
(``x``: ``in_bits`` signed, ``M``: :data:`MULT_BITS` signed, ``s``: 0 … 62, ``c``:
:data:`OFFSET_BITS` signed, ``lo``/``hi``: ``out_bits`` signed) in a 3-stage pipeline: the
product x·M and the constant c + 2^(s−1) (stage 1, registered), their sum (stage 2), the
arithmetic shift by s and the clamp (stage 3). An element presented with ``in_valid`` in cycle t
is on ``out_data`` with ``out_valid`` in cycle t + :data:`LATENCY`.

A *residual* lane (``residual=True``) also rescales the residual stream's element ``r``
(``r_bits`` signed) by the per-tensor ``skip_mult``/``skip_shift`` in a second pipeline beside the
first, clamps both to ``[lo, hi]`` and adds them, clamped again (one stage more:
:data:`RESIDUAL_LATENCY`): ``clamp(rescale(x) + rescale(r), lo, hi)``, as a residual add of the
integer program (:mod:`codesign.quant._integer`).

Ports of lane ``l``: in ``in_valid_{l}``, ``x_{l}``, ``mult_{l}``, ``shift_{l}``, ``offset_{l}``
(the per-channel tables' entries of the element's channel), ``r_{l}`` (residual lanes); shared in
``lo``, ``hi``, ``skip_mult``, ``skip_shift`` (residual); out ``out_valid_{l}``, ``out_data_{l}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.dyadic import INPUT_BITS, MULT_BITS, OFFSET_BITS, SHIFT_BITS
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.dsp import sext
from hwmodel.rtl.verilog import working_block_verilog

Wire: TypeAlias = pyrtl.WireVector
I64 = npt.NDArray[np.int64]

#: Width of the sum x·M + c + 2^(s−1) (|x·M| < 2^62, |c| < 2^61, 2^(s−1) ≤ 2^61: inside int64).
SUM_BITS = 64
LATENCY = 3
RESIDUAL_LATENCY = LATENCY + 1


def _rounding(shift: Wire) -> Wire:
    """2^(s−1) for s > 0, else 0: a one shifted left by s, then right by one."""
    one = pyrtl.Const(1, bitwidth=SUM_BITS)
    return pyrtl.concat(pyrtl.Const(0, 1), pyrtl.shift_left_logical(one, shift)[1:])


def _clamp(y: Wire, lo: Wire, hi: Wire) -> Wire:
    """``y`` saturated to ``[lo, hi]`` (signed; the result as wide as ``lo``)."""
    width = max(len(y), len(lo))
    ys, los, his = sext(y, width), sext(lo, width), sext(hi, width)
    over, under = pyrtl.signed_gt(ys, his), pyrtl.signed_lt(ys, los)
    return pyrtl.select(over, hi, pyrtl.select(under, lo, ys[: len(lo)]))


def _rescale_pipe(x: Wire, mult: Wire, shift: Wire, offset: Wire | None) -> tuple[Wire, Wire]:
    """Stages 1–2 of a rescale: returns (the registered sum, its registered shift)."""
    product = pyrtl.Register(SUM_BITS)
    const = pyrtl.Register(SUM_BITS)
    s1 = pyrtl.Register(SHIFT_BITS)
    product.next <<= sext(pyrtl.signed_mult(x, mult), SUM_BITS)
    rounding = _rounding(shift)
    const.next <<= rounding if offset is None else (sext(offset, SUM_BITS) + rounding)[:SUM_BITS]
    s1.next <<= shift
    total = pyrtl.Register(SUM_BITS)
    s2 = pyrtl.Register(SHIFT_BITS)
    total.next <<= (product + const)[:SUM_BITS]
    s2.next <<= s1
    return total, s2


def _delay(w: Wire, cycles: int) -> Wire:
    for _ in range(cycles):
        reg = pyrtl.Register(len(w))
        reg.next <<= w
        w = reg
    return w


def requant_lane(
    valid: Wire,
    x: Wire,
    mult: Wire,
    shift: Wire,
    offset: Wire | None,
    lo: Wire,
    hi: Wire,
    clamp_per_element: bool = False,
) -> tuple[Wire, Wire]:
    """One rescale lane (module docstring): returns (``out_valid``, ``out_data``, as wide as ``lo``).
    ``clamp_per_element``: ``lo``/``hi`` are presented with each element (in its ``in_valid``
    cycle) and carried down the pipeline beside it (two registers each), so they may change from
    one element to the next (the GEMM epilogue's output segments); else they are read in the
    clamp's stage (constant over an op)."""
    total, s2 = _rescale_pipe(x, mult, shift, offset)
    if clamp_per_element:
        lo, hi = _delay(lo, LATENCY - 1), _delay(hi, LATENCY - 1)
    out = pyrtl.Register(len(lo))
    out.next <<= _clamp(pyrtl.shift_right_arithmetic(total, s2), lo, hi)
    return _delay(valid, LATENCY), out


def residual_lane(
    valid: Wire,
    x: Wire,
    mult: Wire,
    shift: Wire,
    offset: Wire | None,
    r: Wire,
    skip_mult: Wire,
    skip_shift: Wire,
    lo: Wire,
    hi: Wire,
    clamp_per_element: bool = False,
) -> tuple[Wire, Wire]:
    """A residual lane: ``clamp(rescale(x) + rescale(r), lo, hi)`` (module docstring;
    ``clamp_per_element`` as :func:`requant_lane`)."""
    total, s2 = _rescale_pipe(x, mult, shift, offset)
    skip, k2 = _rescale_pipe(r, skip_mult, skip_shift, None)
    lo3, hi3 = lo, hi
    if clamp_per_element:
        lo, hi = _delay(lo, LATENCY - 1), _delay(hi, LATENCY - 1)
        lo3, hi3 = _delay(lo, 1), _delay(hi, 1)
    branch = pyrtl.Register(len(lo))
    stream = pyrtl.Register(len(lo))
    branch.next <<= _clamp(pyrtl.shift_right_arithmetic(total, s2), lo, hi)
    stream.next <<= _clamp(pyrtl.shift_right_arithmetic(skip, k2), lo, hi)
    out = pyrtl.Register(len(lo))
    wide = len(lo) + 1
    out.next <<= _clamp((sext(branch, wide) + sext(stream, wide))[:wide], lo3, hi3)
    return _delay(valid, RESIDUAL_LATENCY), out


@dataclass(frozen=True)
class RequantSpec:
    """A requantization unit: ``lanes`` lanes of ``in_bits`` inputs and ``out_bits`` outputs,
    with per-element offsets (``offset``) and residual adds of ``r_bits`` inputs (``residual``)."""

    lanes: int
    in_bits: int = INPUT_BITS + 1
    out_bits: int = 32
    offset: bool = True
    residual: bool = False
    r_bits: int = 24

    @property
    def latency(self) -> int:
        return RESIDUAL_LATENCY if self.residual else LATENCY


def build_requant(spec: RequantSpec) -> None:
    """The unit's lanes with named ports (module docstring) in the working block."""
    lo = pyrtl.Input(spec.out_bits, "lo")
    hi = pyrtl.Input(spec.out_bits, "hi")
    skip_mult = pyrtl.Input(MULT_BITS, "skip_mult") if spec.residual else None
    skip_shift = pyrtl.Input(SHIFT_BITS, "skip_shift") if spec.residual else None
    for lane in range(spec.lanes):
        valid = pyrtl.Input(1, f"in_valid_{lane}")
        x = pyrtl.Input(spec.in_bits, f"x_{lane}")
        mult = pyrtl.Input(MULT_BITS, f"mult_{lane}")
        shift = pyrtl.Input(SHIFT_BITS, f"shift_{lane}")
        offset = pyrtl.Input(OFFSET_BITS, f"offset_{lane}") if spec.offset else None
        if spec.residual:
            assert skip_mult is not None and skip_shift is not None
            r = pyrtl.Input(spec.r_bits, f"r_{lane}")
            ov, od = residual_lane(valid, x, mult, shift, offset, r, skip_mult, skip_shift, lo, hi)
        else:
            ov, od = requant_lane(valid, x, mult, shift, offset, lo, hi)
        out_valid = pyrtl.Output(1, f"out_valid_{lane}")
        out_data = pyrtl.Output(spec.out_bits, f"out_data_{lane}")
        out_valid <<= ov
        out_data <<= od


@dataclass(frozen=True)
class RequantRun:
    """A simulation's outputs (int64, in input order) and the cycle of the last output + 1."""

    outputs: I64
    cycles: int


def _u(value: int, bits: int) -> int:
    return int(value) & ((1 << bits) - 1)


def simulate_requant(
    spec: RequantSpec,
    x: Sequence[int] | I64,
    mult: Sequence[int] | I64,
    shift: Sequence[int] | I64,
    lo: int,
    hi: int,
    offset: Sequence[int] | I64 | None = None,
    r: Sequence[int] | I64 | None = None,
    skip: tuple[int, int] = (0, 0),
) -> RequantRun:
    """Stream the elements (element i to lane i mod lanes, one per lane and cycle, each with its
    own table entries) through a fresh unit and collect the outputs. Resets the working block."""
    fresh_block()
    build_requant(spec)
    sim = pyrtl.FastSimulation()
    n = len(x)
    got: list[list[int]] = [[] for _ in range(spec.lanes)]
    cycles = -(-n // spec.lanes) + spec.latency
    last = -1
    for cycle in range(cycles):
        inputs = {"lo": _u(lo, spec.out_bits), "hi": _u(hi, spec.out_bits)}
        if spec.residual:
            inputs |= {"skip_mult": _u(skip[0], MULT_BITS), "skip_shift": skip[1]}
        for lane in range(spec.lanes):
            i = cycle * spec.lanes + lane
            live = i < n
            inputs[f"in_valid_{lane}"] = int(live)
            inputs[f"x_{lane}"] = _u(x[i], spec.in_bits) if live else 0
            inputs[f"mult_{lane}"] = _u(mult[i], MULT_BITS) if live else 0
            inputs[f"shift_{lane}"] = int(shift[i]) if live else 0
            if spec.offset:
                inputs[f"offset_{lane}"] = _u(offset[i], OFFSET_BITS) if live and offset is not None else 0
            if spec.residual:
                inputs[f"r_{lane}"] = _u(r[i], spec.r_bits) if live and r is not None else 0
        sim.step(inputs)
        for lane in range(spec.lanes):
            if sim.inspect(f"out_valid_{lane}"):
                raw = sim.inspect(f"out_data_{lane}")
                got[lane].append(raw - (1 << spec.out_bits) if raw >> (spec.out_bits - 1) else raw)
                last = cycle
    out = np.zeros(n, dtype=np.int64)
    for lane in range(spec.lanes):
        out[lane :: spec.lanes] = got[lane]
    return RequantRun(out, last + 1)


def requant_verilog(spec: RequantSpec, module_name: str = "requant") -> str:
    """Verilog of the unit (resets the PyRTL working block and builds it)."""
    fresh_block()
    build_requant(spec)
    return working_block_verilog(module_name)
