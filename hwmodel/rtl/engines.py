"""PyRTL generators of the weight-stationary compute engines (PyRTL rtllib style).

Every generator is a function from wires to wires that builds into the current working block;
:func:`build_engine` builds a whole :class:`hwmodel.arch.engine.EngineConfig` with named ports. Timing
(cycle 0 = the cycle a fold's first token is presented to row offset 0 of column 0; column ``c``
sees everything ``c`` cycles later through its activation hop registers):

**Fixed-point sub-array** (``f_`` ports): ``rows`` × ``cols_fixed`` DSP slices
(:mod:`hwmodel.rtl.dsp`). Rows are cut into cascade chains of ``chain_rows`` slices (the last may
be shorter); a row's *offset* is its place in its chain, counted so that every chain ends at
offset ``chain_rows − 1`` (right-aligned). Row ``r`` takes the activations of step i in cycle
``i + offset(r)`` (its feeder is skewed by its offset: ``f_a{r}_*`` are presented that late); the
chain sums of a token therefore leave all chains of a column in the same cycle. The weight words
of a column are shifted into the ``B1`` registers of all its rows (``f_load``, ``rows`` cycles,
bottom row first, column ``c``'s words ``c`` cycles after column 0's) and swapped into ``B2``
(``f_swap``, presented in the cycle after the fold's first token enters offset 0; it reaches
offset i of column c i + c cycles later). The column bottom separates each chain's lanes
(sequential borrow, :func:`separate_lanes`), registers them, sums the chains, registers the sum,
and adds the partial sum of the earlier k-folds (``f_ps{c}_{s}``, gated to 0 by ``f_first``) into
``f_out{c}_{s}``. A token presented at offset 0 in cycle e is on ``f_out`` of column c in cycle
``e + chain_rows + 5 + c``; ``f_req{c}`` is high one cycle earlier (the output buffer's read
request) and ``f_vld{c}`` in that cycle (``f_valid``/``f_first`` are presented with the token).

**Power-of-two sub-array** (``p_`` ports): ``rows`` × ``cols_pot`` shift-add PEs, one chain per
column (no lanes to overflow). The weight code ``sign << (b−1) | m`` (m = 0: zero, else
±2^(m−1)) is decoded once at the column top into (zero, sign, shift), shifted down the column's
load registers (``p_load``) and swapped into each PE's active register (``p_swap``, presented one
cycle *before* the fold's first token reaches row 0; row r of column c swaps r + c cycles later).
Row r adds ``±(a << shift)`` to the partial sum from the row above in the cycle the token is
presented to it (``i + r``); a token presented to row 0 in cycle e is on ``p_out{c}`` in cycle
``e + rows + c`` (``p_req{c}`` one cycle earlier, ``p_vld{c}`` in it).

Products and sums are exact up to ``acc_bits`` and wrap modulo 2^acc_bits (two's complement),
as does the integer reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyrtl

from hwmodel.arch.bits import bits_for
from hwmodel.arch.engine import FIXED_PIPELINE, EngineConfig, LaneMode, sum_bits
from hwmodel.rtl.dsp import ModelSlices, SliceBuilder, SliceIn, SliceOut, sext


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


def hold_register(value: pyrtl.WireVector, load: pyrtl.WireVector) -> pyrtl.Register:
    """A register that takes ``value`` in a cycle where ``load`` is high and keeps it otherwise.

    Latency: the new value is out the cycle after ``load``. Area: ``len(value)`` flip-flops (with
    their clock enable).
    """
    reg = pyrtl.Register(len(value))
    reg.next <<= pyrtl.select(load, value, reg)
    return reg


def hop_registers(x: pyrtl.WireVector, columns: int) -> list[pyrtl.WireVector]:
    """The value seen by each of ``columns`` PEs of a row: the input, then one register per hop.

    Area: ``(columns − 1) · len(x)`` flip-flops.
    """
    return delay_line(x, columns - 1)


@dataclass(frozen=True)
class ChainLayout:
    """How a column of ``rows`` slices is cut into cascade chains of at most ``chain_rows``."""

    #: place of each row in its chain, counted so that every chain ends at ``chain_rows − 1``
    offsets: tuple[int, ...]
    #: first row of each chain (its slice starts the sum: Z = 0)
    heads: tuple[int, ...]
    #: last row of each chain (its P leaves the column)
    bottoms: tuple[int, ...]


def chain_layout(rows: int, chain_rows: int) -> ChainLayout:
    """Chains of ``chain_rows`` slices from the top; the last one takes the remainder."""
    offsets: list[int] = []
    heads: list[int] = []
    bottoms: list[int] = []
    start = 0
    while start < rows:
        length = min(chain_rows, rows - start)
        offsets += [chain_rows - length + i for i in range(length)]
        heads.append(start)
        start += length
        bottoms.append(start - 1)
    return ChainLayout(tuple(offsets), tuple(heads), tuple(bottoms))


def separate_lanes(p: pyrtl.WireVector, mode: LaneMode, bits: int) -> list[pyrtl.WireVector]:
    """The signed lanes of a packed ``P`` (lane order of ``mode``), each ``bits`` wide.

    Lanes are peeled from the lowest offset up: a lane's field of ``P`` is too small by one when
    the lanes below it sum to a negative number (borrow), which is the case when the lane below
    is negative, or zero with a borrow of its own. Exact while every lane holds its sum
    (:meth:`hwmodel.arch.engine.LaneMode.chain_capacity`). Latency: combinational. Area: a ``bits``-wide
    incrementer per lane above the first and a zero detect per inner lane.
    """
    order = sorted(range(mode.lanes), key=lambda lane: mode.offsets[lane])
    out: dict[int, pyrtl.WireVector] = {}
    borrow: pyrtl.WireVector | None = None
    for lane in order:
        off = mode.offsets[lane]
        field = p[off : off + bits]
        value = field if borrow is None else (field + borrow)[:bits]
        out[lane] = value
        neg = value[bits - 1]
        borrow = neg if borrow is None else neg | ((value == 0) & borrow)
    return [out[lane] for lane in range(mode.lanes)]


def pot_decode(code: pyrtl.WireVector) -> pyrtl.WireVector:
    """Decoded PoT code ``{shift, sign, zero}``: shift = m − 1 (b − 1 bits), at the column top.

    Latency: combinational. Area: a (b − 1)-bit decrement and a zero detect, once per column.
    """
    b = len(code)
    m = code[: b - 1]
    zero = m == 0
    shift = (m - 1)[: b - 1]
    return pyrtl.concat(shift, code[b - 1], zero)


def pot_add(
    psum: pyrtl.WireVector, a: pyrtl.WireVector, decoded: pyrtl.WireVector, product_bits: int, width: int
) -> pyrtl.WireVector:
    """``psum ± (a << shift)`` (or ``psum`` for a zero code) in ``width`` bits, one adder.

    The shift happens in the product's own width (``product_bits``: act + max shift + 1, ≤ 15 for
    a 4-bit code and 8-bit activations), the result is sign-extended; the negation is the XOR with
    the sign plus the sign as carry-in. Latency: combinational. Area: a barrel shifter of
    ``product_bits`` × shift bits and one ``width``-bit adder (LUTs only).
    """
    zero, sign, shift = decoded[0], decoded[1], decoded[2:]
    shifted = pyrtl.shift_left_logical(sext(a, product_bits), shift)
    gated = pyrtl.select(zero, pyrtl.Const(0, product_bits), shifted)
    term = sext(gated ^ sext(sign, product_bits), width)
    return (sext(psum, width) + term + sign)[:width]


@dataclass(frozen=True)
class SubArrayPorts:
    """Per column: result words (one per slot), read request and valid."""

    out: list[list[pyrtl.WireVector]]
    req: list[pyrtl.WireVector]
    vld: list[pyrtl.WireVector]


def _column_flags(
    valid: pyrtl.WireVector, first: pyrtl.WireVector, latency: int, cols: int
) -> tuple[list[pyrtl.WireVector], list[pyrtl.WireVector], list[pyrtl.WireVector]]:
    """Per column: (req, vld, first) of the result leaving it ``latency + c`` cycles after the
    token entered; one shared diagonal line per flag."""
    v = delay_line(valid, latency + cols - 1)
    f = delay_line(first, latency + cols - 1)
    return (
        [v[latency - 1 + c] for c in range(cols)],
        [v[latency + c] for c in range(cols)],
        [f[latency + c] for c in range(cols)],
    )


def _accumulate(
    total: pyrtl.WireVector, psum: pyrtl.WireVector, first: pyrtl.WireVector, acc: int
) -> pyrtl.WireVector:
    """``total + (first ? 0 : psum)`` in ``acc`` bits: the output buffer's read-modify-write."""
    gated = pyrtl.select(first, pyrtl.Const(0, acc), psum)
    return (sext(total, acc) + gated)[:acc]


def fixed_subarray(
    a_in: Sequence[Sequence[pyrtl.WireVector]],
    w_in: Sequence[Sequence[pyrtl.WireVector]],
    load: pyrtl.WireVector,
    swap: pyrtl.WireVector,
    valid: pyrtl.WireVector,
    first: pyrtl.WireVector,
    mode_sel: pyrtl.WireVector | None,
    psum_in: Sequence[Sequence[pyrtl.WireVector]],
    engine: EngineConfig,
    slices: SliceBuilder,
) -> SubArrayPorts:
    """The fixed-point sub-array: ``a_in[r]`` = token fields of row r, ``w_in[c]`` = channel
    weights of column c, ``psum_in[c]`` = partial sums per slot (see module docstring).

    Latency: token at offset 0 → ``f_out`` after ``chain_rows + 5 + c`` cycles. Area: one DSP
    slice per PE; fabric: activation hops ``rows · (cols − 1) · tokens · act`` FF, per column a
    B-word packer, per chain the lane separation and a register per slot, a chain-sum tree, a
    register and the accumulate adder per slot; diagonal control lines.
    """
    rows, cols = engine.rows, engine.cols_fixed
    s = engine.slice
    modes = engine.modes
    quad = next((m for m in modes if m.lanes == 4), None)
    ab = engine.act_bits
    layout = chain_layout(rows, engine.chain_rows)
    offsets, bottoms = layout.offsets, set(layout.bottoms)

    def is_mode(mode: LaneMode) -> pyrtl.WireVector:
        if mode_sel is None:
            return pyrtl.Const(1, 1)
        return mode_sel == modes.index(mode)

    # left edge: token 1 of the 4-lane mode moves up to its own offset in the D word
    rows_fields: list[list[pyrtl.WireVector]] = []
    for r in range(rows):
        fields = list(a_in[r])
        if quad is not None and len(fields) == 2 and quad.d_shift > engine.d_base:
            up = quad.d_shift - engine.d_base
            shifted = pyrtl.concat(fields[1][: ab - up], pyrtl.Const(0, up))
            fields[1] = pyrtl.select(is_mode(quad), shifted, fields[1])
        rows_fields.append(fields)
    hops = [[hop_registers(f, cols) for f in fields] for fields in rows_fields]

    load_at = delay_line(load, cols - 1)
    swap_at = delay_line(swap, engine.chain_rows - 1 + cols - 1)

    # column top: the B word of the column (two channels packed in the 4-lane mode)
    b_words: list[pyrtl.WireVector] = []
    for c in range(cols):
        word = sext(w_in[c][0], s.b_bits)
        if quad is not None and len(w_in[c]) == 2:
            high = sext(pyrtl.concat(w_in[c][1], pyrtl.Const(0, quad.b_shift)), s.b_bits)
            packed = (word + high)[: s.b_bits]
            word = pyrtl.select(is_mode(quad), packed, word) if len(modes) > 1 else packed
        b_words.append(word)

    chain_p: list[list[pyrtl.WireVector]] = []
    for c in range(cols):
        above: SliceOut | None = None
        outs: list[pyrtl.WireVector] = []
        for r in range(rows):
            f0 = hops[r][0][c]
            d = pyrtl.Const(0, 1)
            if engine.tokens == 2:
                d = (
                    pyrtl.concat(hops[r][1][c], pyrtl.Const(0, engine.d_base))
                    if engine.d_base
                    else hops[r][1][c]
                )
            inputs = SliceIn(
                a=sext(f0, ab),
                d=sext(d, s.ad_bits),
                b=b_words[c] if r == 0 else None,
                ceb1=load_at[c],
                ceb2=swap_at[offsets[r] + c],
            )
            built = slices.build(f"dsp_r{r}_c{c}", inputs, above, r in layout.heads, r in bottoms)
            if r in bottoms:
                assert built.p is not None
                outs.append(built.p)
            above = built
        chain_p.append(outs)

    req, vld, first_at = _column_flags(valid, first, engine.chain_rows + FIXED_PIPELINE, cols)
    widths, sums, acc = engine.lane_register_bits(), engine.column_register_bits(), engine.acc_bits
    out: list[list[pyrtl.WireVector]] = []
    for c in range(cols):
        sep: list[list[pyrtl.WireVector]] = []  # per chain, per slot
        for p in chain_p[c]:
            choices: list[list[tuple[LaneMode, pyrtl.WireVector]]] = [[] for _ in range(engine.slots)]
            for mode in modes:
                exact = sum_bits(engine.chain_rows, mode.weight_bits, mode.act_bits)
                for lane, value in enumerate(separate_lanes(p, mode, exact)):
                    t, ch = divmod(lane, mode.channels)
                    choices[t * engine.channels + ch].append((mode, value))
            regs = []
            for slot, options in enumerate(choices):
                width = widths[slot]
                value = sext(options[0][1], width)
                if len(modes) > 1:
                    value = pyrtl.Const(0, width)
                    for mode, v in options:
                        value = pyrtl.select(is_mode(mode), sext(v, width), value)
                reg = pyrtl.Register(width)
                reg.next <<= value
                regs.append(reg)
            sep.append(regs)
        col_out = []
        for slot in range(engine.slots):
            colb = sums[slot]
            total = sext(sep[0][slot], colb)
            for j in range(1, len(sep)):
                total = (total + sext(sep[j][slot], colb))[:colb]
            tree = pyrtl.Register(colb)
            tree.next <<= total
            col_out.append(_accumulate(tree, psum_in[c][slot], first_at[c], acc))
        out.append(col_out)
    return SubArrayPorts(out=out, req=req, vld=vld)


def pot_subarray(
    a_in: Sequence[pyrtl.WireVector],
    code_in: Sequence[pyrtl.WireVector],
    load: pyrtl.WireVector,
    swap: pyrtl.WireVector,
    valid: pyrtl.WireVector,
    first: pyrtl.WireVector,
    psum_in: Sequence[pyrtl.WireVector],
    engine: EngineConfig,
) -> SubArrayPorts:
    """The power-of-two sub-array (see module docstring).

    Latency: token at row 0 → ``p_out`` after ``rows + c`` cycles. Area (FF): activation hops
    ``rows · (cols − 1) · act``, two decoded codes ``(b + 1)`` per PE, the partial sums
    (``pot_sum_bits(r + 1)`` at row r), diagonal control lines; LUT: per PE a barrel shifter and
    one adder, per column a code decoder and the accumulate adder.
    """
    rows, cols = engine.rows, engine.cols_pot
    hops = [hop_registers(a_in[r], cols) for r in range(rows)]
    load_at = delay_line(load, cols - 1)
    swap_at = delay_line(swap, rows - 1 + cols - 1)
    req, vld, first_at = _column_flags(valid, first, rows, cols)
    out = []
    for c in range(cols):
        dec = pot_decode(code_in[c])
        psum: pyrtl.WireVector | None = None
        prev_load: pyrtl.WireVector = dec
        for r in range(rows):
            ld = pyrtl.Register(len(dec))
            ld.next <<= pyrtl.select(load_at[c], prev_load, ld)
            active = pyrtl.Register(len(dec))
            active.next <<= pyrtl.select(swap_at[r + c], ld, active)
            prev_load = ld
            width = engine.pot_sum_bits(r + 1)
            reg = pyrtl.Register(width)
            start = psum if psum is not None else pyrtl.Const(0, 1)
            reg.next <<= pot_add(start, hops[r][c], active, engine.pot_sum_bits(1), width)
            psum = reg
        assert psum is not None
        out.append([_accumulate(psum, psum_in[c], first_at[c], engine.acc_bits)])
    return SubArrayPorts(out=out, req=req, vld=vld)


def build_engine(engine: EngineConfig, slices: SliceBuilder | None = None) -> None:
    """Build ``engine`` with named top-level ports into the (fresh) working block.

    ``slices`` decides what a DSP slice is: the PyRTL model (default, for simulation) or a
    primitive at the fabric boundary (:class:`hwmodel.rtl.dsp.PrimitiveSlices`, for export).
    Ports: see the module docstring; ``f_mode`` (when the engine has several packing modes)
    selects ``engine.modes[f_mode]`` and must not change while results are in flight.
    """
    ab, acc = engine.act_bits, engine.acc_bits
    if engine.cols_fixed:
        builder = slices if slices is not None else ModelSlices(engine.slice)
        channels = engine.channels
        a_in = [[pyrtl.Input(ab, f"f_a{r}_{t}") for t in range(engine.tokens)] for r in range(engine.rows)]
        w_in = [
            [pyrtl.Input(engine.weight_bits, f"f_w{c}_{ch}") for ch in range(channels)]
            for c in range(engine.cols_fixed)
        ]
        mode = pyrtl.Input(bits_for(len(engine.modes)), "f_mode") if len(engine.modes) > 1 else None
        ps = [
            [pyrtl.Input(acc, f"f_ps{c}_{s}") for s in range(engine.slots)] for c in range(engine.cols_fixed)
        ]
        ports = fixed_subarray(
            a_in,
            w_in,
            pyrtl.Input(1, "f_load"),
            pyrtl.Input(1, "f_swap"),
            pyrtl.Input(1, "f_valid"),
            pyrtl.Input(1, "f_first"),
            mode,
            ps,
            engine,
            builder,
        )
        _name_outputs("f", ports, acc)
    if engine.cols_pot:
        ports = pot_subarray(
            [pyrtl.Input(ab, f"p_a{r}") for r in range(engine.rows)],
            [pyrtl.Input(engine.pot_weight_bits, f"p_w{c}") for c in range(engine.cols_pot)],
            pyrtl.Input(1, "p_load"),
            pyrtl.Input(1, "p_swap"),
            pyrtl.Input(1, "p_valid"),
            pyrtl.Input(1, "p_first"),
            [pyrtl.Input(acc, f"p_ps{c}") for c in range(engine.cols_pot)],
            engine,
        )
        _name_outputs("p", ports, acc)


def _name_outputs(prefix: str, ports: SubArrayPorts, acc: int) -> None:
    for c, words in enumerate(ports.out):
        for s, word in enumerate(words):
            name = f"{prefix}_out{c}_{s}" if prefix == "f" else f"{prefix}_out{c}"
            o = pyrtl.Output(acc, name)
            o <<= word
        for flag, wire in (("req", ports.req[c]), ("vld", ports.vld[c])):
            o = pyrtl.Output(1, f"{prefix}_{flag}{c}")
            o <<= wire
