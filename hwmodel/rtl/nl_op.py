"""PyRTL generator of the non-linear op unit: a ``layernorm`` / ``softmax`` / ``gelu`` descriptor run
from DRAM to DRAM, bit for bit as :func:`codesign.program._execute.nonlinear_op`: the ``m`` rows of
``n`` codes of operand ``a`` read through the tile DMA (each clamped to ``in_bits`` first: the
24-bit residual stream into a 16-bit LayerNorm), streamed through the lanes of
:mod:`hwmodel.rtl.nonlinear` of the descriptor's kernel ``variant`` and formats, rescaled per column
by the requantization lane (:func:`hwmodel.rtl.requant.requant_lane`, the GEMM epilogue's; tables
as :mod:`hwmodel.rtl.epilogue` fetches them) or, with :data:`~hwmodel.arch.program.F_LOG2`, put on
the log2 grid (:func:`log2_quantizer`), and written to ``c`` row by row.

**Build** (:class:`NlOpSpec`): the set of (kind, variant, :class:`~hwmodel.arch.intops.IntSpec`)
the program uses (:func:`program_units`; each gets ``lanes`` lanes of its own), the lanes' row
buffers (``log2_rows``), the unit's row buffers and tables (rows of up to ``2^log2_cols``), the
log2 quantizer (``log2``, fractions up to ``log2_frac``), the reader's and the writer's DMA builds.
A descriptor the build lacks (no unit of its kind, variant and formats; a row longer than the
buffers; per-row offsets; log2 without the quantizer) raises ``error`` (held until the next
``op_start``) and ``done`` two cycles after ``op_start``, and touches nothing.

**Ports** (:func:`nl_op`): ``op_start``, the descriptor's fields ``d`` (held from ``op_start``),
one AXI4 read and one write channel; out ``done`` (a pulse after the last row's write response),
``busy``, ``error``.

**Structure and cycles** (L = DRAM latency, one beat a cycle, ``R`` = lanes):

1. tables: ``mult``, ``shift``, ``offset`` of the ``n`` columns (or the per-tensor pair) through the
   reader (``1 + L + beats + 1`` cycles each, one more a step); none with ``F_LOG2``.
2. rows: groups of ``R`` rows (row i to lane i mod R), one reader transfer a group as soon as
   those lanes' input row buffers are free (each lane's buffer is free once its row is fed);
3. per lane: its row is fed to the kernel lane, one element a cycle while the lane is ready (once
   the lane's output row buffer is free), the lane's outputs (softmax ``3N + Q + 5``, LayerNorm
   ``2N + M + S + Q + 4`` cycles a row, GELU ``N`` + 4 or 12: :mod:`hwmodel.rtl.nonlinear`) go
   through the rescale or the log2 quantizer (3 stages) into the lane's output row buffer;
4. the writer writes finished rows, one transfer each (lowest lane first):
   :func:`hwmodel.arch.dma.write_cycles` of a one-row window and two more.

A lane takes its next row only after its row is written (single output buffers), so a lane's
row costs its kernel's row time plus the feed and the write; the lanes overlap one another.
Measured (``tests/test_rtl_nl_op.py``'s tiny ViT, 128-bit bus, DRAM latency 8; 1 / 2 / 4 lanes):
W8A8 poly LayerNorm, 17 rows of 24: 2,796 / 1,524 / 888 cycles (one lane: 164 a row); softmax,
34 rows of 17: 3,684 / 1,883 / 1,027 (108 a row); GELU, 17 rows of 96: 2,706 / 1,802 / 1,326 (159
a row); W4A8P0.5 shift kernels with 2 lanes: LayerNorm 1,416, log2 softmax 1,523, GELU 1,810.

**Area**: the lanes (:mod:`hwmodel.rtl.nonlinear`, ``R`` per unit of the build), ``R``
requantization lanes (4 DSP48E2 each), the log2 comparators, per lane an input and an output row
buffer (``2^log2_cols`` × ``in_bits`` / 32 bits), the tables (32 + 6 + 62 bits a column, ``R``
read ports), the reader and the writer. Yosys 0.70 (``synth_xilinx -family xcup``) of the tiny
ViT's W8A8 build (poly LayerNorm, softmax and GELU, 2 lanes each, ``log2_rows`` 5, ``log2_cols``
7, no log2, 128-bit bus): 12,759 LUT, 3,435 FF, 70 DSP48E2, 102 LUT-RAM cells, no BRAM (74 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import isqrt
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.dma import DmaConfig, Window, check_write_alignment
from hwmodel.arch.dyadic import MULT_BITS, OFFSET_BITS, SHIFT_BITS
from hwmodel.arch.intops import VARIANTS, IntSpec
from hwmodel.arch.program import F_LOG2, F_OFFSET_PER_ROW, OPCODES, Descriptor
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import (
    ElementStream,
    ReadChannel,
    Reader,
    WriteChannel,
    Writer,
    read_channel_inputs,
    reader,
    write_channel_inputs,
    writer,
)
from hwmodel.rtl.dram import Dram
from hwmodel.rtl.dsp import sext
from hwmodel.rtl.engines import hold_register
from hwmodel.rtl.epilogue import ACC_BITS, Banks, StreamLoad, dma_ports
from hwmodel.rtl.nonlinear import (
    gelu_lane,
    gelu_lane_shift,
    layernorm_lane,
    layernorm_lane_shift,
    softmax_lane,
    softmax_lane_shift,
)
from hwmodel.rtl.requant import LATENCY, requant_lane
from hwmodel.rtl.sequencer import descriptor_inputs, descriptor_values

Wire: TypeAlias = pyrtl.WireVector
Unit: TypeAlias = tuple[str, str, IntSpec]
KINDS = ("layernorm", "softmax", "gelu")
#: Rows of one op (the DMA's window rows are 16 bits).
ROW_BITS = 16


def program_units(descriptors: Sequence[Descriptor]) -> tuple[Unit, ...]:
    """The (kind, variant, formats) of every non-linear op of a program, each once, in order."""
    out: list[Unit] = []
    for d in descriptors:
        if d.kind in KINDS:
            unit = (d.kind, VARIANTS[d.variant], IntSpec(d.in_bits, d.in_frac, d.out_bits, d.out_frac))
            if unit not in out:
                out.append(unit)
    return tuple(out)


def _clog2(n: int) -> int:
    return max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class NlOpSpec:
    """A non-linear op unit build (module docstring)."""

    units: tuple[Unit, ...]
    lanes: int = 2
    #: lanes of the units of these kinds, (kind, lanes) pairs (the others have ``lanes``): a
    #: design's ``nonlinear_kind_lanes``
    kind_lanes: tuple[tuple[str, int], ...] = ()
    log2_rows: int = 5
    log2_cols: int = 7
    log2: bool = True
    log2_frac: int = 16
    read: DmaConfig = field(default_factory=lambda: DmaConfig(128, 2, 64))
    write: DmaConfig = field(default_factory=lambda: DmaConfig(128, 4, 32))

    def __post_init__(self) -> None:
        if not self.units or self.lanes < 1 or any(n < 1 for _, n in self.kind_lanes):
            raise ValueError("a non-linear unit needs at least one kernel and one lane")
        for kind, variant, _ in self.units:
            if kind not in KINDS or variant not in VARIANTS:
                raise ValueError(f"unknown kernel {kind}/{variant}")
        if self.read.max_bits < OFFSET_BITS or self.write.max_bits < ACC_BITS:
            raise ValueError(f"the reader moves {OFFSET_BITS}-bit offsets, the writer {ACC_BITS}-bit codes")
        if self.log2_rows > self.log2_cols:
            raise ValueError("the lanes' rows cannot be longer than the unit's")

    def lanes_of(self, kind: str) -> int:
        """The lanes of the units of op ``kind``."""
        return dict(self.kind_lanes).get(kind, self.lanes)

    @property
    def built_lanes(self) -> int:
        """Lanes the unit builds: the most any of its kinds has (a kind with fewer leaves the
        others' lanes idle; its rows go in groups of its own count)."""
        return max(self.lanes_of(kind) for kind, _, _ in self.units)

    @property
    def in_bits(self) -> int:
        """Bits of a stored input code (the widest kernel input)."""
        return max(s.in_bits for _, _, s in self.units)

    @classmethod
    def from_descriptors(
        cls,
        descriptors: Sequence[Descriptor],
        lanes: int = 2,
        data_bits: int = 128,
        max_burst: int = 16,
        max_outstanding: int = 4,
        kind_lanes: Mapping[str, int] | None = None,
    ) -> NlOpSpec:
        """The build a program's non-linear ops need (its units, the longest rows, log2 if used),
        ``lanes`` lanes a unit, or ``kind_lanes`` for those kinds."""
        ops = [d for d in descriptors if d.kind in KINDS]
        if not ops:
            raise ValueError("no non-linear op in the program")
        rowwise = [d.n for d in ops if d.kind != "gelu"] or [1]
        log2 = [d for d in ops if d.has(F_LOG2)]
        return cls(
            units=program_units(ops),
            lanes=lanes,
            kind_lanes=tuple(sorted((kind_lanes or {}).items())),
            log2_rows=max(1, _clog2(max(rowwise))),
            log2_cols=max(1, _clog2(max(d.n for d in ops))),
            log2=bool(log2),
            log2_frac=max([d.out_frac for d in log2] or [16]),
            read=DmaConfig(data_bits, min(2, data_bits // 64), 64, max_burst, max_outstanding),
            write=DmaConfig(data_bits, min(4, data_bits // ACC_BITS), ACC_BITS, max_burst, max_outstanding),
        )


def log2_thresholds(max_frac: int) -> list[int]:
    """t_j, the least p with p² ≥ 2^(2j+1), for j = 0 … max_frac (the log-domain rounding edges)."""
    return [isqrt((1 << (2 * j + 1)) - 1) + 1 for j in range(max_frac + 1)]


def log2_quantizer(p: Wire, frac: Wire, bits: Wire, max_frac: int) -> Wire:
    """The log2 quantizer of :func:`codesign.quant._integer.log2_codes` on an unsigned code ``p``
    (fraction ``frac`` ≤ ``max_frac`` and ``bits`` at run time), by integer comparisons: n =
    #{j ≤ frac : p ≥ t_j} (:func:`log2_thresholds`), L = max(frac + 2 − 2^bits, 0) (the smallest
    exponent + frac, clamped at 0), the code 2^min(max(n, L), frac), 0 where p < 2^(L−1) (or
    p = 0). Combinational; ``max_frac + 1`` bits out. Area: ``max_frac + 1`` constant comparators,
    their count, a small max/min and a decoder."""
    kbits = max(1, (max_frac + 1).bit_length())
    n: Wire = pyrtl.Const(0, kbits)
    for j, t in enumerate(log2_thresholds(max_frac)):
        passed = (frac >= j) & (p >= pyrtl.Const(t)) if t < 1 << len(p) else pyrtl.Const(0, 1)
        n = (n + passed)[:kbits]
    f = frac[:kbits]
    pow_ = pyrtl.shift_left_logical(pyrtl.Const(1, 8), bits[:3])
    t2 = (f.zero_extended(8) + 2)[:8]
    small = (bits > 6) | (t2 <= pow_)
    lo = pyrtl.select(small, pyrtl.Const(0, 8), (t2 - pow_)[:8])[:kbits]
    k = pyrtl.select(n > lo, n, lo)
    k = pyrtl.select(k > f, f, k)
    shifted = pyrtl.shift_right_logical(p, (lo - 1)[:kbits])
    zero = (p == 0) | ((lo != 0) & (shifted == 0))
    out = pyrtl.shift_left_logical(pyrtl.Const(1, max_frac + 1), k)
    return pyrtl.select(zero, pyrtl.Const(0, max_frac + 1), out)


def _lane(unit: Unit, valid: Wire, q: Wire, last: Wire, log2_rows: int) -> tuple[Wire, Wire, Wire]:
    """(ready, out_valid, out_data) of one kernel lane of ``unit``."""
    kind, variant, spec = unit
    shift = variant == "shift"
    if kind == "gelu":
        ov, od = (gelu_lane_shift if shift else gelu_lane)(valid, q, spec)
        return pyrtl.Const(1, 1), ov, od
    if kind == "softmax":
        return (softmax_lane_shift if shift else softmax_lane)(valid, q, last, spec, log2_rows)
    return (layernorm_lane_shift if shift else layernorm_lane)(valid, q, last, spec, log2_rows)


def _clamp_to(v: Wire, bits: Wire, width: int) -> Wire:
    """A signed ``v`` saturated to ``bits`` (run time) bits, ``width`` bits out."""
    w = max(len(v), width + 1)
    top = (pyrtl.shift_left_logical(pyrtl.Const(1, w), (bits - 1)[: len(bits)]) - 1)[:w]
    bottom = (~top)[:w]
    vs = sext(v, w)
    return pyrtl.select(
        pyrtl.signed_gt(vs, top),
        top[:width],
        pyrtl.select(pyrtl.signed_lt(vs, bottom), bottom[:width], vs[:width]),
    )


@dataclass(frozen=True)
class NlOp:
    """The unit's outputs: ``done``, ``busy``, ``error`` and its DMA masters."""

    done: Wire
    busy: Wire
    error: Wire
    reader: Reader
    writer: Writer


_MULT, _SHIFT, _OFFSET, _TABLES = 0, 1, 2, 3
_R_IDLE, _R_TABLES, _R_ROWS, _R_WAIT = 0, 1, 2, 3


def nl_op(spec: NlOpSpec, op_start: Wire, d: Mapping[str, Wire], rd: ReadChannel, wr: WriteChannel) -> NlOp:
    """The non-linear op unit (module docstring) on wires."""
    lanes, cols = spec.built_lanes, 1 << spec.log2_cols
    cbits = spec.log2_cols + 1
    rd_e, ew = spec.read.elems_per_cycle, spec.write.elems_per_cycle
    zero = pyrtl.Const(0)
    flags = d["flags"]
    log2 = flags[6] & pyrtl.Const(int(spec.log2), 1)
    assert F_LOG2 == 1 << 6 and F_OFFSET_PER_ROW == 1 << 4
    n = d["n"][:cbits]
    m = d["m"][:ROW_BITS]
    per_tensor = d["table_len"] == 1
    has_offset = (d["offset_addr"] != 0) & ~log2

    # ---- which unit runs the op; what the build lacks
    matches = []
    for kind, variant, s in spec.units:
        formats = [(d[f], getattr(s, f)) for f in ("in_bits", "in_frac", "out_bits", "out_frac")]
        hit = (d["opcode"] == OPCODES[kind]) & (d["variant"] == VARIANTS.index(variant))
        for wire, value in formats:
            hit = hit & (wire == value)
        matches.append(hit)
    any_match = pyrtl.rtl_any(*matches)
    rowwise = d["opcode"] != OPCODES["gelu"]
    lacking = ~any_match | (d["n"] > cols) | (d["n"] == 0) | (d["m"] == 0) | (d["m"] >= 1 << ROW_BITS)
    lacking = lacking | (rowwise & (d["n"] > (1 << spec.log2_rows))) | flags[4]
    lacking = lacking | (flags[6] & pyrtl.Const(int(not spec.log2), 1))
    if spec.log2:
        lacking = lacking | (flags[6] & (d["out_frac"] > spec.log2_frac))
    active = [hold_register(hit, op_start) for hit in matches]
    error = pyrtl.Register(1)
    error.next <<= pyrtl.select(op_start, lacking, error)
    refused = pyrtl.Register(1)
    refused.next <<= op_start & lacking

    # ---- reader: the tables, then groups of rows
    rstate = pyrtl.Register(2)
    step = pyrtl.Register(2)
    issued = pyrtl.Register(1)
    row0 = pyrtl.Register(ROW_BITS)  # the next group's first row
    ib_full = [pyrtl.Register(1) for _ in range(lanes)]
    group = (m - row0)[:ROW_BITS]
    cap: Wire = pyrtl.Const(lanes, ROW_BITS)  # the running kind's lanes
    for u, (kind, _, _) in enumerate(spec.units):
        if spec.lanes_of(kind) < lanes:
            cap = pyrtl.select(active[u], pyrtl.Const(spec.lanes_of(kind), ROW_BITS), cap)
    group = pyrtl.select(group > cap, cap, group)
    free = [~ib_full[j] | (group <= j) for j in range(lanes)]
    tables = rstate == _R_TABLES
    need = pyrtl.mux(step, ~log2, ~log2, has_offset, pyrtl.Const(0))
    start_tab = tables & need & ~issued
    start_rows = (rstate == _R_ROWS) & pyrtl.rtl_all(*free)
    rd_start = start_tab | start_rows
    table_len = d["table_len"]
    scalar = {
        "win_col0": zero,
        "win_cols": pyrtl.select(per_tensor, pyrtl.Const(1), n),
        "win_head": zero,
        "win_row0": zero,
        "win_rows": 1,
        "op_head_stride": zero,
        "op_row_stride": table_len,
    }
    choices: list[tuple[Wire, Mapping[str, Wire | int]]] = [
        (
            tables & (step == _MULT),
            {"op_addr": d["mult_addr"], "op_bits": MULT_BITS, "op_signed": 1, **scalar},
        ),
        (
            tables & (step == _SHIFT),
            {"op_addr": d["shift_addr"], "op_bits": SHIFT_BITS, "op_signed": 0, **scalar},
        ),
        (
            tables,
            {"op_addr": d["offset_addr"], "op_bits": OFFSET_BITS, "op_signed": 1, **scalar, "win_cols": n},
        ),
        (
            pyrtl.Const(1),
            {
                "op_addr": d["a_addr"],
                "op_row_stride": d["a_row_stride"],
                "op_head_stride": zero,
                "op_bits": d["a_bits"],
                "op_signed": d["a_signed"],
                "win_head": zero,
                "win_row0": row0,
                "win_rows": group,
                "win_col0": zero,
                "win_cols": n,
            },
        ),
    ]
    rdr = reader(spec.read, rd_start, dma_ports(choices), rd)
    words = cols // rd_e if cols >= rd_e else 1
    load = StreamLoad(rdr.stream, rd_start, words, spec.read.max_bits)
    mult_b = Banks(rd_e, 1, words, MULT_BITS, reads=lanes)
    shift_b = Banks(rd_e, 1, words, SHIFT_BITS, reads=lanes)
    offset_b = Banks(rd_e, 1, words, OFFSET_BITS, reads=lanes)
    loading = tables & issued
    mult_b.load(load, loading & (step == _MULT) & ~per_tensor)
    shift_b.load(load, loading & (step == _SHIFT) & ~per_tensor)
    offset_b.load(load, loading & (step == _OFFSET))
    first = rdr.stream.valid & loading & per_tensor
    mult_s = hold_register(rdr.stream.data[:MULT_BITS], first & (step == _MULT))
    shift_s = hold_register(rdr.stream.data[:SHIFT_BITS], first & (step == _SHIFT))
    step_over = tables & (~need | rdr.done)
    step.next <<= pyrtl.select(op_start, zero, pyrtl.select(step_over, step + 1, step))
    issued.next <<= pyrtl.select(rd_start, pyrtl.Const(1), issued & ~step_over & ~rdr.done)
    # rows: the clamped codes into the lanes' input buffers (row j of a group to lane j)
    in_bits = spec.in_bits
    mb = spec.read.max_bits
    clamped = [
        sext(_clamp_to(rdr.stream.data[j * mb : j * mb + 40], d["in_bits"][:7], in_bits), mb)
        for j in range(rd_e)
    ]
    rows_stream = ElementStream(
        rdr.stream.valid, pyrtl.concat_list(clamped), rdr.stream.count, rdr.stream.row_end, rdr.stream.last
    )
    row_load = StreamLoad(rows_stream, rd_start, 0, mb)
    lrow = pyrtl.Register(max(1, _clog2(lanes)) + 1)
    lrow.next <<= pyrtl.select(
        rd_start, pyrtl.Const(0), pyrtl.select(rdr.stream.valid & rdr.stream.row_end, lrow + 1, lrow)
    )
    rows_loading = rstate == _R_WAIT
    ib = [Banks(rd_e, 1, words, in_bits) for _ in range(lanes)]
    ib_row = []
    for j in range(lanes):
        ib[j].load(row_load, rows_loading & (lrow == j))
        ib_row.append(hold_register((row0 + j)[:ROW_BITS], start_rows & (group > j)))
    with pyrtl.conditional_assignment:
        with op_start:
            rstate.next |= pyrtl.select(lacking, pyrtl.Const(_R_IDLE), pyrtl.Const(_R_TABLES))
            row0.next |= 0
        with tables & (step == _TABLES - 1) & step_over:
            rstate.next |= _R_ROWS
        with start_rows:
            rstate.next |= _R_WAIT
        with (rstate == _R_WAIT) & rdr.done:
            row0.next |= (row0 + group)[:ROW_BITS]
            rstate.next |= pyrtl.select(
                (row0 + group)[: ROW_BITS + 1] >= m, pyrtl.Const(_R_IDLE), pyrtl.Const(_R_ROWS)
            )

    # ---- lanes: feed, kernel, rescale or log2, output row buffers
    ob = [Banks(ew, 1, max(1, cols // ew), ACC_BITS) for _ in range(lanes)]
    ob_busy = [pyrtl.Register(1) for _ in range(lanes)]
    ob_ready = [pyrtl.Register(1) for _ in range(lanes)]
    out_row = []
    written_lane = pyrtl.WireVector(lanes)
    lg_rd = _clog2(rd_e)
    lg_ew = _clog2(ew)
    lo, hi = d["lo"], d["hi"]
    for j in range(lanes):
        feeding = pyrtl.Register(1)
        fcol = pyrtl.Register(cbits)
        ready_any: Wire = pyrtl.Const(0, 1)
        ov_any: Wire = pyrtl.Const(0, 1)
        od_any: Wire = pyrtl.Const(0, ACC_BITS)
        feed_last = fcol == (n - 1)[:cbits]
        banks = ib[j].read([fcol[lg_rd:] if lg_rd else fcol])
        q = pyrtl.mux(fcol[:lg_rd], *banks) if lg_rd else banks[0]
        for u, unit in enumerate(spec.units):
            if j >= spec.lanes_of(unit[0]):
                continue  # this kind's rows never reach lane j
            s = unit[2]
            rdy, ov, od = _lane(unit, feeding & active[u], q[: s.in_bits], feed_last, spec.log2_rows)
            ready_any = ready_any | (active[u] & rdy)
            ov_any = ov_any | (active[u] & ov)
            wide = od.zero_extended(ACC_BITS) if unit[0] == "softmax" else sext(od, ACC_BITS)
            od_any = pyrtl.select(active[u], wide, od_any)
        take = feeding & ready_any
        start_feed = ib_full[j] & ~feeding & ~ob_busy[j] & ready_any
        feeding.next <<= pyrtl.select(start_feed, pyrtl.Const(1), feeding & ~(take & feed_last))
        fcol.next <<= pyrtl.select(start_feed, pyrtl.Const(0), pyrtl.select(take, fcol + 1, fcol))
        loaded = rows_loading & row_load.stream.valid & row_load.stream.row_end & (lrow == j)
        ib_full[j].next <<= pyrtl.select(
            op_start, zero, pyrtl.select(loaded, pyrtl.Const(1), ib_full[j] & ~(take & feed_last))
        )
        out_row.append(hold_register(ib_row[j], start_feed))
        # the outputs' column and their rescale (or log2 code)
        ocol = pyrtl.Register(cbits)
        ocol.next <<= pyrtl.select(start_feed, pyrtl.Const(0), pyrtl.select(ov_any, ocol + 1, ocol))
        taddr = [ocol[lg_rd:] if lg_rd else ocol]
        pick = ocol[:lg_rd] if lg_rd else None

        def table(b: Banks, taddr: list[Wire] = taddr, pick: Wire | None = pick) -> Wire:
            outs = b.read(taddr)
            return pyrtl.mux(pick, *outs) if pick is not None else outs[0]

        mult = pyrtl.select(per_tensor, mult_s, table(mult_b))
        shift = pyrtl.select(per_tensor, shift_s, table(shift_b))
        offset = pyrtl.select(has_offset, table(offset_b), pyrtl.Const(0, OFFSET_BITS))
        rv, rdata = requant_lane(ov_any, od_any, mult, shift, offset, lo, hi)
        if spec.log2:
            code = log2_quantizer(
                od_any[: max(s.out_bits for _, _, s in spec.units)], d["out_frac"], d["bits"], spec.log2_frac
            )
            for _ in range(LATENCY):
                reg = pyrtl.Register(len(code))
                reg.next <<= code
                code = reg
            rdata = pyrtl.select(log2, code.zero_extended(ACC_BITS), rdata)
        ocol3 = ocol
        for _ in range(LATENCY):
            reg = pyrtl.Register(cbits)
            reg.next <<= ocol3
            ocol3 = reg
        for b, mem in enumerate(ob[j].mems):
            hit = rv & ((ocol3[:lg_ew] == b) if lg_ew else pyrtl.Const(1, 1))
            mem[(ocol3[lg_ew:] if lg_ew else ocol3)[: ob[j].addr_bits]] <<= pyrtl.MemBlock.EnabledWrite(
                rdata, hit
            )
        row_over = rv & (ocol3 == (n - 1)[:cbits])
        ob_busy[j].next <<= pyrtl.select(
            op_start, zero, pyrtl.select(start_feed, pyrtl.Const(1), ob_busy[j] & ~written_lane[j])
        )
        ob_ready[j].next <<= pyrtl.select(
            op_start, zero, pyrtl.select(row_over, pyrtl.Const(1), ob_ready[j] & ~written_lane[j])
        )

    # ---- writer: one finished row a transfer, lowest lane first
    wstate = pyrtl.Register(2)  # 0 idle, 1 start, 2 writing
    wl = pyrtl.Register(max(1, _clog2(lanes)))
    pick_lane: Wire = pyrtl.Const(0, len(wl))
    for j in reversed(range(lanes)):
        pick_lane = pyrtl.select(ob_ready[j], pyrtl.Const(j, len(wl)), pick_lane)
    any_ready = pyrtl.rtl_any(*ob_ready)
    w_start = wstate == 1
    wrow = pyrtl.mux(wl, *out_row, default=out_row[0]) if lanes > 1 else out_row[0]
    wports = dma_ports(
        [
            (
                pyrtl.Const(1),
                {
                    "op_addr": d["c_addr"],
                    "op_row_stride": d["c_row_stride"],
                    "op_head_stride": zero,
                    "op_bits": d["c_bits"],
                    "op_signed": d["c_signed"],
                    "win_head": zero,
                    "win_row0": wrow,
                    "win_rows": 1,
                    "win_col0": zero,
                    "win_cols": n,
                },
            )
        ]
    )
    waddr = pyrtl.Register(max(1, ob[0].addr_bits))
    left = pyrtl.Register(cbits + 1)  # codes of the row not yet taken
    in_valid = (wstate == 2) & (left != 0)
    w_ready = pyrtl.WireVector(1)
    advance = in_valid & w_ready
    waddr.next <<= pyrtl.select(w_start, zero, pyrtl.select(advance, waddr + 1, waddr))
    left.next <<= pyrtl.select(
        w_start,
        n.zero_extended(cbits + 1),
        pyrtl.select(advance, pyrtl.select(left > ew, left - ew, pyrtl.Const(0)), left),
    )
    words_out = [pyrtl.concat_list(ob[j].read([waddr])) for j in range(lanes)]
    in_data = pyrtl.mux(wl, *words_out, default=words_out[0]) if lanes > 1 else words_out[0]
    wtr = writer(spec.write, w_start, wports, wr, in_valid, in_data)
    w_ready <<= wtr.in_ready
    row_written = (wstate == 2) & wtr.done
    written_lane <<= pyrtl.concat_list([row_written & (wl == j) for j in range(lanes)])
    with pyrtl.conditional_assignment:
        with op_start:
            wstate.next |= 0
        with (wstate == 0) & any_ready:
            wstate.next |= 1
            wl.next |= pick_lane
        with wstate == 1:
            wstate.next |= 2
        with row_written:
            wstate.next |= 0
    count = pyrtl.Register(ROW_BITS + 1)
    count.next <<= pyrtl.select(op_start, zero, pyrtl.select(row_written, count + 1, count))
    busy = pyrtl.Register(1)
    over = busy & ~error & (count == m)
    done = pyrtl.Register(1)
    done.next <<= over | refused
    busy.next <<= pyrtl.select(op_start, ~lacking, busy & ~over)
    return NlOp(done, busy, error, rdr, wtr)


def build_nl_op(spec: NlOpSpec) -> None:
    """The unit with named ports in the working block: inputs ``op_start``, ``d_<field>``, the
    AXI4 slaves' ``m_*``; outputs ``done``, ``busy``, ``error``, the masters' ``m_*``."""
    unit = nl_op(
        spec,
        pyrtl.Input(1, "op_start"),
        descriptor_inputs(),
        read_channel_inputs(spec.read.data_bits),
        write_channel_inputs(),
    )
    outputs = {
        **unit.reader.ports(spec.read.data_bits),
        **unit.writer.ports(spec.write.data_bits),
        "done": unit.done,
        "busy": unit.busy,
        "error": unit.error,
    }
    for name, wire in outputs.items():
        output_port(name, wire)


@dataclass(frozen=True)
class NlOpRun:
    """A simulated run: the DRAM image after it, the cycles from the first ``op_start`` to the
    last ``done``, each op's ``done`` cycle, whether any op raised ``error``."""

    image: npt.NDArray[np.uint8]
    cycles: int
    dones: tuple[int, ...]
    error: bool


def simulate_nl_op(
    spec: NlOpSpec,
    image: npt.NDArray[np.uint8],
    ops: Descriptor | Sequence[Descriptor],
    latency_cycles: int = 8,
    bytes_per_cycle: float | None = None,
    max_cycles: int = 500_000,
) -> NlOpRun:
    """Run descriptor(s) ``ops`` on a copy of ``image`` against :class:`hwmodel.rtl.dram.Dram`,
    one unit, each op's ``op_start`` the cycle after the op before's ``done`` (every output is
    checked for byte alignment first). Resets the working block."""
    if spec.read.data_bits != spec.write.data_bits:
        raise ValueError("the testbench DRAM has one bus width: read and write builds must agree")
    queue = [ops] if isinstance(ops, Descriptor) else list(ops)
    for d in queue:
        check_write_alignment(d.c, Window(0, 0, d.m, 0, d.n))
    fresh_block()
    build_nl_op(spec)
    sim = pyrtl.FastSimulation()
    dram = Dram(image.copy(), spec.read.data_bits, latency_cycles, bytes_per_cycle)
    dones: list[int] = []
    error, start = False, 0
    for cycle in range(max_cycles):
        fields = descriptor_values(queue[len(dones)])
        sim.step({"op_start": int(cycle == start), **fields, **dram.inputs(cycle)})
        dram.observe(cycle, sim.inspect)
        if sim.inspect("done"):
            dones.append(cycle)
            error = error or bool(sim.inspect("error"))
            if len(dones) == len(queue):
                return NlOpRun(dram.image, cycle, tuple(dones), error)
            start = cycle + 1
    raise RuntimeError(f"the non-linear ops did not finish within {max_cycles} cycles")
