"""PyRTL generators of the output-stationary compute engines (PyRTL rtllib style).

Every generator is a function from wires to wires; it builds into the current working block. The
timing follows ``hwmodel.cycles`` exactly:

* ``a_in[r]`` / ``w_in[c]`` are the *unskewed* edge streams (element k of every row / column is
  presented in the same cycle); the skew feeders inside delay row ``r`` by ``r`` and column ``c``
  by ``c`` registers. PE(r, c) multiplies operand pair k combinationally in cycle ``k + r + c``
  (cycle 0 = the cycle the harness presents k = 0) and accumulates at the end of that cycle.
* ``first`` / ``last`` mark k = 0 / k = tk − 1. They travel down one shared diagonal delay line
  (stage ``d`` is seen by every PE with r + c = d). ``first`` loads the accumulator from the PE's
  preload register instead of the running sum (partial sums of Tk < K); ``last`` copies the
  finished sum into the PE's shadow register. ``done`` is ``last`` at the corner PE(R−1, C−1): it
  is high in the last cycle of the fold, cycle ``tk + R + C − 3``, so a fold takes
  ``tk + R + C − 2`` cycles.
* Readout (``rd_row``): each column outputs the shadow register of row ``rd_row``; a fold's
  shadows are stable from the cycle after ``done`` for at least R cycles, so one row per cycle is
  read while the next fold computes. Preload (``pl_we``, ``pl_row``, ``pl_data[c]``) writes the
  preload registers of one row per cycle.
* Fixed-point DSP packing (Xilinx WP486): two neighbouring PEs of a row (columns 2j, 2j + 1) share
  the activation and one wide signed multiplier ``a · (w_hi·2^S + w_lo)``, S = act + weight bits;
  the low product is ``P[0:S]`` (signed), the high one ``P[S:] + P[S−1]`` (sign correction). Both
  lanes multiply at column 2j + 1's time: the high lane uses column 2j's weight from its forward
  register (one cycle later) and column 2j + 1's flags, so the corner timing is unchanged.
* Power-of-two PEs: a b-bit weight code is ``sign << (b−1) | m``; m = 0 is zero, otherwise the
  weight is ±2^(m−1) (= ±2^(e − e_min), scaled by 2^e_min outside), the product a shift + add.

Products and sums wrap modulo 2^acc_bits (two's complement), as does the numpy reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pyrtl

Scheme = Literal["fixed", "pot"]
SCHEMES: tuple[Scheme, ...] = ("fixed", "pot")


def _bits_for(values: int) -> int:
    """Bits of an unsigned index that takes ``values`` distinct values (≥ 1)."""
    return max(1, (values - 1).bit_length())


def _sext(w: pyrtl.WireVector, width: int) -> pyrtl.WireVector:
    """Sign-extend or truncate ``w`` to ``width`` bits (two's complement wrap)."""
    if len(w) >= width:
        return w[:width]
    return w.sign_extended(width)


def delay_line(x: pyrtl.WireVector, stages: int) -> list[pyrtl.WireVector]:
    """Taps 0..stages of a register chain on ``x`` (tap 0 is ``x`` itself).

    Latency: tap d lags by d cycles. Area: ``stages · len(x)`` flip-flops.
    """
    taps = [x]
    for _ in range(stages):
        r = pyrtl.Register(len(x))
        r.next <<= taps[-1]
        taps.append(r)
    return taps


def skew_feeder(streams: Sequence[pyrtl.WireVector]) -> list[pyrtl.WireVector]:
    """Delay stream i by i registers (the systolic input skew).

    Latency: i cycles on lane i. Area: Σ i · width flip-flops = width · n(n−1)/2.
    """
    return [delay_line(s, i)[-1] for i, s in enumerate(streams)]


def fixed_product(a: pyrtl.WireVector, w: pyrtl.WireVector, acc_bits: int) -> pyrtl.WireVector:
    """Signed a · w sign-extended (or wrapped) to ``acc_bits``.

    Latency: combinational. Area: one DSP slice when the product is ≥ 9 bits wide (the operand
    is sign-extended so that Yosys maps it to a DSP instead of a LUT multiplier).
    """
    wa = len(a)
    w_ext = _sext(w, max(len(w), 9 - wa))
    return _sext(pyrtl.signed_mult(a, w_ext), acc_bits)


def packed_pair_products(
    a: pyrtl.WireVector, w_hi: pyrtl.WireVector, w_lo: pyrtl.WireVector, acc_bits: int
) -> tuple[pyrtl.WireVector, pyrtl.WireVector]:
    """(a · w_hi, a · w_lo) from ONE signed multiply ``a · (w_hi·2^S + w_lo)`` (WP486 packing).

    S = len(a) + len(w). The packed operand is S + len(w) + 1 bits (≤ 27 for a DSP48E2 A port:
    act + 2·weight bits ≤ 26). Latency: combinational. Area: one DSP slice, a few LUTs for the
    packing add and the sign correction of the high lane.
    """
    wb = len(w_lo)
    if len(w_hi) != wb:
        raise ValueError("packed lanes need equal weight widths")
    s = len(a) + wb
    width = s + wb + 1
    packed = (pyrtl.concat(w_hi, pyrtl.Const(0, bitwidth=s)).sign_extended(width) + _sext(w_lo, width))[
        :width
    ]
    p = pyrtl.signed_mult(a, packed)
    lo = p[:s]
    hi = (p[s:] + p[s - 1])[: s + 1]
    return _sext(hi, acc_bits), _sext(lo, acc_bits)


def pot_product(a: pyrtl.WireVector, code: pyrtl.WireVector, acc_bits: int) -> pyrtl.WireVector:
    """±(a << (m − 1)) or 0 for a power-of-two weight code ``sign << (b−1) | m`` (no multiplier).

    Latency: combinational. Area: a barrel shifter of acc_bits × ⌈log2 shift⌉ muxes, a negation,
    LUTs only.
    """
    b = len(code)
    sign = code[b - 1]
    m = code[: b - 1]
    is_zero = m == 0
    shamt = (m - 1)[: b - 1]
    a_ext = _sext(a, acc_bits)
    lg = _bits_for(acc_bits)
    if len(shamt) > lg:
        too_far = shamt[lg:] != 0
        shifted = pyrtl.select(
            too_far, pyrtl.Const(0, bitwidth=acc_bits), pyrtl.shift_left_logical(a_ext, shamt[:lg])
        )
    else:
        shifted = pyrtl.shift_left_logical(a_ext, shamt)
    neg = (~shifted + 1)[:acc_bits]
    signed_val = pyrtl.select(sign, neg, shifted)
    return pyrtl.select(is_zero, pyrtl.Const(0, bitwidth=acc_bits), signed_val)


@dataclass(frozen=True)
class PeState:
    """The three accumulator-wide registers of one PE lane."""

    acc: pyrtl.Register
    shadow: pyrtl.Register
    preload: pyrtl.Register


def pe_accumulate(
    product: pyrtl.WireVector,
    first: pyrtl.WireVector,
    last: pyrtl.WireVector,
    preload_we: pyrtl.WireVector,
    preload_data: pyrtl.WireVector,
) -> PeState:
    """Accumulator, shadow and preload registers of one PE lane.

    ``acc ← (first ? preload : acc) + product``; ``shadow ← last ? that sum : shadow``;
    ``preload ← preload_we ? preload_data : preload``. Latency: 1 cycle. Area: 3·acc_bits FF,
    one acc_bits adder + muxes.
    """
    acc_bits = len(product)
    acc = pyrtl.Register(acc_bits)
    shadow = pyrtl.Register(acc_bits)
    pre = pyrtl.Register(acc_bits)
    total = (pyrtl.select(first, pre, acc) + product)[:acc_bits]
    acc.next <<= total
    shadow.next <<= pyrtl.select(last, total, shadow)
    pre.next <<= pyrtl.select(preload_we, preload_data, pre)
    return PeState(acc=acc, shadow=shadow, preload=pre)


@dataclass(frozen=True)
class ArrayPorts:
    """Outputs of one systolic sub-array: per-column readout words and the fold-done flag."""

    out_cols: list[pyrtl.WireVector]
    done: pyrtl.WireVector


def systolic_array(
    a_in: Sequence[pyrtl.WireVector],
    w_in: Sequence[pyrtl.WireVector],
    first: pyrtl.WireVector,
    last: pyrtl.WireVector,
    pl_we: pyrtl.WireVector,
    pl_row: pyrtl.WireVector,
    pl_data: Sequence[pyrtl.WireVector],
    rd_row: pyrtl.WireVector,
    *,
    scheme: Scheme,
    acc_bits: int,
    lanes_per_multiplier: int = 1,
) -> ArrayPorts:
    """Output-stationary R×C array (R = len(a_in), C = len(w_in)) of fixed or PoT PEs.

    Latency: a fold of depth tk takes tk + R + C − 2 cycles (``done`` high in its last cycle);
    readout of the shadows is overlapped with the next fold. Area (flip-flops): 3·acc_bits per PE,
    act bits per horizontal hop R(C−1), weight bits per vertical hop (R−1)C (+1 per packed pair in
    the last row), skew feeders act·R(R−1)/2 + weight·C(C−1)/2, 2(R+C−2) flag bits;
    DSP (fixed): R·⌈C/2⌉ when ``lanes_per_multiplier`` = 2, else R·C; PoT: none.
    """
    rows, cols = len(a_in), len(w_in)
    if rows < 1 or cols < 1:
        raise ValueError("array needs at least one row and one column")
    if lanes_per_multiplier not in (1, 2):
        raise ValueError("lanes_per_multiplier must be 1 or 2")
    if scheme == "pot" and lanes_per_multiplier != 1:
        raise ValueError("power-of-two PEs have no multiplier to pack")
    flags_first = delay_line(first, rows + cols - 2)
    flags_last = delay_line(last, rows + cols - 2)
    a_skewed = skew_feeder(a_in)
    w_skewed = skew_feeder(w_in)
    # a_at[r][c]: activation seen by PE(r, c); w_at[r][c]: weight seen by PE(r, c).
    a_at: list[list[pyrtl.WireVector]] = []
    for r in range(rows):
        line = [a_skewed[r]]
        for _ in range(1, cols):
            reg = pyrtl.Register(len(a_skewed[r]))
            reg.next <<= line[-1]
            line.append(reg)
        a_at.append(line)
    w_at: list[list[pyrtl.WireVector]] = [list(w_skewed)]
    for _ in range(1, rows):
        nxt = []
        for c in range(cols):
            reg = pyrtl.Register(len(w_skewed[c]))
            reg.next <<= w_at[-1][c]
            nxt.append(reg)
        w_at.append(nxt)

    shadows: list[list[pyrtl.WireVector]] = [[] for _ in range(cols)]
    for r in range(rows):
        we_row = pl_we & (pl_row == r)
        c = 0
        while c < cols:
            if scheme == "fixed" and lanes_per_multiplier == 2 and c + 1 < cols:
                # high lane = column c, using its weight one cycle later (forward register)
                if r + 1 < rows:
                    w_hi_reg = w_at[r + 1][c]  # column c's forward register
                else:
                    w_hi_reg = pyrtl.Register(len(w_at[r][c]))
                    w_hi_reg.next <<= w_at[r][c]
                hi, lo = packed_pair_products(a_at[r][c + 1], w_hi_reg, w_at[r][c + 1], acc_bits)
                stage = r + c + 1
                for lane, prod in ((c, hi), (c + 1, lo)):
                    st = pe_accumulate(prod, flags_first[stage], flags_last[stage], we_row, pl_data[lane])
                    shadows[lane].append(st.shadow)
                c += 2
                continue
            if scheme == "fixed":
                prod = fixed_product(a_at[r][c], w_at[r][c], acc_bits)
            else:
                prod = pot_product(a_at[r][c], w_at[r][c], acc_bits)
            st = pe_accumulate(prod, flags_first[r + c], flags_last[r + c], we_row, pl_data[c])
            shadows[c].append(st.shadow)
            c += 1

    out_cols = []
    for c in range(cols):
        if rows == 1:
            out_cols.append(shadows[c][0])
        else:
            out_cols.append(pyrtl.mux(rd_row, *shadows[c], default=pyrtl.Const(0, acc_bits)))
    return ArrayPorts(out_cols=out_cols, done=flags_last[rows + cols - 2])


@dataclass(frozen=True)
class EngineConfig:
    """One mixed engine: a fixed sub-array rows × cols_fixed and a PoT sub-array rows × cols_pot.

    ``fixed_lanes_per_dsp`` is the DSP packing the RTL implements (1: one multiplier per PE,
    2: WP486 pairs); :func:`model_lanes_per_dsp` gives what the analytic model claims.
    """

    rows: int
    cols_fixed: int
    cols_pot: int
    weight_bits: int
    pot_weight_bits: int
    act_bits: int
    acc_bits: int
    fixed_lanes_per_dsp: int = 1

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols_fixed < 0 or self.cols_pot < 0:
            raise ValueError("rows must be ≥ 1 and column counts ≥ 0")
        if self.cols_fixed + self.cols_pot == 0:
            raise ValueError("engine needs at least one column")
        if min(self.weight_bits, self.act_bits) < 2 or self.pot_weight_bits < 2:
            raise ValueError("operands need at least 2 bits (sign + magnitude)")
        if self.acc_bits < self.act_bits + 1:
            raise ValueError("acc_bits must exceed act_bits")
        if self.fixed_lanes_per_dsp not in (1, 2):
            raise ValueError("fixed_lanes_per_dsp must be 1 or 2")

    def sub_arrays(self) -> list[tuple[str, Scheme, int, int]]:
        """(port prefix, scheme, columns, weight bits) of the non-empty sub-arrays."""
        subs: list[tuple[str, Scheme, int, int]] = []
        if self.cols_fixed:
            subs.append(("f", "fixed", self.cols_fixed, self.weight_bits))
        if self.cols_pot:
            subs.append(("p", "pot", self.cols_pot, self.pot_weight_bits))
        return subs

    @property
    def name(self) -> str:
        return (
            f"r{self.rows}_f{self.cols_fixed}w{self.weight_bits}_p{self.cols_pot}"
            f"w{self.pot_weight_bits}_a{self.act_bits}_acc{self.acc_bits}_l{self.fixed_lanes_per_dsp}"
        )


def model_lanes_per_dsp(weight_bits: int, act_bits: int, dsp_type: str = "DSP48E2") -> int:
    """PEs per multiplier the analytic model (``hwmodel.cost``) claims at these widths."""
    from hwmodel.cost import load_coefficients, macs_per_dsp

    per = macs_per_dsp(weight_bits, act_bits, dsp_type, load_coefficients())
    if per > 2:
        raise ValueError(f"model claims {per} MACs per DSP; the RTL implements at most 2")
    return max(per, 1)


def build_engine(config: EngineConfig) -> None:
    """Build the mixed engine with named top-level ports into the (fresh) working block.

    Ports per sub-array prefix ``f`` (fixed) / ``p`` (PoT): inputs ``{p}_a{r}``, ``{p}_w{c}``,
    ``{p}_first``, ``{p}_last``, ``{p}_pl_we``, ``{p}_pl_row``, ``{p}_pl{c}``, ``{p}_rd_row``;
    outputs ``{p}_out{c}`` and ``{p}_done``. The two sub-arrays read the same A tile through their
    own row feeders, so their folds run independently (the tile takes the max).
    """
    rows = config.rows
    idx_bits = _bits_for(rows)
    for prefix, scheme, cols, wbits in config.sub_arrays():
        a_in = [pyrtl.Input(config.act_bits, f"{prefix}_a{r}") for r in range(rows)]
        w_in = [pyrtl.Input(wbits, f"{prefix}_w{c}") for c in range(cols)]
        first = pyrtl.Input(1, f"{prefix}_first")
        last = pyrtl.Input(1, f"{prefix}_last")
        pl_we = pyrtl.Input(1, f"{prefix}_pl_we")
        pl_row = pyrtl.Input(idx_bits, f"{prefix}_pl_row")
        pl_data = [pyrtl.Input(config.acc_bits, f"{prefix}_pl{c}") for c in range(cols)]
        rd_row = pyrtl.Input(idx_bits, f"{prefix}_rd_row")
        ports = systolic_array(
            a_in,
            w_in,
            first,
            last,
            pl_we,
            pl_row,
            pl_data,
            rd_row,
            scheme=scheme,
            acc_bits=config.acc_bits,
            lanes_per_multiplier=config.fixed_lanes_per_dsp if scheme == "fixed" else 1,
        )
        for c, word in enumerate(ports.out_cols):
            out = pyrtl.Output(config.acc_bits, f"{prefix}_out{c}")
            out <<= word
        done = pyrtl.Output(1, f"{prefix}_done")
        done <<= ports.done
