"""PyRTL generator of the GEMM epilogue unit: it takes the GEMM core's int32 accumulator tiles, adds
the bias, rescales them (:func:`hwmodel.rtl.requant.requant_lane` / ``residual_lane``) and writes
the codes to DRAM through the tile DMA, bit for bit as the epilogue of a GEMM descriptor in the
program's reference semantics (:func:`codesign.program._execute.gemm_epilogue`).

**Ports** (:func:`epilogue`): ``op_start`` and the descriptor's fields ``d`` (named as
:data:`hwmodel.arch.program.FIELDS`, held from ``op_start``); one AXI4 read channel (the tables
and the residual, :func:`hwmodel.rtl.dma.reader`) and one write channel (the results,
:func:`hwmodel.rtl.dma.writer`); the **C stream** of the GEMM core (:class:`CStream`): per output
tile a header pulse ``tile`` with ``h``, ``m0``, ``rows``, ``n0``, ``cols`` (held until the next
``tile``; rows index m, columns n of the descriptor; a header may come while the tile before is
still being written: one is kept pending), then its accumulators row-major, ``valid``, ``data``
(``elems`` × 32 bits, element i at bits 32·i), ``count`` (1 … elems), ``row_end``, ``last`` (the
tile's last word), taken in a cycle where ``ready`` is high. Every word of a row holds ``elems``
columns but its last (word w of a row starts at tile column w·elems), as the DMA's streams.
``core_done``: the core has streamed the op's last tile (a pulse; the unit counts no tiles).
Out: ``ready``, ``done`` (a one-cycle pulse once the last tile is written and ``core_done`` was
seen), ``busy``, ``error`` (a tile larger than the build's buffers, or a residual / offset
descriptor on a build without them: the tile's words are taken and dropped, nothing written;
held until the next ``op_start``).

**What a tile goes through** (cycle counts at DRAM latency L, one beat a cycle; ``E`` = elems):

1. *fetch* (one reader, transfers one after another, each ``1 + L + beats + 1`` cycles and one
   more to step; a step not needed costs one cycle): the bias of the tile's columns (``BIAS_BITS``,
   if ``bias_addr``), ``mult`` and ``shift`` (per column, or once per op when ``table_len`` is 1),
   the offsets (per column, or per element with :data:`~hwmodel.arch.program.F_OFFSET_PER_ROW`),
   the residual window of R (:data:`~hwmodel.arch.program.F_RESIDUAL`). Per-column tables are
   fetched again only when the tile's columns differ from the tile before's. Each goes into a
   buffer of ``E`` banks (column c in bank c mod E), so a C word reads its ``E`` columns at once.
2. *compute*: ``ready`` high, one C word a cycle: x = acc + bias, registered with its tables
   (1 stage), then the ``E`` lanes (:data:`~hwmodel.rtl.requant.LATENCY` 3 stages, residual
   lanes :data:`~hwmodel.rtl.requant.RESIDUAL_LATENCY` 4) into the output buffer (``E`` banks of
   32 bits). ``F_RAW`` runs the lanes as M = 1, s = 0 with the int32 clamp (the sum itself); a
   residual build runs plain rescales with R = 0. The clamp of an element is its output
   segment's (``lo``/``hi``, ``lo1``/``hi1``, ``lo2``/``hi2`` by its global column and
   ``seg_cols``). A tile of ``rows × ⌈cols/E⌉`` words takes that many cycles (the core not
   stalling) plus ``1 + latency`` to drain.
3. *write* (beside the next tile's fetch and compute: the output buffer has two halves): per
   output segment the tile touches (a tile may straddle a segment edge: one writer window per
   piece) a writer transfer of the piece's rows, ``write.elems_per_cycle`` codes a cycle read from
   the banks at any column (a rotation), each :func:`hwmodel.arch.dma.write_cycles` and two more
   (start, step). The writer refuses rows that do not start and end on a byte
   (:func:`hwmodel.arch.dma.check_write_alignment`).

Measured (``tests/test_rtl_epilogue.py``'s tiny ViT, W8A8, 8 × 16 tiles, 128-bit bus, E = 4, DRAM
latency 8, the core never stalling): ``blocks.0.mlp.fc1``'s first tile takes 93 cycles from its
header to its last word taken (61 fetching bias, mult and shift; 32 words) and 152 to ``done``;
its 18 tiles (tables fetched once per column block) 1,022 cycles, 57 a tile, bound by the writer
(eight one-beat rows a tile, each burst's response); ``attn.qk`` (per-tensor tables, no bias) 12
tiles in 496 (41 a tile); ``attn.proj`` (the residual window fetched for every tile) 6 tiles in
565 (94 a tile). With one output buffer fc1 took 1,520.

**Area**: ``E`` lanes (4 DSP48E2 each, 8 residual), the reader and the writer
(:mod:`hwmodel.rtl.dma`, about 10 DSP each for the address products), banks of 32 (bias), 32
(mult), 6 (shift), 62 (offset, ``tile_rows`` rows with per-row offsets), ``r_bits`` (R,
``tile_rows`` rows) and 32 bits (output, twice ``tile_rows`` rows), ``tile_cols / E`` words a
row each (synchronous reads: block RAM or LUT-RAM), the lanes' input stage (x, tables, clamps)
and the FSMs. Yosys 0.70 (``synth_xilinx -family xcup``) of the tiny ViT's build (E = 4, 8 × 16
tiles, residual and offsets, 128-bit reader of 2 × 64-bit and writer of 4 × 32-bit codes):
15,595 LUT, 5,082 FF, 52 DSP48E2, 96 LUT-RAM cells, no BRAM (121 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.dma import DmaConfig, Window, check_write_alignment
from hwmodel.arch.dyadic import INPUT_BITS, MULT_BITS, OFFSET_BITS, SHIFT_BITS
from hwmodel.arch.program import (
    F_OFFSET_PER_ROW,
    F_RAW,
    F_RESIDUAL,
    OPCODES,
    Descriptor,
    Operand,
)
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
from hwmodel.rtl.gemm import CStream
from hwmodel.rtl.requant import LATENCY, RESIDUAL_LATENCY, requant_lane, residual_lane
from hwmodel.rtl.sequencer import descriptor_inputs, descriptor_values

Wire: TypeAlias = pyrtl.WireVector

#: Bits of an accumulator in the C stream and of a result in the output buffer (an int32).
ACC_BITS = INPUT_BITS + 1
#: Bits of a bias in DRAM (the compiler's ``BIAS_BITS``: an int32 in the accumulator's unit).
BIAS_BITS = ACC_BITS
#: Bits of the C stream's header fields.
HEADER_BITS = 16
HEADER_FIELDS = ("h", "m0", "rows", "n0", "cols")


def _log2(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


def _clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


@dataclass(frozen=True)
class EpilogueSpec:
    """An epilogue build: ``elems`` accumulators a C word (and lanes), buffers for tiles of up to
    ``tile_rows × tile_cols``, residual lanes (``residual``, R codes of up to ``r_bits``), offset
    tables (``offsets``), the reader's and the writer's DMA builds."""

    elems: int = 4
    tile_rows: int = 16
    tile_cols: int = 16
    residual: bool = True
    offsets: bool = True
    r_bits: int = 32
    read: DmaConfig = field(default_factory=lambda: DmaConfig(128, 2, 64))
    write: DmaConfig = field(default_factory=lambda: DmaConfig(128, 4, 32))

    def __post_init__(self) -> None:
        _log2(self.elems)
        if self.tile_rows < 1 or self.tile_cols < 1:
            raise ValueError(f"tile {self.tile_rows} × {self.tile_cols}: at least 1 × 1")
        if self.read.max_bits < OFFSET_BITS or self.write.max_bits < ACC_BITS:
            raise ValueError(f"the reader moves {OFFSET_BITS}-bit offsets, the writer {ACC_BITS}-bit sums")
        for cfg in (self.read, self.write):
            if cfg.elems_per_cycle > self.elems or self.elems % cfg.elems_per_cycle:
                raise ValueError(f"DMA words of {cfg.elems_per_cycle} codes: a divisor of elems {self.elems}")

    @property
    def words(self) -> int:
        """Words of one buffer row (``⌈tile_cols / elems⌉``)."""
        return -(-self.tile_cols // self.elems)

    @property
    def latency(self) -> int:
        """Cycles from a C word's acceptance to its results in the output buffer."""
        return 1 + (RESIDUAL_LATENCY if self.residual else LATENCY)

    @classmethod
    def from_descriptors(
        cls,
        descriptors: Sequence[Descriptor],
        elems: int = 4,
        data_bits: int = 128,
        max_burst: int = 16,
        max_outstanding: int = 4,
    ) -> EpilogueSpec:
        """The build a program's GEMMs need: the largest tile (``tm``/``tn``, or the whole output
        where a descriptor has no tiles), residual lanes and offsets if any GEMM uses them."""
        gemms = [d for d in descriptors if d.opcode == OPCODES["gemm"]]
        if not gemms:
            raise ValueError("no GEMM in the program")
        rd = min(elems, data_bits // 64)
        wr = min(elems, data_bits // ACC_BITS)
        return cls(
            elems=elems,
            tile_rows=max(min(d.tm or d.m, d.m) for d in gemms),
            tile_cols=max(min(d.tn or d.n, d.n) for d in gemms),
            residual=any(d.has(F_RESIDUAL) for d in gemms),
            offsets=any(d.offset_addr and not d.has(F_RAW) for d in gemms),
            r_bits=max([d.r.bits for d in gemms if d.has(F_RESIDUAL)] or [24]),
            read=DmaConfig(data_bits, rd, 64, max_burst, max_outstanding),
            write=DmaConfig(data_bits, wr, ACC_BITS, max_burst, max_outstanding),
        )


def c_stream_inputs(elems: int, prefix: str = "c_") -> CStream:
    """The C stream as top-level inputs (``c_tile``, ``c_h`` …, ``c_data``)."""

    def inp(name: str, bits: int) -> Wire:
        return pyrtl.Input(bits, f"{prefix}{name}")

    hdr = {f: inp(f, HEADER_BITS) for f in HEADER_FIELDS}
    return CStream(
        tile=inp("tile", 1),
        h=hdr["h"],
        m0=hdr["m0"],
        rows=hdr["rows"],
        n0=hdr["n0"],
        cols=hdr["cols"],
        valid=inp("valid", 1),
        data=inp("data", elems * ACC_BITS),
        count=inp("count", elems.bit_length()),
        row_end=inp("row_end", 1),
        last=inp("last", 1),
    )


class Banks:
    """A tile buffer of ``rows × words·E`` elements in ``E`` banks (column c of row r in bank
    c mod E at word r·words + c div E), each a synchronous one-write, ``reads``-read memory."""

    def __init__(self, elems: int, rows: int, words: int, bits: int, reads: int = 1) -> None:
        self.elems, self.words, self.bits = elems, words, bits
        self.addr_bits = _clog2(rows * words)
        self.mems = [
            pyrtl.MemBlock(bits, self.addr_bits, max_read_ports=reads, max_write_ports=1)
            for _ in range(elems)
        ]

    def read(self, addrs: Sequence[Wire]) -> list[Wire]:
        """Bank b's word at ``addrs[b]`` (registers, cut to the address bits) or every bank's at
        ``addrs[0]``."""
        return [
            mem[(addrs[b] if len(addrs) > 1 else addrs[0])[: self.addr_bits]]
            for b, mem in enumerate(self.mems)
        ]

    def load(self, load: StreamLoad, enable: Wire) -> None:
        """Write the elements of ``load``'s stream while ``enable``."""
        lg = _log2(self.elems)
        col_lo = load.col[:lg] if lg else pyrtl.Const(0, 1)
        rd_e = len(load.stream.data) // load.max_bits
        for b, mem in enumerate(self.mems):
            hit: Wire = pyrtl.Const(0, 1)
            data: Wire = pyrtl.Const(0, self.bits)
            for j in range(min(rd_e, b + 1)):
                sel = (col_lo == b - j) & (load.stream.count > j)
                hit = hit | sel
                element = load.stream.data[j * load.max_bits : j * load.max_bits + self.bits]
                data = pyrtl.select(sel, element, data)
            addr = (load.row_base + (load.col[lg:] if lg else load.col))[: self.addr_bits]
            mem[addr] <<= pyrtl.MemBlock.EnabledWrite(data, enable & load.stream.valid & hit)


class StreamLoad:
    """Row and column counters of a reader's stream (reset by ``start``): where its next word goes
    in a :class:`Banks` of ``words`` words a row."""

    def __init__(self, stream: ElementStream, start: Wire, words: int, max_bits: int) -> None:
        self.stream, self.max_bits = stream, max_bits
        self.col = pyrtl.Register(HEADER_BITS)
        self.row_base = pyrtl.Register(24)
        take = stream.valid
        self.col.next <<= pyrtl.select(
            start | (take & stream.row_end),
            pyrtl.Const(0),
            pyrtl.select(take, self.col + stream.count, self.col),
        )
        self.row_base.next <<= pyrtl.select(
            start,
            pyrtl.Const(0),
            pyrtl.select(take & stream.row_end, self.row_base + words, self.row_base),
        )


def dma_ports(choices: Sequence[tuple[Wire, Mapping[str, Wire | int]]]) -> dict[str, Wire]:
    """The DMA transfer inputs of the first choice whose condition holds (the last one otherwise)."""
    names = (
        "op_addr",
        "op_row_stride",
        "op_head_stride",
        "op_bits",
        "op_signed",
        "win_head",
        "win_row0",
        "win_rows",
        "win_col0",
        "win_cols",
    )
    out: dict[str, Wire] = {}
    for name in names:
        value: Wire = pyrtl.as_wires(choices[-1][1][name], bitwidth=32)
        for cond, ports in reversed(choices[:-1]):
            value = pyrtl.select(cond, pyrtl.as_wires(ports[name], bitwidth=32), value)
        out[name] = value
    return out


def _rotate(items: Sequence[Wire], amount: Wire) -> list[Wire]:
    """``items[(amount + j) mod len]`` for each j (a mux per output)."""
    n = len(items)
    if n == 1:
        return list(items)
    return [pyrtl.mux(amount[: _log2(n)], *(items[(j + i) % n] for i in range(n))) for j in range(n)]


@dataclass(frozen=True)
class Epilogue:
    """The unit's outputs: C-stream ``ready``, ``done``, ``busy``, ``error``, and its DMA masters."""

    ready: Wire
    done: Wire
    busy: Wire
    error: Wire
    reader: Reader
    writer: Writer


# fetch steps, in order
_BIAS, _MULT, _SHIFT, _OFFSET, _R, _STEPS = 0, 1, 2, 3, 4, 5
# input side states
_IDLE, _FETCH, _WAIT, _COMPUTE, _DRAIN, _DROP = 0, 1, 2, 3, 4, 5


def epilogue(
    spec: EpilogueSpec,
    op_start: Wire,
    d: Mapping[str, Wire],
    rd: ReadChannel,
    wr: WriteChannel,
    c: CStream,
    core_done: Wire,
) -> Epilogue:
    """The epilogue unit (module docstring) on wires."""
    e, words = spec.elems, spec.words
    lg = _log2(e)
    flags = d["flags"]
    raw = flags[5]  # F_RAW
    residual = flags[3] & pyrtl.Const(int(spec.residual), 1)  # F_RESIDUAL
    per_row = flags[4]  # F_OFFSET_PER_ROW
    assert (F_RAW, F_RESIDUAL, F_OFFSET_PER_ROW) == (1 << 5, 1 << 3, 1 << 4)
    has_bias = d["bias_addr"] != 0
    has_offset = (d["offset_addr"] != 0) & ~raw & pyrtl.Const(int(spec.offsets), 1)
    per_tensor = d["table_len"] == 1
    segmented = (d["segments"] > 1) & ~raw & ~residual
    seg_cols = d["seg_cols"][: HEADER_BITS + 2]

    # ---- the pending header and the input side's tile
    pend = pyrtl.Register(1)
    hdr = {f: hold_register(getattr(c, f)[:HEADER_BITS], c.tile) for f in HEADER_FIELDS}
    state = pyrtl.Register(3)
    take_hdr = (state == _IDLE) & pend
    cur = {f: hold_register(hdr[f], take_hdr) for f in HEADER_FIELDS}
    pend.next <<= pyrtl.select(
        op_start, pyrtl.Const(0), pyrtl.select(c.tile, pyrtl.Const(1), pend & ~take_hdr)
    )
    too_big = (hdr["rows"] > spec.tile_rows) | (hdr["cols"] > spec.tile_cols)
    lacking = flags[3] & pyrtl.Const(int(not spec.residual), 1)
    lacking = lacking | ((d["offset_addr"] != 0) & ~raw & pyrtl.Const(int(not spec.offsets), 1))
    refuse = too_big | lacking

    # ---- fetch
    step = pyrtl.Register(3)
    issued = pyrtl.Register(1)
    scalars = pyrtl.Register(1)  # the per-tensor mult and shift are in
    cache_ok = pyrtl.Register(1)
    cache_n0 = pyrtl.Register(HEADER_BITS)
    cache_cols = pyrtl.Register(HEADER_BITS)
    same_cols = cache_ok & (cache_n0 == cur["n0"]) & (cache_cols == cur["cols"])
    tables = ~raw & ((~per_tensor & ~same_cols) | (per_tensor & ~scalars))
    needed = [
        has_bias & ~same_cols,
        tables,
        tables,
        has_offset & (per_row | ~same_cols),
        residual,
    ]
    need = pyrtl.mux(step, *needed, pyrtl.Const(0), pyrtl.Const(0), pyrtl.Const(0))
    fetching = state == _FETCH
    rd_start = fetching & need & ~issued
    table_len = d["table_len"]
    zero = pyrtl.Const(0)
    row1 = {"win_head": zero, "win_row0": zero, "win_rows": 1, "op_head_stride": zero}
    cols_win = {"win_col0": cur["n0"], "win_cols": cur["cols"]}
    scalar_win = {
        "win_col0": pyrtl.select(per_tensor, zero, cur["n0"]),
        "win_cols": pyrtl.select(per_tensor, pyrtl.Const(1), cur["cols"]),
    }
    choices: list[tuple[Wire, Mapping[str, Wire | int]]] = [
        (
            step == _BIAS,
            {
                "op_addr": d["bias_addr"],
                "op_row_stride": d["n"],
                "op_bits": BIAS_BITS,
                "op_signed": 1,
                **row1,
                **cols_win,
            },
        ),
        (
            step == _MULT,
            {
                "op_addr": d["mult_addr"],
                "op_row_stride": table_len,
                "op_bits": MULT_BITS,
                "op_signed": 1,
                **row1,
                **scalar_win,
            },
        ),
        (
            step == _SHIFT,
            {
                "op_addr": d["shift_addr"],
                "op_row_stride": table_len,
                "op_bits": SHIFT_BITS,
                "op_signed": 0,
                **row1,
                **scalar_win,
            },
        ),
        (
            step == _OFFSET,
            {
                "op_addr": d["offset_addr"],
                "op_row_stride": table_len,
                "op_bits": OFFSET_BITS,
                "op_signed": 1,
                "op_head_stride": zero,
                "win_head": zero,
                "win_row0": pyrtl.select(per_row, cur["m0"], zero),
                "win_rows": pyrtl.select(per_row, cur["rows"], pyrtl.Const(1)),
                **cols_win,
            },
        ),
        (
            pyrtl.Const(1),
            {
                "op_addr": d["r_addr"],
                "op_row_stride": d["r_row_stride"],
                "op_head_stride": d["r_head_stride"],
                "op_bits": d["r_bits"],
                "op_signed": d["r_signed"],
                "win_head": cur["h"],
                "win_row0": cur["m0"],
                "win_rows": cur["rows"],
                **cols_win,
            },
        ),
    ]
    rdr = reader(spec.read, rd_start, dma_ports(choices), rd)
    load = StreamLoad(rdr.stream, rd_start, words, spec.read.max_bits)
    bias_b = Banks(e, 1, words, BIAS_BITS)
    mult_b = Banks(e, 1, words, MULT_BITS)
    shift_b = Banks(e, 1, words, SHIFT_BITS)
    offset_b = Banks(e, spec.tile_rows if spec.offsets else 1, words, OFFSET_BITS, reads=2)
    r_b = Banks(e, spec.tile_rows if spec.residual else 1, words, spec.r_bits)
    loading = fetching & issued
    bias_b.load(load, loading & (step == _BIAS))
    mult_b.load(load, loading & (step == _MULT) & ~per_tensor)
    shift_b.load(load, loading & (step == _SHIFT) & ~per_tensor)
    if spec.offsets:
        offset_b.load(load, loading & (step == _OFFSET))
    if spec.residual:
        r_b.load(load, loading & (step == _R))
    first = rdr.stream.valid & loading & per_tensor
    mult_s = hold_register(rdr.stream.data[:MULT_BITS], first & (step == _MULT))
    shift_s = hold_register(rdr.stream.data[:SHIFT_BITS], first & (step == _SHIFT))
    step_over = fetching & (~need | rdr.done)
    fetch_over = step_over & (step == _STEPS - 1)
    step.next <<= pyrtl.select(take_hdr, zero, pyrtl.select(step_over, step + 1, step))
    issued.next <<= pyrtl.select(rd_start, pyrtl.Const(1), issued & ~step_over)
    scalars.next <<= pyrtl.select(op_start, zero, scalars | (fetch_over & per_tensor & ~raw))
    cache_ok.next <<= pyrtl.select(op_start, zero, cache_ok | fetch_over)
    cache_n0.next <<= pyrtl.select(fetch_over, cur["n0"], cache_n0)
    cache_cols.next <<= pyrtl.select(fetch_over, cur["cols"], cache_cols)

    # ---- compute
    full = [pyrtl.Register(1), pyrtl.Register(1)]  # the output buffer's halves hold a tile
    ibuf = pyrtl.Register(1)  # the half the lanes write
    obuf = pyrtl.Register(1)  # the half the writer reads
    ready = state == _COMPUTE
    dropping = state == _DROP
    accept = c.valid & ready
    caddr = pyrtl.Register(24)  # the word address of the next C word
    crow_base = pyrtl.Register(24)
    ccol = pyrtl.Register(HEADER_BITS)  # its first tile column
    row_next = accept & c.row_end
    caddr.next <<= pyrtl.select(
        take_hdr, zero, pyrtl.select(row_next, crow_base + words, pyrtl.select(accept, caddr + 1, caddr))
    )
    crow_base.next <<= pyrtl.select(take_hdr, zero, pyrtl.select(row_next, crow_base + words, crow_base))
    ccol.next <<= pyrtl.select(take_hdr | row_next, zero, pyrtl.select(accept, ccol + e, ccol))
    wreg = pyrtl.Register(bias_b.addr_bits)  # the next C word's word in its row (per-column tables)
    wreg.next <<= pyrtl.select(
        take_hdr | row_next, zero, pyrtl.select(accept, (wreg + 1)[: bias_b.addr_bits], wreg)
    )
    bias_r = bias_b.read([wreg])
    mult_r = mult_b.read([wreg])
    shift_r = shift_b.read([wreg])
    offset_r = offset_b.read([caddr[: offset_b.addr_bits]]) if spec.offsets else []
    offset_c = offset_b.read([wreg]) if spec.offsets else []
    r_r = r_b.read([caddr[: r_b.addr_bits]]) if spec.residual else []

    lo32 = pyrtl.Const(-(1 << 31), bitwidth=ACC_BITS, signed=True)
    hi32 = pyrtl.Const((1 << 31) - 1, bitwidth=ACC_BITS)
    stage: list[dict[str, Wire]] = []
    for i in range(e):
        acc = c.data[i * ACC_BITS : (i + 1) * ACC_BITS]
        x = (acc + pyrtl.select(has_bias, bias_r[i], pyrtl.Const(0, ACC_BITS)))[:ACC_BITS]
        mult = pyrtl.select(per_tensor, mult_s, mult_r[i])
        shift = pyrtl.select(per_tensor, shift_s, shift_r[i])
        offset: Wire = pyrtl.Const(0, OFFSET_BITS)
        if spec.offsets:
            offset = pyrtl.select(has_offset, pyrtl.select(per_row, offset_r[i], offset_c[i]), offset)
        gcol = (cur["n0"] + ccol + i)[: HEADER_BITS + 2]
        seg1 = segmented & (gcol >= seg_cols)
        seg2 = segmented & (gcol >= (seg_cols + seg_cols)[: HEADER_BITS + 3])
        lo = pyrtl.select(seg2, d["lo2"], pyrtl.select(seg1, d["lo1"], d["lo"]))
        hi = pyrtl.select(seg2, d["hi2"], pyrtl.select(seg1, d["hi1"], d["hi"]))
        values = {
            "valid": accept & (c.count > i),
            "x": x,
            "mult": pyrtl.select(raw, pyrtl.Const(1, MULT_BITS), mult),
            "shift": pyrtl.select(raw, pyrtl.Const(0, SHIFT_BITS), shift),
            "offset": pyrtl.select(raw, pyrtl.Const(0, OFFSET_BITS), offset),
            "lo": pyrtl.select(raw, lo32, lo),
            "hi": pyrtl.select(raw, hi32, hi),
        }
        if spec.residual:
            values["r"] = pyrtl.select(residual, r_r[i], pyrtl.Const(0, spec.r_bits))
        regs: dict[str, Wire] = {}
        for name, w in values.items():
            reg = pyrtl.Register(len(w))
            reg.next <<= w
            regs[name] = reg
        stage.append(regs)
    addr1 = pyrtl.Register(len(caddr))
    addr1.next <<= caddr
    last1 = pyrtl.Register(1)
    last1.next <<= accept & c.last
    skip_mult, skip_shift = d["skip_mult"], d["skip_shift"][:SHIFT_BITS]
    lane_lat = RESIDUAL_LATENCY if spec.residual else LATENCY
    half_bits = _clog2(spec.tile_rows * words)
    out_b = Banks(e, 2 << half_bits, 1, ACC_BITS)
    out_addr = addr1
    for _ in range(lane_lat):
        nxt = pyrtl.Register(len(out_addr))
        nxt.next <<= out_addr
        out_addr = nxt
    for i, s in enumerate(stage):
        if spec.residual:
            ov, od = residual_lane(
                s["valid"],
                s["x"],
                s["mult"],
                s["shift"],
                s["offset"],
                sext(s["r"], ACC_BITS),
                skip_mult,
                skip_shift,
                s["lo"],
                s["hi"],
                clamp_per_element=True,
            )
        else:
            ov, od = requant_lane(
                s["valid"],
                s["x"],
                s["mult"],
                s["shift"],
                s["offset"],
                s["lo"],
                s["hi"],
                clamp_per_element=True,
            )
        at = pyrtl.concat(ibuf, out_addr[:half_bits])
        out_b.mems[i][at] <<= pyrtl.MemBlock.EnabledWrite(od, ov)
    tile_written = last1
    for _ in range(lane_lat):
        nxt = pyrtl.Register(1)
        nxt.next <<= tile_written
        tile_written = nxt

    # ---- input side FSM
    with pyrtl.conditional_assignment:
        with op_start:
            state.next |= _IDLE
        with state == _IDLE, take_hdr:
            state.next |= pyrtl.select(refuse, pyrtl.Const(_DROP), pyrtl.Const(_FETCH))
        with state == _FETCH, fetch_over:
            state.next |= _WAIT
        with state == _WAIT, ~pyrtl.select(ibuf, full[1], full[0]):
            state.next |= _COMPUTE
        with state == _COMPUTE, accept & c.last:
            state.next |= _DRAIN
        with state == _DRAIN, tile_written:
            state.next |= _IDLE
        with state == _DROP, c.valid & c.last:
            state.next |= _IDLE
    error = pyrtl.Register(1)
    error.next <<= pyrtl.select(op_start, zero, error | (take_hdr & refuse))

    # ---- write side: the tile's pieces (one per output segment it touches)
    held = [{f: hold_register(cur[f], tile_written & (ibuf == k)) for f in HEADER_FIELDS} for k in (0, 1)]
    wtile = {f: pyrtl.select(obuf, held[1][f], held[0][f]) for f in HEADER_FIELDS}
    wstate = pyrtl.Register(2)  # 0 idle, 1 start a piece, 2 writing it
    piece = pyrtl.Register(HEADER_BITS + 2)  # global column of the piece's first column
    tile_end = (wtile["n0"] + wtile["cols"])[: HEADER_BITS + 2]
    two_seg = (seg_cols + seg_cols)[: HEADER_BITS + 3]
    in1 = segmented & (piece >= seg_cols)
    in2 = segmented & (piece >= two_seg)
    seg_base = pyrtl.select(in2, two_seg, pyrtl.select(in1, seg_cols, pyrtl.Const(0)))[: HEADER_BITS + 3]
    last_seg = ~segmented | in2 | ((d["segments"] == 2) & in1)
    seg_end = pyrtl.select(in2 | ~in1, pyrtl.select(in2, pyrtl.Const(0), seg_cols), two_seg)
    piece_end = pyrtl.select(last_seg | (tile_end < seg_end), tile_end, seg_end)[: HEADER_BITS + 2]
    pc0 = (piece - wtile["n0"])[:HEADER_BITS]  # the piece's first tile column
    pc_end = (piece_end - wtile["n0"])[:HEADER_BITS]
    op_sel = {
        k: pyrtl.select(in2, d[f"c2_{k}"], pyrtl.select(in1, d[f"c1_{k}"], d[f"c_{k}"]))
        for k in ("addr", "row_stride", "head_stride", "bits", "signed")
    }
    w_start = wstate == 1
    wports = dma_ports(
        [
            (
                pyrtl.Const(1),
                {
                    "op_addr": op_sel["addr"],
                    "op_row_stride": op_sel["row_stride"],
                    "op_head_stride": op_sel["head_stride"],
                    "op_bits": op_sel["bits"],
                    "op_signed": op_sel["signed"],
                    "win_head": wtile["h"],
                    "win_row0": wtile["m0"],
                    "win_rows": wtile["rows"],
                    "win_col0": (piece - seg_base)[:HEADER_BITS],
                    "win_cols": (piece_end - piece)[:HEADER_BITS],
                },
            )
        ]
    )
    # the read pointer: tile row ``prow`` (its first word ``pbase``), tile column ``pcol``
    ew = spec.write.elems_per_cycle
    prow = pyrtl.Register(HEADER_BITS)
    pbase = pyrtl.Register(24)
    pcol = pyrtl.Register(HEADER_BITS)
    feeding = (wstate == 2) & (prow < wtile["rows"])
    in_valid = feeding
    w_ready = pyrtl.WireVector(1)
    advance = in_valid & w_ready
    col_next = (pcol + ew)[:HEADER_BITS]
    wrap = col_next >= pc_end
    n_col = pyrtl.select(w_start, pc0, pyrtl.select(advance, pyrtl.select(wrap, pc0, col_next), pcol))
    n_base = pyrtl.select(w_start, pyrtl.Const(0), pyrtl.select(advance & wrap, pbase + words, pbase))[
        : len(pbase)
    ]
    prow.next <<= pyrtl.select(w_start, zero, pyrtl.select(advance & wrap, prow + 1, prow))
    pcol.next <<= n_col
    pbase.next <<= n_base
    n_lo = n_col[:lg] if lg else pyrtl.Const(0, 1)
    n_word = (n_base + (n_col[lg:] if lg else n_col))[:half_bits]
    bank_addr = []
    for b in range(e):
        a = pyrtl.Register(out_b.addr_bits)
        a.next <<= pyrtl.concat(obuf, (n_word + (n_lo > b))[:half_bits] if lg else n_word)
        bank_addr.append(a)
    outs = out_b.read(bank_addr)
    elems_w = _rotate(outs, pcol[:lg] if lg else pyrtl.Const(0, 1))[:ew]
    in_data = pyrtl.concat_list(elems_w)
    wtr = writer(spec.write, w_start, wports, wr, in_valid, in_data)
    w_ready <<= wtr.in_ready
    piece_over = (wstate == 2) & wtr.done
    tile_over = piece_over & (piece_end == tile_end)
    with pyrtl.conditional_assignment:
        with op_start:
            wstate.next |= 0
        with wstate == 0, pyrtl.select(obuf, full[1], full[0]):
            wstate.next |= 1
            piece.next |= wtile["n0"]
        with wstate == 1:
            wstate.next |= 2
        with wstate == 2, wtr.done:
            wstate.next |= pyrtl.select(tile_over, pyrtl.Const(0), pyrtl.Const(1))
            piece.next |= piece_end
    for k, reg in enumerate(full):
        filled, emptied = tile_written & (ibuf == k), tile_over & (obuf == k)
        reg.next <<= pyrtl.select(op_start, zero, pyrtl.select(filled, pyrtl.Const(1), reg & ~emptied))
    ibuf.next <<= pyrtl.select(op_start, zero, ibuf ^ tile_written)
    obuf.next <<= pyrtl.select(op_start, zero, obuf ^ tile_over)

    # ---- done
    seen = pyrtl.Register(1)
    finished = pyrtl.Register(1)
    idle = (state == _IDLE) & ~pend & ~full[0] & ~full[1] & (wstate == 0)
    fire = seen & idle & ~finished
    seen.next <<= pyrtl.select(op_start, zero, seen | core_done)
    finished.next <<= pyrtl.select(op_start, zero, finished | fire)
    done = pyrtl.Register(1)
    done.next <<= fire
    busy = pyrtl.Register(1)
    busy.next <<= pyrtl.select(op_start, pyrtl.Const(1), busy & ~fire)
    return Epilogue(ready | dropping, done, busy, error, rdr, wtr)


def build_epilogue(spec: EpilogueSpec) -> None:
    """The unit with named ports in the working block: inputs ``op_start``, ``d_<field>``,
    ``c_tile`` … (:func:`c_stream_inputs`), ``core_done``, the AXI4 slaves' ``m_*``; outputs
    ``c_ready``, ``done``, ``busy``, ``error`` and the masters' ``m_*`` (one read and one write
    channel on prefix ``m_``)."""
    op_start = pyrtl.Input(1, "op_start")
    d = descriptor_inputs()
    unit = epilogue(
        spec,
        op_start,
        d,
        read_channel_inputs(spec.read.data_bits),
        write_channel_inputs(),
        c_stream_inputs(spec.elems),
        pyrtl.Input(1, "core_done"),
    )
    outputs = {
        **unit.reader.ports(spec.read.data_bits),
        **unit.writer.ports(spec.write.data_bits),
        "c_ready": unit.ready,
        "done": unit.done,
        "busy": unit.busy,
        "error": unit.error,
    }
    for name, wire in outputs.items():
        output_port(name, wire)


@dataclass(frozen=True)
class EpilogueRun:
    """A simulated op: the DRAM image after it, the cycles from ``op_start`` to ``done``, per tile
    the cycle of its header and the cycle its last word was taken, and ``error``."""

    image: npt.NDArray[np.uint8]
    cycles: int
    headers: tuple[int, ...]
    last_words: tuple[int, ...]
    error: bool


Tile: TypeAlias = tuple[int, int, int, int, int]  # h, m0, rows, n0, cols


def _words(acc: npt.NDArray[np.int64], tile: Tile, elems: int) -> list[tuple[int, int, bool, bool]]:
    """The C words of ``tile`` (data, count, row_end, last)."""
    h, m0, rows, n0, cols = tile
    out = []
    for r in range(rows):
        for c in range(0, cols, elems):
            part = acc[h, m0 + r, n0 + c : n0 + min(c + elems, cols)]
            data = 0
            for i, v in enumerate(part):
                data |= (int(v) & 0xFFFFFFFF) << (ACC_BITS * i)
            row_end = c + elems >= cols
            out.append((data, len(part), row_end, row_end and r == rows - 1))
    return out


Job: TypeAlias = tuple[Descriptor, npt.ArrayLike, Sequence[Tile]]


def simulate_epilogue(
    spec: EpilogueSpec,
    image: npt.NDArray[np.uint8],
    d: Descriptor,
    acc: npt.ArrayLike,
    tiles: Sequence[Tile],
    latency_cycles: int = 8,
    bytes_per_cycle: float | None = None,
    stall: float = 0.0,
    seed: int = 0,
    max_cycles: int = 200_000,
) -> EpilogueRun:
    """Run GEMM ``d``'s epilogue on a copy of ``image``: the accumulators ``acc`` (``repeat, m,
    n``, bias not added) streamed as ``tiles`` (:func:`simulate_epilogues` of one op)."""
    return simulate_epilogues(
        spec, image, [(d, acc, tiles)], latency_cycles, bytes_per_cycle, stall, seed, max_cycles
    )


def simulate_epilogues(
    spec: EpilogueSpec,
    image: npt.NDArray[np.uint8],
    jobs: Sequence[Job],
    latency_cycles: int = 8,
    bytes_per_cycle: float | None = None,
    stall: float = 0.0,
    seed: int = 0,
    max_cycles: int = 200_000,
) -> EpilogueRun:
    """Run GEMM epilogues one after another on one unit and a copy of ``image``: per job
    (descriptor, accumulators ``repeat × m × n`` without the bias, tiles) ``op_start`` (the cycle
    after the job before's ``done``), each tile's header (the cycle after ``op_start`` or after
    the tile before's last word) and words (offered every cycle, or idle with probability
    ``stall``), ``core_done`` the cycle after the last word, against
    :class:`hwmodel.rtl.dram.Dram`. Every writer window is checked for byte alignment first
    (:func:`hwmodel.arch.dma.check_write_alignment`). ``cycles``: to the last ``done``; ``error``:
    any op's. Resets the working block."""
    if spec.read.data_bits != spec.write.data_bits:
        raise ValueError("the testbench DRAM has one bus width: read and write builds must agree")
    ops = []
    for d, acc, tiles in jobs:
        a = np.asarray(acc, dtype=np.int64).reshape(d.repeat, d.m, d.n)
        for tile in tiles:
            for op, win in writer_windows(d, tile):
                check_write_alignment(op, win)
        ops.append((descriptor_values(d), [(t, _words(a, t, spec.elems)) for t in tiles]))
    fresh_block()
    build_epilogue(spec)
    sim = pyrtl.FastSimulation()
    dram = Dram(image.copy(), spec.read.data_bits, latency_cycles, bytes_per_cycle)
    rng = np.random.default_rng(seed)
    header: Tile = (0, 0, 0, 0, 0)
    word_at, core_done, error = 0, False, False
    headers: list[int] = []
    last_words: list[int] = []
    job, start, next_header = 0, 0, 1
    fields, queue = ops[0]
    for cycle in range(max_cycles):
        inputs = {
            "op_start": int(cycle == start),
            "core_done": int(core_done),
            **fields,
            **dram.inputs(cycle),
        }
        core_done = False
        pulse = bool(queue) and cycle == next_header
        if pulse:
            header = queue[0][0]
            headers.append(cycle)
            word_at = 0
        words = queue[0][1] if queue and not pulse and cycle > next_header else []
        offer = bool(words) and word_at < len(words) and rng.random() >= stall
        data, count, row_end, last = words[word_at] if offer else (0, 1, False, False)
        inputs |= {"c_tile": int(pulse), "c_valid": int(offer), "c_data": data, "c_count": count}
        inputs |= {"c_row_end": int(row_end), "c_last": int(last)}
        inputs |= {f"c_{f}": v for f, v in zip(HEADER_FIELDS, header, strict=True)}
        sim.step(inputs)
        dram.observe(cycle, sim.inspect)
        if offer and sim.inspect("c_ready"):
            word_at += 1
            if last:
                last_words.append(cycle)
                queue.pop(0)
                next_header = cycle + 1
                core_done = not queue
        if sim.inspect("done"):
            error = error or bool(sim.inspect("error"))
            job += 1
            if job == len(ops):
                return EpilogueRun(dram.image, cycle, tuple(headers), tuple(last_words), error)
            fields, queue = ops[job]
            start, next_header = cycle + 1, cycle + 2
    raise RuntimeError(f"the epilogue did not finish within {max_cycles} cycles")


def writer_windows(d: Descriptor, tile: Tile) -> list[tuple[Operand, Window]]:
    """The writer transfers of ``tile`` (one per output segment it touches): operand and window."""
    h, m0, rows, n0, cols = tile
    segmented = d.segments > 1 and not d.has(F_RAW) and not d.has(F_RESIDUAL)
    out = []
    col = n0
    while col < n0 + cols:
        seg = min(col // d.seg_cols, d.segments - 1) if segmented else 0
        end = (
            n0 + cols
            if seg == (d.segments - 1 if segmented else 0)
            else min(n0 + cols, (seg + 1) * d.seg_cols)
        )
        base = seg * d.seg_cols if segmented else 0
        out.append((d.output(seg)[0], Window(h, m0, rows, col - base, end - col)))
        col = end
    return out
