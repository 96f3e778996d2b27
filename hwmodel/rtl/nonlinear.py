"""PyRTL generators of the non-linear units: integer softmax, LayerNorm and GELU lanes.

Each lane computes the kernels of :mod:`hwmodel.arch.intops` bit for bit (same floor shifts, same
constants, same reciprocal). A unit is ``lanes`` independent lanes; the row-wise units give each
lane whole rows (row ``i`` of an op goes to lane ``i mod lanes``), the GELU unit one element per
lane and cycle. Ports of lane ``l`` (suffix ``_{l}``): inputs ``in_valid``, ``in_data``
(``in_bits`` signed), ``in_last`` (last element of a row; row-wise units); outputs ``ready``
(row-wise units: the lane takes a new row's elements), ``out_valid``, ``out_data``. Timing
(cycle 0 = the cycle the row's first element is presented with ``ready`` high; elements
back to back; ``N`` = row length):

**GELU** (:func:`gelu_lane`): a 4-stage pipeline: |q|, clip (stage 1); v² (2); the erf factor (3);
q·factor, shift, clamp (4). An element presented in cycle t is on ``out_data`` in cycle t + 4.

**softmax** (:func:`softmax_lane`), one row held in the lane's row buffer (one simple-dual-port
bank of 2^log2_rows × 16 bits, registered read):

1. load, cycles 0 … N−1: elements written to the buffer, running max;
2. exp, cycles N … 2N+2: the buffer is read back (address per cycle, data one cycle later),
   d = q − max, u = ⌊−d·L2E/2^14⌋ (stage a), 2^−r polynomial and shift (stage b); e is added to
   the sum and written back over q (three cycles after its read);
3. reciprocal, Q = out_bits + 13 cycles: restoring division ⌊2^K / Σe⌋, one quotient bit a cycle;
4. normalise: the buffer is read again, e·R shifted and clamped; element i on ``out_data`` in
   cycle 2N + Q + 5 + i. The last output is in cycle 3N + Q + 4; ``ready`` rises the cycle after.

**LayerNorm** (:func:`layernorm_lane`), same buffer: load (S1 += q, S2 += q², N cycles);
V = N·S2 − S1² by two shift-add multipliers (M = in_bits + log2_rows + 1 steps, plus a load and a
difference cycle); bitwise integer square root, one result bit a cycle (S = log2_rows + in_bits
cycles); restoring division ⌊2^K / max(√V, 1)⌋ (Q = K + 1 cycles); normalise as softmax's
(element i on ``out_data`` N + M + S + Q + 4 + i cycles after the first input).

**Shift-and-add variants** (``variant="shift"``: :func:`softmax_lane_shift`,
:func:`layernorm_lane_shift`, :func:`gelu_lane_shift`, bit-exact to the ``"shift"`` kernels of
:data:`hwmodel.arch.intops.KERNELS`) have no ``*`` net, so no DSP slice: exp by shifts and adds,
per-element floor divisions in a pipelined non-restoring divider (:func:`_divide_pipeline`,
:data:`hwmodel.arch.nonlinear.DIV_BITS_PER_CYCLE` quotient bits a cycle), LayerNorm's squares by a
shift-add squarer (:func:`_square`) and its mean and σ by serial divisions by N. Same ports and
handshake as today's lanes.

:mod:`hwmodel.arch.nonlinear` states these counts as formulas; the tests hold the simulation to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.intops import (
    CONST_FRAC,
    EXP2_A,
    EXP2_B,
    GELU_A,
    L2E,
    L2E_FRAC,
    LN_GUARD,
    VARIANTS,
    IntSpec,
    gelu_clip,
    layernorm_k,
    shift_gelu_exponent,
    softmax_k,
)
from hwmodel.arch.nonlinear import (
    BUFFER_BITS,
    DIV_BITS_PER_CYCLE,
    GELU_LATENCY,
    divider_latency,
    isqrt_steps,
    mean_steps,
    reciprocal_steps,
    shift_quotient_bits,
    variance_steps,
)
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.dsp import sext
from hwmodel.rtl.verilog import working_block_verilog

Wire: TypeAlias = pyrtl.WireVector


def _sub(a: Wire, b: Wire, bits: int) -> Wire:
    """a − b (signed), ``bits`` wide (two's complement wrap)."""
    return (sext(a, bits) - sext(b, bits))[:bits]


def _add(a: Wire, b: Wire, bits: int) -> Wire:
    """a + b (signed), ``bits`` wide."""
    return (sext(a, bits) + sext(b, bits))[:bits]


def _smul(a: Wire, b: Wire, bits: int) -> Wire:
    """a · b (both signed), ``bits`` wide."""
    return sext(pyrtl.signed_mult(a, b), bits)


def _asr(a: Wire, k: int) -> Wire:
    """⌊a / 2^k⌋ of a signed ``a`` (arithmetic shift; the result keeps ``len(a) − k`` bits)."""
    return a[k:] if k else a


def _clamp_signed(y: Wire, bits: int) -> Wire:
    """Saturate a signed ``y`` to ``bits`` bits. Area: two comparators and a 3-way mux."""
    width = max(len(y), bits + 1)
    ys = sext(y, width)
    hi = pyrtl.Const((1 << (bits - 1)) - 1, bitwidth=width, signed=True)
    lo = pyrtl.Const(-(1 << (bits - 1)), bitwidth=width, signed=True)
    over, under = pyrtl.signed_gt(ys, hi), pyrtl.signed_lt(ys, lo)
    return pyrtl.select(over, hi[:bits], pyrtl.select(under, lo[:bits], ys[:bits]))


def _bits(value: int) -> int:
    return max(1, int(value).bit_length())


# ----------------------------------------------------------------------------- GELU


def gelu_lane(valid: Wire, q: Wire, spec: IntSpec) -> tuple[Wire, Wire]:
    """i-GELU of one element a cycle: returns (out_valid, out_data).

    Latency: :data:`hwmodel.arch.nonlinear.GELU_LATENCY` (4) cycles. Area: one |q| (in_bits), a clip
    comparator, two multipliers (v², A·v²; the second by a constant), the q·factor multiplier
    (in_bits × 17), the clamp; registers of the four stages.
    """
    f = spec.in_frac
    c = gelu_clip(f)
    cbits = _bits(c)
    # stage 1: sign, |q|, w = C − min(|q|, C) (= −v ≥ 0)
    neg = q[-1]
    mag = pyrtl.select(neg, (~q + 1)[: len(q)], q)
    clip = pyrtl.Const(c, bitwidth=max(cbits, len(q)))
    m = pyrtl.select(mag.zero_extended(len(clip)) < clip, mag.zero_extended(len(clip)), clip)
    w1 = (clip - m)[: len(clip)]
    r1 = [pyrtl.Register(1), pyrtl.Register(len(q)), pyrtl.Register(len(w1))]
    r1[0].next <<= valid
    r1[1].next <<= q
    r1[2].next <<= w1
    # stage 2: v²
    r2 = [pyrtl.Register(1), pyrtl.Register(len(q)), pyrtl.Register(2 * len(w1))]
    r2[0].next <<= r1[0]
    r2[1].next <<= r1[1]
    r2[2].next <<= r1[2] * r1[2]
    # stage 3: t = ⌊A·v² / 2^2F⌋; factor = 2^15 + sign(q)·(2^15 − t)
    t = (r2[2] * pyrtl.Const(GELU_A))[2 * f :]
    t = t[: CONST_FRAC + 1] if len(t) > CONST_FRAC + 1 else t.zero_extended(CONST_FRAC + 1)
    qv = r2[1]
    is_zero = qv == 0
    plus = (pyrtl.Const(1 << (CONST_FRAC + 1)) - t)[: CONST_FRAC + 2]
    factor = pyrtl.select(
        is_zero,
        pyrtl.Const(1 << CONST_FRAC, bitwidth=CONST_FRAC + 2),
        pyrtl.select(qv[-1], t.zero_extended(CONST_FRAC + 2), plus),
    )
    r3 = [pyrtl.Register(1), pyrtl.Register(len(q)), pyrtl.Register(CONST_FRAC + 2)]
    r3[0].next <<= r2[0]
    r3[1].next <<= qv
    r3[2].next <<= factor
    # stage 4: y = ⌊q·factor / 2^(16 + F − out_frac)⌋, clamped
    prod = pyrtl.signed_mult(r3[1], r3[2].zero_extended(CONST_FRAC + 3))
    y = _clamp_signed(_asr(prod, CONST_FRAC + 1 + f - spec.out_frac), spec.out_bits)
    out_valid, out_data = pyrtl.Register(1), pyrtl.Register(spec.out_bits)
    out_valid.next <<= r3[0]
    out_data.next <<= y
    assert GELU_LATENCY == 4
    return out_valid, out_data


# ----------------------------------------------------------------------------- shared pieces


class _Divider:
    """Restoring division ⌊2^K / D⌋ with ``steps`` quotient bits (the quotient is < 2^steps),
    one bit a cycle while ``run`` is high; ``start`` (the cycle before the first step) loads
    the remainder with ⌊2^K / 2^steps⌋ and clears the quotient.

    Area: a ``len(D) + 1``-bit subtractor/comparator, remainder and quotient registers, a step
    counter.
    """

    def __init__(self, k: int, steps: int, d: Wire, start: Wire, run: Wire) -> None:
        rbits = len(d) + 1
        self.rem = pyrtl.Register(rbits)
        self.quot = pyrtl.Register(steps)
        self.step = pyrtl.Register(_bits(steps))
        # the dividend bit shifted in at step j is bit steps − 1 − j of 2^K: one only if K < steps
        bit_in = self.step == steps - 1 - k if k < steps else pyrtl.Const(0)
        shifted = pyrtl.concat(self.rem[: rbits - 1], bit_in)
        take = shifted >= d.zero_extended(rbits)
        diff = (shifted - d.zero_extended(rbits))[:rbits]
        with pyrtl.conditional_assignment:
            with start:
                self.rem.next |= pyrtl.Const((1 << k) >> steps, bitwidth=rbits)
                self.quot.next |= 0
                self.step.next |= 0
            with run:
                self.rem.next |= pyrtl.select(take, diff, shifted)
                self.quot.next |= pyrtl.concat(self.quot[: steps - 1], take) if steps > 1 else take
                self.step.next |= self.step + 1
        self.done = self.step == steps - 1


def _read_flags(reading: Wire, count: Wire, n: Wire) -> tuple[Wire, Wire]:
    """(valid, last) of the buffer read issued in the cycle before (read data is registered).

    Latency: 1 cycle. Area: two flip-flops and a comparator.
    """
    v1, last1 = pyrtl.Register(1), pyrtl.Register(1)
    v1.next <<= reading
    last1.next <<= reading & (count == n - 1)
    return v1, last1


def _normalised_out(state: Wire, v1: Wire, last1: Wire, y: Wire) -> tuple[Wire, Wire, Wire]:
    """The output registers (valid, data, last) of the normalise pass: ``y`` of the element read
    two cycles earlier. Latency: 1 cycle after the read data. Area: ``len(y) + 3`` flip-flops."""
    norm1 = pyrtl.Register(1)
    norm1.next <<= state == _NORM
    out_valid, out_data, out_last = pyrtl.Register(1), pyrtl.Register(len(y)), pyrtl.Register(1)
    out_valid.next <<= v1 & norm1
    out_last.next <<= last1 & norm1
    out_data.next <<= y
    return out_valid, out_data, out_last


def _recip_and_normalise(state: Wire, divider: _Divider, reading: Wire, count: Wire, out_last: Wire) -> None:
    """The last two phases of a row (inside the lane's ``conditional_assignment``): the divider
    runs, then the buffer is read once more; after the last output the lane takes a new row."""
    with state == _RECIP, divider.done:
        state.next |= _NORM
    with state == _NORM:
        with reading:
            count.next |= count + 1
        with out_last:
            state.next |= _LOAD
            count.next |= 0


def _row_buffer(log2_rows: int) -> tuple[pyrtl.MemBlock, Wire]:
    mem = pyrtl.MemBlock(bitwidth=BUFFER_BITS, addrwidth=log2_rows, max_read_ports=1)
    return mem, pyrtl.Register(BUFFER_BITS)


# ----------------------------------------------------------------------------- softmax


_LOAD, _PASS, _ROOT, _RECIP, _NORM, _MUL, _VAR = 0, 1, 2, 3, 4, 5, 6


def softmax_lane(valid: Wire, q: Wire, last: Wire, spec: IntSpec, log2_rows: int) -> tuple[Wire, Wire, Wire]:
    """Integer softmax of one row at a time: returns (ready, out_valid, out_data).

    Latency: a row of N elements takes :func:`hwmodel.arch.nonlinear.row_cycles` (``3N + Q + 5``)
    cycles from its first input to the next row's. Area: the row buffer (2^log2_rows × 16), the
    running max, the exp datapath (in_bits+1 × 15 multiplier, the 2^−r polynomial's two
    multipliers, a barrel shifter), the sum, the divider (:class:`_Divider`), the e·R
    multiplier and clamp, the FSM and counters.
    """
    f = spec.in_frac
    k = softmax_k(spec)
    steps = reciprocal_steps("softmax", spec, log2_rows)
    nbits = log2_rows + 1
    dbits = len(q) + 1
    sum_bits = CONST_FRAC + 1 + log2_rows
    state = pyrtl.Register(3)
    count = pyrtl.Register(nbits)  # elements loaded / addresses issued
    n = pyrtl.Register(nbits)
    qmax = pyrtl.Register(len(q))
    total = pyrtl.Register(sum_bits)
    mem, rdata = _row_buffer(log2_rows)
    ready = state == _LOAD
    accept = ready & valid
    # pass 2 and 4 read address stream: issue while count < n
    reading = ((state == _PASS) | (state == _NORM)) & (count < n)
    raddr = count[:log2_rows]
    rdata.next <<= mem[raddr]
    # pipeline valid/last flags: read issued (v0) → data (v1) → stage a (v2) → e (v3)
    v1, last1 = _read_flags(reading, count, n)
    # exp stage a: u = ⌊−d·L2E / 2^14⌋ (d = q − max ≤ 0, so −d ≥ 0)
    neg_d = _sub(qmax, rdata[: len(q)], dbits)
    u = (neg_d[: dbits - 1] * pyrtl.Const(L2E))[L2E_FRAC:]
    ra_u, v2, last2 = pyrtl.Register(len(u)), pyrtl.Register(1), pyrtl.Register(1)
    ra_u.next <<= u
    v2.next <<= v1 & (state == _PASS)
    last2.next <<= last1 & (state == _PASS)
    waddr2 = pyrtl.Register(log2_rows)
    waddr2.next <<= (count - 1)[:log2_rows]
    # exp stage b: z, f; p = 2^15 − ⌊f·(A·2^F − B·f) / 2^2F⌋; e = p >> min(z, 16)
    z = ra_u[f:] if f < len(ra_u) else pyrtl.Const(0)
    fr = ra_u[:f] if f else pyrtl.Const(0)
    inner = (pyrtl.Const(EXP2_A << f) - fr * pyrtl.Const(EXP2_B))[: _bits(EXP2_A << f)]
    poly = (fr * inner)[2 * f :] if 2 * f else fr * inner
    p = (pyrtl.Const(1 << CONST_FRAC, bitwidth=CONST_FRAC + 1) - poly)[: CONST_FRAC + 1]
    zc = pyrtl.select(
        z > CONST_FRAC + 1,
        pyrtl.Const(CONST_FRAC + 1, bitwidth=5),
        z[:5] if len(z) >= 5 else z.zero_extended(5),
    )
    e = pyrtl.shift_right_logical(p, zc)
    e_reg, v3, last3, waddr3 = (
        pyrtl.Register(CONST_FRAC + 1),
        pyrtl.Register(1),
        pyrtl.Register(1),
        pyrtl.Register(log2_rows),
    )
    e_reg.next <<= e
    v3.next <<= v2
    last3.next <<= last2
    waddr3.next <<= waddr2
    # write port: loads in pass 1, e values in pass 2
    wen = accept | v3
    waddr = pyrtl.select(accept, count[:log2_rows], waddr3)
    wdata = pyrtl.select(accept, sext(q, BUFFER_BITS), e_reg.zero_extended(BUFFER_BITS))
    mem[waddr] <<= pyrtl.MemBlock.EnabledWrite(wdata, wen)
    divider = _Divider(k, steps, total, start=v3 & last3, run=state == _RECIP)
    # normalise: y = min(⌊e·R / 2^(K − out_bits)⌋, 2^out_bits − 1)
    ny = (rdata[: CONST_FRAC + 1] * divider.quot)[k - spec.out_bits :]
    top = (1 << spec.out_bits) - 1
    y = pyrtl.select(ny > top, pyrtl.Const(top, bitwidth=spec.out_bits), ny[: spec.out_bits])
    out_valid, out_data, out_last = _normalised_out(state, v1, last1, y)
    bigger = pyrtl.signed_gt(q, qmax)
    with pyrtl.conditional_assignment:
        with state == _LOAD, valid:
            count.next |= pyrtl.select(last, pyrtl.Const(0), count + 1)
            with count == 0:
                qmax.next |= q
            with pyrtl.otherwise:
                qmax.next |= pyrtl.select(bigger, q, qmax)
            with last:
                n.next |= count + 1
                state.next |= _PASS
                total.next |= 0
        with state == _PASS:  # reads and e write-backs overlap: not an if/elif chain
            count.next |= pyrtl.select(reading, count + 1, pyrtl.select(v3 & last3, 0, count))
            total.next |= pyrtl.select(v3, (total + e_reg)[:sum_bits], total)
            with v3 & last3:
                state.next |= _RECIP
        _recip_and_normalise(state, divider, reading, count, out_last)
    return ready, out_valid, out_data


# ----------------------------------------------------------------------------- LayerNorm


def layernorm_lane(
    valid: Wire, q: Wire, last: Wire, spec: IntSpec, log2_rows: int
) -> tuple[Wire, Wire, Wire]:
    """Integer LayerNorm (without γ, β) of one row at a time: returns (ready, out_valid, out_data).

    Latency: :func:`hwmodel.arch.nonlinear.row_cycles` (``2N + M + S + Q + 4``: M = in_bits +
    log2_rows + 1 shift-add steps for N·S2 and S1², S = log2_rows + in_bits square-root steps,
    Q = K + 1 reciprocal steps) cycles from a row's first input to the next row's. Area: the row
    buffer, S1/S2 accumulators and the q² multiplier, two shift-add multipliers (N·S2 and S1², once
    per row: adders instead of wide DSP products), the square-root iteration, the divider, the
    (N·q − S1)·R multiplier and clamp, the FSM and counters.
    """
    k = layernorm_k(spec)
    steps = reciprocal_steps("layernorm", spec, log2_rows)
    root = isqrt_steps(spec, log2_rows)
    vbits = 2 * root
    nbits = log2_rows + 1
    s1_bits = len(q) + log2_rows + 1
    s2_bits = 2 * len(q) + log2_rows
    state = pyrtl.Register(3)
    count = pyrtl.Register(nbits)
    n = pyrtl.Register(nbits)
    s1 = pyrtl.Register(s1_bits)
    s2 = pyrtl.Register(s2_bits)
    mem, rdata = _row_buffer(log2_rows)
    ready = state == _LOAD
    accept = ready & valid
    reading = (state == _NORM) & (count < n)
    rdata.next <<= mem[count[:log2_rows]]
    mem[count[:log2_rows]] <<= pyrtl.MemBlock.EnabledWrite(sext(q, BUFFER_BITS), accept)
    sq = _smul(q, q, s2_bits)
    first = count == 0
    # V = N·S2 − S1²: operands loaded in _PASS, one bit of N and of |S1| a cycle in _MUL (both
    # products exact modulo 2^vbits, which V fits), the difference taken in _VAR
    mbits = variance_steps(spec, log2_rows)
    a1, a2 = pyrtl.Register(nbits), pyrtl.Register(mbits)
    b1, b2 = pyrtl.Register(vbits), pyrtl.Register(vbits)
    acc1, acc2 = pyrtl.Register(vbits), pyrtl.Register(vbits)
    mstep = pyrtl.Register(_bits(mbits))
    s1_mag = pyrtl.select(s1[-1], (~s1 + 1)[:s1_bits], s1).zero_extended(mbits)
    vshift = pyrtl.Register(vbits)
    res = pyrtl.Register(root)
    rem = pyrtl.Register(root + 1)
    rstep = pyrtl.Register(_bits(root))
    rem2 = pyrtl.concat(rem, vshift[vbits - 2 :])
    trial = pyrtl.concat(res, pyrtl.Const(1, bitwidth=2)).zero_extended(root + 3)
    fits = rem2 >= trial
    d = pyrtl.select(res == 0, pyrtl.Const(1, bitwidth=root), res)
    divider = _Divider(k, steps, d, start=(state == _ROOT) & (rstep == root - 1), run=state == _RECIP)
    # normalise: y = ⌊(N·q − S1)·R / 2^(K − out_frac)⌋, clamped
    num_bits = s1_bits + 1
    num = _sub(_smul(n.zero_extended(nbits + 1), rdata[: len(q)], num_bits), s1, num_bits)
    prod = pyrtl.signed_mult(num, divider.quot.zero_extended(steps + 1))
    y = _clamp_signed(_asr(prod, k - spec.out_frac), spec.out_bits)
    v1, last1 = _read_flags(reading, count, n)
    out_valid, out_data, out_last = _normalised_out(state, v1, last1, y)
    with pyrtl.conditional_assignment:
        with state == _LOAD, valid:
            count.next |= pyrtl.select(last, pyrtl.Const(0), count + 1)
            s1.next |= pyrtl.select(first, sext(q, s1_bits), _add(s1, q, s1_bits))
            s2.next |= pyrtl.select(first, sq, (s2 + sq)[:s2_bits])
            with last:
                n.next |= count + 1
                state.next |= _PASS
        with state == _PASS:
            a1.next |= n
            b1.next |= s2.zero_extended(vbits)
            a2.next |= s1_mag
            b2.next |= s1_mag.zero_extended(vbits)
            acc1.next |= 0
            acc2.next |= 0
            mstep.next |= 0
            state.next |= _MUL
        with state == _MUL:
            for a, b, acc in ((a1, b1, acc1), (a2, b2, acc2)):
                acc.next |= pyrtl.select(a[0], (acc + b)[:vbits], acc)
                a.next |= pyrtl.concat(pyrtl.Const(0, bitwidth=1), a[1:])
                b.next |= pyrtl.concat(b[: vbits - 1], pyrtl.Const(0, bitwidth=1))
            mstep.next |= mstep + 1
            with mstep == mbits - 1:
                state.next |= _VAR
        with state == _VAR:
            vshift.next |= (acc1 - acc2)[:vbits]
            res.next |= 0
            rem.next |= 0
            rstep.next |= 0
            state.next |= _ROOT
        with state == _ROOT:
            vshift.next |= pyrtl.concat(vshift[: vbits - 2], pyrtl.Const(0, bitwidth=2))
            res.next |= pyrtl.concat(res[: root - 1], fits)
            rem.next |= pyrtl.select(fits, (rem2 - trial)[: root + 3], rem2)[: root + 1]
            rstep.next |= rstep + 1
            with rstep == root - 1:
                state.next |= _RECIP
        _recip_and_normalise(state, divider, reading, count, out_last)
    return ready, out_valid, out_data


# ----------------------------------------------------------------------------- shift-and-add variants


def _shl(a: Wire, k: int) -> Wire:
    """a · 2^k of an unsigned ``a`` (wiring only; the result has ``len(a) + k`` bits)."""
    return pyrtl.concat(a, pyrtl.Const(0, bitwidth=k)) if k > 0 else a


def _floor_shift_unsigned(a: Wire, k: int) -> Wire:
    """⌊a · 2^k⌋ of an unsigned ``a`` for either sign of ``k`` (wiring only)."""
    if k >= 0:
        return _shl(a, k)
    return a[-k:] if -k < len(a) else pyrtl.Const(0)


def _shift_exp(m: Wire, in_frac: int) -> tuple[Wire, Callable[[Wire], Wire]]:
    """The shift exp of :func:`hwmodel.arch.intops.shift_exp` in two halves: returns u = m +
    (m >> 1) − (m >> 4) (two adders) and the function from (a register of) u to e
    (the 2^−r line by wiring and a subtractor, the ``>> min(z, 16)`` barrel shifter)."""
    mb = len(m)
    u = (m.zero_extended(mb + 1) + m[1:].zero_extended(mb + 1))[: mb + 1]
    if mb > 4:
        u = (u - m[4:].zero_extended(mb + 1))[: mb + 1]

    def exp_of(ru: Wire) -> Wire:
        z = ru[in_frac:] if in_frac < len(ru) else pyrtl.Const(0)
        fr = ru[:in_frac] if in_frac else pyrtl.Const(0)
        line = _floor_shift_unsigned(fr, CONST_FRAC - 1 - in_frac)
        p = (pyrtl.Const(1 << CONST_FRAC, bitwidth=CONST_FRAC + 1) - line)[: CONST_FRAC + 1]
        zc = pyrtl.select(
            z > CONST_FRAC + 1,
            pyrtl.Const(CONST_FRAC + 1, bitwidth=5),
            z[:5] if len(z) >= 5 else z.zero_extended(5),
        )
        return pyrtl.shift_right_logical(p, zc)

    return u, exp_of


def _square(u: Wire) -> Wire:
    """u² of an unsigned ``u`` (2·len(u) bits) by a shift-add squarer: the diagonal bits u_i·2^2i
    and, per bit i, (u_i AND u above i)·2^(2i+2), summed in a balanced adder tree (no ``*``
    net, so Yosys keeps it in the fabric). Latency: combinational. Area: about len(u)²/2
    adder bits and AND gates."""
    n = len(u)
    width = 2 * n
    zero = pyrtl.Const(0, bitwidth=1)
    terms = [pyrtl.concat_list([b for i in range(n) for b in (u[i], zero)]).zero_extended(width)]
    for i in range(n - 1):
        row = u[i + 1 :] & u[i].sign_extended(n - 1 - i)
        terms.append(_shl(row, 2 * i + 2).zero_extended(width))
    while len(terms) > 1:
        nxt = [(terms[j] + terms[j + 1])[:width] for j in range(0, len(terms) - 1, 2)]
        terms = nxt + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def _trial_subtract(shifted: Wire, d: Wire) -> tuple[Wire, Wire]:
    """One restoring-division step: (shifted ≥ d, (shifted − d) in ``len(d)`` bits), the comparison
    read off the subtractor's borrow (one carry chain, not two). ``shifted`` < 2·d."""
    width = len(d) + 2
    diff = (shifted.zero_extended(width) - d.zero_extended(width))[:width]
    return ~diff[-1], diff[: len(d)]


@dataclass(frozen=True)
class _Quotient:
    """Outputs of :func:`_divide_pipeline` (registers of its last stage)."""

    valid: Wire
    quotient: Wire
    rem_nonzero: Wire
    overflow: Wire
    carried: tuple[Wire, ...]


def _add_or_subtract(a: Wire, b: Wire, subtract: Wire) -> Wire:
    """a − b where ``subtract`` is high, else a + b (signed ``a``, unsigned ``b``; ``len(a)`` bits)
    in one carry chain: (a·2 + 1) + ((b XOR s)·2 + s), halved."""
    width = len(a) + 1
    operand = b.zero_extended(len(a)) ^ subtract.sign_extended(len(a))
    total = pyrtl.concat(a, pyrtl.Const(1, bitwidth=1)) + pyrtl.concat(operand, subtract)
    return total[1:width]


def _divide_pipeline(
    valid: Wire, dividend: Wire, divisor: Wire, qbits: int, carry: Sequence[Wire], pipelined_divisor: bool
) -> _Quotient:
    """Pipelined non-restoring division ⌊dividend / divisor⌋ (both unsigned, divisor ≥ 1) of
    ``qbits`` quotient bits, one element a cycle: the partial remainder starts at
    ⌊dividend / 2^qbits⌋ (``overflow`` when that is ≥ divisor: the quotient would not fit), then
    each step shifts in the next dividend bit and subtracts the divisor (remainder ≥ 0) or adds it
    back (remainder < 0); the quotient bit is the new remainder's sign inverted (the restoring
    quotient, bit for bit), the remainder is corrected only for ``rem_nonzero``.
    :data:`DIV_BITS_PER_CYCLE` steps per register stage. ``carry`` wires travel alongside; the
    divisor too where it changes per element (``pipelined_divisor``), else it must hold still
    while elements are in flight.

    Latency: :func:`hwmodel.arch.nonlinear.divider_latency` (⌈qbits / 2⌉) cycles. Area: qbits
    (len(divisor) + 2)-bit add/subtract chains (:func:`_add_or_subtract`, one LUT a bit), one
    comparator; per stage the remainder, the dividend bits still to come, the quotient bits so
    far and the carried wires in registers.
    """
    db = len(divisor)
    tail_bits = min(qbits, len(dividend))
    tail = dividend[:tail_bits].zero_extended(qbits)
    rem0 = dividend[qbits:] if qbits < len(dividend) else pyrtl.Const(0)
    width = max(len(rem0), db)
    overflow = rem0.zero_extended(width) >= divisor.zero_extended(width)
    rem = rem0.zero_extended(width)[:db].zero_extended(db + 1)  # signed, in [−divisor, divisor)
    quot: Wire = pyrtl.Const(0, bitwidth=qbits)
    v, carried, dv = valid, list(carry), divisor
    for stage in range(divider_latency(qbits)):
        for step in range(stage * DIV_BITS_PER_CYCLE, min((stage + 1) * DIV_BITS_PER_CYCLE, qbits)):
            shifted = pyrtl.concat(rem, tail[qbits - 1 - step])
            rem = _add_or_subtract(shifted, dv, ~rem[-1])[: db + 1]
            quot = pyrtl.concat(quot[: qbits - 1], ~rem[-1]) if qbits > 1 else ~rem[-1]
        regs = [pyrtl.Register(len(w)) for w in (v, rem, tail, quot, overflow, *carried)]
        for reg, w in zip(regs, (v, rem, tail, quot, overflow, *carried), strict=True):
            reg.next <<= w
        v, rem, tail, quot, overflow, *carried = regs
        if pipelined_divisor:
            reg_dv = pyrtl.Register(db)
            reg_dv.next <<= dv
            dv = reg_dv
    # the true remainder is rem (rem ≥ 0) or rem + divisor (rem < 0)
    back = _add(rem, dv.zero_extended(db + 1), db + 2)
    nonzero = pyrtl.select(rem[-1], back != 0, rem != 0)
    return _Quotient(v, quot, nonzero, overflow, tuple(carried))


def gelu_lane_shift(valid: Wire, q: Wire, spec: IntSpec) -> tuple[Wire, Wire]:
    """ShiftGELU of one element a cycle (:func:`hwmodel.arch.intops.shift_gelu`): returns
    (out_valid, out_data).

    Latency: :func:`hwmodel.arch.nonlinear.gelu_latency` (``L + 4``) cycles: |q| and T (stage 1),
    u = T·log2 e (2), w = 2^−u (3), the division h = ⌊a·2^k / (2^15 + w)⌋ (L stages of
    :func:`_divide_pipeline`, its divisor carried), q·2^(O−F) + h and the clamp (last). Area: no
    multiplier; five adders (T, u), the 2^−r subtractor and a 16-bit barrel shifter, the divider
    (in_bits + O − F subtract steps of 17 bits), the clamp; registers of the stages.
    """
    f = spec.in_frac
    k = shift_gelu_exponent(spec)
    b = len(q)
    # stage 1: a = |q|, T = a + (a >> 1) + (a >> 3) + (a >> 4)
    neg = q[-1]
    mag = pyrtl.select(neg, (~q + 1)[:b], q)
    tb = b + 1
    t = mag.zero_extended(tb) + mag[1:].zero_extended(tb)
    for s in (3, 4):
        if s < b:
            t = t + mag[s:].zero_extended(tb)
    t = t[:tb]
    r1 = [pyrtl.Register(1), pyrtl.Register(b), pyrtl.Register(b), pyrtl.Register(tb)]
    for reg, w in zip(r1, (valid, q, mag, t), strict=True):
        reg.next <<= w
    # stage 2: u; stage 3: w = e^{−T}
    u, exp_of = _shift_exp(r1[3], f)
    r2 = [pyrtl.Register(1), pyrtl.Register(b), pyrtl.Register(b), pyrtl.Register(len(u))]
    for reg, w in zip(r2, (r1[0], r1[1], r1[2], u), strict=True):
        reg.next <<= w
    e = exp_of(r2[3])
    r3 = [pyrtl.Register(1), pyrtl.Register(b), pyrtl.Register(b), pyrtl.Register(len(e))]
    for reg, w in zip(r3, (r2[0], r2[1], r2[2], e), strict=True):
        reg.next <<= w
    divisor = (pyrtl.Const(1 << CONST_FRAC, bitwidth=CONST_FRAC + 2) + r3[3])[: CONST_FRAC + 2]
    qbits = shift_quotient_bits("gelu", spec)
    div = _divide_pipeline(r3[0], _shl(r3[2], k), divisor, qbits, [r3[1]], pipelined_divisor=True)
    (qv,) = div.carried
    # last: y = h (q ≥ 0) or ⌊q·2^(O−F)⌋ + h (q < 0), clamped
    sh = spec.out_frac - f
    width = max(b + max(sh, 0), qbits) + 2
    base = _shl(qv, sh) if sh >= 0 else qv[min(-sh, b - 1) :]  # ⌊q·2^sh⌋, signed
    neg_y = _add(base, div.quotient.zero_extended(qbits + 1), width)
    y = pyrtl.select(qv[-1], neg_y, div.quotient.zero_extended(width))
    out_valid, out_data = pyrtl.Register(1), pyrtl.Register(spec.out_bits)
    out_valid.next <<= div.valid
    out_data.next <<= _clamp_signed(y, spec.out_bits)
    return out_valid, out_data


def softmax_lane_shift(
    valid: Wire, q: Wire, last: Wire, spec: IntSpec, log2_rows: int
) -> tuple[Wire, Wire, Wire]:
    """Shiftmax of one row at a time (:func:`hwmodel.arch.intops.shift_softmax`): returns (ready,
    out_valid, out_data).

    Timing as :func:`softmax_lane` without the reciprocal phase: load (N cycles), exp pass (the
    buffer read back, u = m + (m >> 1) − (m >> 4) in stage a, 2^−r and the shift in stage b, e
    written back and summed), then the normalise pass: each e read again goes through a
    pipelined divider ⌊e·2^O / S⌋ (L = ⌈(O + 1)/2⌉ stages, S held in its register) and the clamp.
    A row of N elements takes :func:`hwmodel.arch.nonlinear.row_cycles` (``3N + L + 5``) cycles.
    Area: no multiplier; the row buffer, the running max, the exp datapath (three adders, a
    subtractor, a 16-bit barrel shifter), the sum, the divider (O + 1 subtract steps of
    16 + log2_rows + 1 bits), the FSM and counters.
    """
    f = spec.in_frac
    nbits = log2_rows + 1
    dbits = len(q) + 1
    sum_bits = CONST_FRAC + 1 + log2_rows
    state = pyrtl.Register(3)
    count = pyrtl.Register(nbits)
    n = pyrtl.Register(nbits)
    qmax = pyrtl.Register(len(q))
    total = pyrtl.Register(sum_bits)
    mem, rdata = _row_buffer(log2_rows)
    ready = state == _LOAD
    accept = ready & valid
    reading = ((state == _PASS) | (state == _NORM)) & (count < n)
    rdata.next <<= mem[count[:log2_rows]]
    v1, last1 = _read_flags(reading, count, n)
    # exp stage a: u = m + (m >> 1) − (m >> 4), m = max − q ≥ 0
    m = _sub(qmax, rdata[: len(q)], dbits)[: dbits - 1]
    u, exp_of = _shift_exp(m, f)
    ra_u, v2, last2 = pyrtl.Register(len(u)), pyrtl.Register(1), pyrtl.Register(1)
    ra_u.next <<= u
    v2.next <<= v1 & (state == _PASS)
    last2.next <<= last1 & (state == _PASS)
    waddr2 = pyrtl.Register(log2_rows)
    waddr2.next <<= (count - 1)[:log2_rows]
    # exp stage b: e = (2^15 − ⌊f·2^14 / 2^F⌋) >> min(z, 16)
    e_reg, v3, last3, waddr3 = (
        pyrtl.Register(CONST_FRAC + 1),
        pyrtl.Register(1),
        pyrtl.Register(1),
        pyrtl.Register(log2_rows),
    )
    e_reg.next <<= exp_of(ra_u)
    v3.next <<= v2
    last3.next <<= last2
    waddr3.next <<= waddr2
    wen = accept | v3
    waddr = pyrtl.select(accept, count[:log2_rows], waddr3)
    wdata = pyrtl.select(accept, sext(q, BUFFER_BITS), e_reg.zero_extended(BUFFER_BITS))
    mem[waddr] <<= pyrtl.MemBlock.EnabledWrite(wdata, wen)
    # normalise: y = min(⌊e·2^O / S⌋, 2^out_bits − 1)
    norm1 = pyrtl.Register(1)
    norm1.next <<= state == _NORM
    qbits = shift_quotient_bits("softmax", spec)
    div = _divide_pipeline(
        v1 & norm1, _shl(rdata[: CONST_FRAC + 1], spec.out_frac), total, qbits, [last1 & norm1], False
    )
    top = (1 << spec.out_bits) - 1
    ny = div.quotient
    y = pyrtl.select(ny > top, pyrtl.Const(top, bitwidth=spec.out_bits), ny[: spec.out_bits])
    out_valid, out_data, out_last = pyrtl.Register(1), pyrtl.Register(spec.out_bits), pyrtl.Register(1)
    out_valid.next <<= div.valid
    out_last.next <<= div.valid & div.carried[0]
    out_data.next <<= y
    bigger = pyrtl.signed_gt(q, qmax)
    with pyrtl.conditional_assignment:
        with state == _LOAD, valid:
            count.next |= pyrtl.select(last, pyrtl.Const(0), count + 1)
            with count == 0:
                qmax.next |= q
            with pyrtl.otherwise:
                qmax.next |= pyrtl.select(bigger, q, qmax)
            with last:
                n.next |= count + 1
                state.next |= _PASS
                total.next |= 0
        with state == _PASS:
            count.next |= pyrtl.select(reading, count + 1, pyrtl.select(v3 & last3, 0, count))
            total.next |= pyrtl.select(v3, (total + e_reg)[:sum_bits], total)
            with v3 & last3:
                state.next |= _NORM
        with state == _NORM:
            with reading:
                count.next |= count + 1
            with out_last:
                state.next |= _LOAD
                count.next |= 0
    return ready, out_valid, out_data


_START = 7


class _SerialDivider:
    """Restoring division ⌊X / D⌋ of a held dividend X by a held divisor D with ``steps``
    quotient bits (X < D·2^steps), one bit a cycle while ``run`` is high; ``start`` loads the
    remainder with ⌊X / 2^steps⌋ and the dividend's low ``steps`` bits into a shift register.

    Area: a ``len(D) + 2``-bit subtractor (:func:`_trial_subtract`), remainder, dividend and
    quotient registers.
    """

    def __init__(self, x: Wire, d: Wire, steps: int, start: Wire, run: Wire) -> None:
        db = len(d)
        self.rem = pyrtl.Register(db)
        self.tail = pyrtl.Register(steps)
        self.quot = pyrtl.Register(steps)
        rem0 = x[steps:] if steps < len(x) else pyrtl.Const(0)
        shifted = pyrtl.concat(self.rem, self.tail[-1])
        take, diff = _trial_subtract(shifted, d)
        with pyrtl.conditional_assignment:
            with start:
                self.rem.next |= rem0.zero_extended(max(len(rem0), db))[:db]
                self.tail.next |= x[: min(steps, len(x))].zero_extended(steps)
                self.quot.next |= 0
            with run:
                self.rem.next |= pyrtl.select(take, diff, shifted[:db])
                self.tail.next |= pyrtl.concat(self.tail[: steps - 1], pyrtl.Const(0, bitwidth=1))
                self.quot.next |= pyrtl.concat(self.quot[: steps - 1], take)


def layernorm_lane_shift(
    valid: Wire, q: Wire, last: Wire, spec: IntSpec, log2_rows: int
) -> tuple[Wire, Wire, Wire]:
    """Shift-and-add LayerNorm (without γ, β) of one row at a time
    (:func:`hwmodel.arch.intops.shift_layernorm`): returns (ready, out_valid, out_data).

    Timing: load (u = q + 2^(in_bits−1), S1 += u, S2 += u² by :func:`_square`, N cycles);
    V = N·S2 − S1² by two shift-add multipliers as :func:`layernorm_lane` (M steps, a load and a
    difference cycle); the bitwise square root (S cycles); one start cycle, then M = ⌊S1·2^G / N⌋
    and Σ = ⌊√V·2^G / N⌋ by two serial dividers side by side (P = in_bits + G cycles);
    normalise: each u read again, (u·2^G − M)·2^O divided by max(Σ, 1) in a pipelined divider
    (L = ⌈out_bits / 2⌉ stages; magnitude, then the floor of a negative quotient), clamped. A
    row takes :func:`hwmodel.arch.nonlinear.row_cycles` (``2N + M + S + P + L + 5``) cycles.
    Area: no multiplier; the row buffer, S1/S2 accumulators and the squarer, the two shift-add
    multipliers, the square-root iteration, two serial dividers, the pipelined divider (out_bits
    subtract steps of in_bits + G + 1 bits), the clamp, the FSM and counters.
    """
    b = len(q)
    g = LN_GUARD
    root = isqrt_steps(spec, log2_rows)
    vbits = 2 * root
    nbits = log2_rows + 1
    s1_bits = b + log2_rows
    s2_bits = 2 * b + log2_rows
    state = pyrtl.Register(3)
    count = pyrtl.Register(nbits)
    n = pyrtl.Register(nbits)
    s1 = pyrtl.Register(s1_bits)
    s2 = pyrtl.Register(s2_bits)
    mem, rdata = _row_buffer(log2_rows)
    ready = state == _LOAD
    accept = ready & valid
    reading = (state == _NORM) & (count < n)
    rdata.next <<= mem[count[:log2_rows]]
    mem[count[:log2_rows]] <<= pyrtl.MemBlock.EnabledWrite(sext(q, BUFFER_BITS), accept)
    uq = pyrtl.concat(~q[-1], q[: b - 1])  # q + 2^(b−1), unsigned
    sq = _square(uq).zero_extended(s2_bits)
    first = count == 0
    mbits = variance_steps(spec, log2_rows)
    a1, a2 = pyrtl.Register(nbits), pyrtl.Register(mbits)
    b1, b2 = pyrtl.Register(vbits), pyrtl.Register(vbits)
    acc1, acc2 = pyrtl.Register(vbits), pyrtl.Register(vbits)
    mstep = pyrtl.Register(_bits(mbits))
    vshift = pyrtl.Register(vbits)
    res = pyrtl.Register(root)
    rem = pyrtl.Register(root + 1)
    rstep = pyrtl.Register(_bits(root))
    rem2 = pyrtl.concat(rem, vshift[vbits - 2 :])
    trial = pyrtl.concat(res, pyrtl.Const(1, bitwidth=2)).zero_extended(root + 3)
    fits = rem2 >= trial
    # mean and σ in G fraction bits: two serial divisions by N
    steps = mean_steps(spec)
    dstep = pyrtl.Register(_bits(steps))
    start, run = state == _START, state == _RECIP
    mean = _SerialDivider(_shl(s1, g), n, steps, start, run)
    sig = _SerialDivider(_shl(res, g), n, steps, start, run)
    sigma = pyrtl.select(sig.quot == 0, pyrtl.Const(1, bitwidth=steps), sig.quot)
    # normalise: y = ⌊(u·2^G − M)·2^O / Σ⌋, clamped
    ur = pyrtl.concat(~rdata[b - 1], rdata[: b - 1])
    num_bits = b + g + 1
    num = _sub(_shl(ur, g).zero_extended(num_bits), mean.quot.zero_extended(num_bits), num_bits)
    neg = num[-1]
    mag = pyrtl.select(neg, (~num + 1)[:num_bits], num)[: num_bits - 1]
    norm1 = pyrtl.Register(1)
    norm1.next <<= state == _NORM
    v1, last1 = _read_flags(reading, count, n)
    qbits = shift_quotient_bits("layernorm", spec)
    div = _divide_pipeline(
        v1 & norm1, _shl(mag, spec.out_frac), sigma, qbits, [last1 & norm1, neg], pipelined_divisor=False
    )
    last_d, neg_d = div.carried
    wide = qbits + 2
    quot = div.quotient.zero_extended(wide)
    floor_neg = (pyrtl.Const(0, bitwidth=wide) - quot - div.rem_nonzero.zero_extended(wide))[:wide]
    big = pyrtl.Const((1 << (qbits + 1)) - 1, bitwidth=wide)  # beyond any clamp, either sign
    y = pyrtl.select(
        div.overflow,
        pyrtl.select(neg_d, (~big + 1)[:wide], big),
        pyrtl.select(neg_d, floor_neg, quot),
    )
    out_valid, out_data, out_last = pyrtl.Register(1), pyrtl.Register(spec.out_bits), pyrtl.Register(1)
    out_valid.next <<= div.valid
    out_last.next <<= div.valid & last_d
    out_data.next <<= _clamp_signed(y, spec.out_bits)
    with pyrtl.conditional_assignment:
        with state == _LOAD, valid:
            count.next |= pyrtl.select(last, pyrtl.Const(0), count + 1)
            s1.next |= pyrtl.select(first, uq.zero_extended(s1_bits), (s1 + uq)[:s1_bits])
            s2.next |= pyrtl.select(first, sq, (s2 + sq)[:s2_bits])
            with last:
                n.next |= count + 1
                state.next |= _PASS
        with state == _PASS:
            a1.next |= n
            b1.next |= s2.zero_extended(vbits)
            a2.next |= s1.zero_extended(mbits)
            b2.next |= s1.zero_extended(vbits)
            acc1.next |= 0
            acc2.next |= 0
            mstep.next |= 0
            state.next |= _MUL
        with state == _MUL:
            for a, bb, acc in ((a1, b1, acc1), (a2, b2, acc2)):
                acc.next |= pyrtl.select(a[0], (acc + bb)[:vbits], acc)
                a.next |= pyrtl.concat(pyrtl.Const(0, bitwidth=1), a[1:])
                bb.next |= pyrtl.concat(bb[: vbits - 1], pyrtl.Const(0, bitwidth=1))
            mstep.next |= mstep + 1
            with mstep == mbits - 1:
                state.next |= _VAR
        with state == _VAR:
            vshift.next |= (acc1 - acc2)[:vbits]
            res.next |= 0
            rem.next |= 0
            rstep.next |= 0
            state.next |= _ROOT
        with state == _ROOT:
            vshift.next |= pyrtl.concat(vshift[: vbits - 2], pyrtl.Const(0, bitwidth=2))
            res.next |= pyrtl.concat(res[: root - 1], fits)
            rem.next |= pyrtl.select(fits, (rem2 - trial)[: root + 3], rem2)[: root + 1]
            rstep.next |= rstep + 1
            with rstep == root - 1:
                state.next |= _START
        with state == _START:
            dstep.next |= 0
            state.next |= _RECIP
        with state == _RECIP:
            dstep.next |= dstep + 1
            with dstep == steps - 1:
                state.next |= _NORM
        with state == _NORM:
            with reading:
                count.next |= count + 1
            with out_last:
                state.next |= _LOAD
                count.next |= 0
    return ready, out_valid, out_data


# ----------------------------------------------------------------------------- units


def build_unit(kind: str, spec: IntSpec, lanes: int, log2_rows: int, variant: str = "poly") -> None:
    """``lanes`` lanes of ``kind`` with named ports (``in_valid_{l}``, …) in the working block
    (``variant``: the kernel, :data:`hwmodel.arch.intops.VARIANTS`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown kernel variant {variant!r} (known: {', '.join(VARIANTS)})")
    shift = variant == "shift"
    for lane in range(lanes):
        valid = pyrtl.Input(1, f"in_valid_{lane}")
        q = pyrtl.Input(spec.in_bits, f"in_data_{lane}")
        out_valid = pyrtl.Output(1, f"out_valid_{lane}")
        out_data = pyrtl.Output(spec.out_bits, f"out_data_{lane}")
        if kind == "gelu":
            ov, od = (gelu_lane_shift if shift else gelu_lane)(valid, q, spec)
        else:
            last = pyrtl.Input(1, f"in_last_{lane}")
            ready = pyrtl.Output(1, f"ready_{lane}")
            if kind == "softmax":
                fn = softmax_lane_shift if shift else softmax_lane
            else:
                fn = layernorm_lane_shift if shift else layernorm_lane
            rd, ov, od = fn(valid, q, last, spec, log2_rows)
            ready <<= rd
        out_valid <<= ov
        out_data <<= od


@dataclass(frozen=True)
class UnitRun:
    """Outputs of a unit's simulation: per row the output codes, the cycles taken (first input
    to the cycle after the last output) and, per row, the cycle its first element was taken."""

    outputs: list[npt.NDArray[np.int64]]
    cycles: int
    starts: list[int]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def simulate_unit(
    kind: str,
    spec: IntSpec,
    rows: Sequence[npt.NDArray[np.int64]],
    lanes: int,
    log2_rows: int,
    variant: str = "poly",
) -> UnitRun:
    """Stream ``rows`` through a unit of ``lanes`` lanes (row i to lane i mod lanes, each element
    as soon as its lane is ready; GELU rows are just consecutive elements) and collect the
    outputs. Resets the PyRTL working block."""
    fresh_block()
    build_unit(kind, spec, lanes, log2_rows, variant)
    sim = pyrtl.FastSimulation()
    mask = (1 << spec.in_bits) - 1
    rowwise = kind != "gelu"
    # per lane: the queue of (value, last, row index, first) it streams
    queues: list[list[tuple[int, bool, int, bool]]] = [[] for _ in range(lanes)]
    for i, r in enumerate(rows):
        queues[i % lanes] += [(int(v), j == len(r) - 1, i, j == 0) for j, v in enumerate(r)]
    pos = [0] * lanes
    got: list[list[int]] = [[] for _ in range(lanes)]
    starts = [0] * len(rows)
    total = sum(len(r) for r in rows)
    cycle, last_out, done = 0, -1, 0
    limit = 100 * total + 10_000
    while done < total:
        inputs: dict[str, int] = {}
        for lane in range(lanes):
            item = queues[lane][pos[lane]] if pos[lane] < len(queues[lane]) else None
            inputs[f"in_valid_{lane}"] = int(item is not None)
            inputs[f"in_data_{lane}"] = item[0] & mask if item else 0
            if rowwise:
                inputs[f"in_last_{lane}"] = int(item[1]) if item else 0
        sim.step(inputs)
        for lane in range(lanes):
            # valid/ready handshake: the element is taken in a cycle where ready is high
            if pos[lane] < len(queues[lane]) and (not rowwise or sim.inspect(f"ready_{lane}")):
                _, _, row, first = queues[lane][pos[lane]]
                if first:
                    starts[row] = cycle
                pos[lane] += 1
            if sim.inspect(f"out_valid_{lane}"):
                raw = sim.inspect(f"out_data_{lane}")
                got[lane].append(_signed(raw, spec.out_bits) if kind != "softmax" else raw)
                last_out, done = cycle, done + 1
        cycle += 1
        if cycle > limit:
            raise RuntimeError(f"{kind} unit stalled after {cycle} cycles")
    outputs: list[npt.NDArray[np.int64]] = []
    taken = [0] * lanes
    for i, r in enumerate(rows):
        lane = i % lanes
        outputs.append(np.array(got[lane][taken[lane] : taken[lane] + len(r)], dtype=np.int64))
        taken[lane] += len(r)
    return UnitRun(outputs, last_out + 1, starts)


def unit_verilog(
    kind: str, spec: IntSpec, lanes: int, log2_rows: int, module_name: str = "toplevel", variant: str = "poly"
) -> str:
    """Verilog of a unit of ``lanes`` lanes (resets the PyRTL working block and builds it)."""
    fresh_block()
    build_unit(kind, spec, lanes, log2_rows, variant)
    return working_block_verilog(module_name)
