"""PyRTL generator of the tile DMA: the reader that brings a window of a bit-packed operand from
DRAM to the tile buffers as a stream of elements, and the writer that packs a stream of results
back into the operand's layout (:mod:`hwmodel.arch.program`'s addressing; bursts and exact cycle
counts: :mod:`hwmodel.arch.dma`). AXI conventions as :mod:`hwmodel.rtl.sequencer` (``m_ar*`` /
``m_r*``, ``m_aw*`` / ``m_w*`` / ``m_b*``, one ID, INCR bursts, ``a?size`` = the bus width).
Build parameters: ``data_bits`` (a power of two ≥ 8), ``elems_per_cycle`` and ``max_bits``
(``elems_per_cycle · max_bits ≤ data_bits``), ``max_burst`` (≤ 256 beats), ``max_outstanding``
(bursts in flight).

**Transfer inputs** (sampled in the ``start`` cycle, held by the DMA): ``op_addr`` (byte, 32
bits), ``op_row_stride``, ``op_head_stride`` (elements, 32 bits), ``op_bits`` (1 … ``max_bits``),
``op_signed``, and the window ``win_head``, ``win_row0``, ``win_rows``, ``win_col0``,
``win_cols`` (16 bits each, ``rows``, ``cols`` ≥ 1).

**Reader** (:func:`tile_reader`): an address generator walks the window's rows and issues each
row's beats as INCR bursts (:func:`hwmodel.arch.dma.bursts`: ≤ ``max_burst`` beats, never across
4 KiB), one address a cycle from the cycle after ``start``, up to ``max_outstanding`` bursts
ahead of the data (``m_arvalid`` … ``m_arburst``); ``m_rready`` is high while the unpacker's
two-beat window has room. The unpacker takes each row from its bit offset in its first beat and
puts out ``out_count`` ≤ ``elems_per_cycle`` elements a cycle (``out_valid``; element ``i`` at
``out_data[i·max_bits …]``, sign- or zero-extended to ``max_bits``; a word never mixes two rows;
``out_row_end`` on a row's last word, ``out_last`` on the window's; no back-pressure), row-major;
``done`` is high the cycle after the last word.

**Writer** (:func:`tile_writer`): the same address walk on ``m_aw*`` (``m_bready`` high, a burst
retired by its response); ``in_ready`` takes a word of ``≤ elems_per_cycle`` elements of one row
(``in_valid``, ``in_data`` as ``out_data``; a row's last word may be short: the writer counts the
window), the packer shifts its codes into a two-beat window at the row's bit offset and sends
each beat when full (``m_wvalid``, ``m_wdata``, ``m_wstrb``, ``m_wlast``; a burst's data only
after its address), a row's last beat(s) when its last word is in; ``done`` the second cycle
after the last response. **Partial bytes:** the writer never reads DRAM (no read-modify-write)
and ``m_wstrb`` covers whole bytes, so every window row must start on a byte boundary
(``row_stride·bits``, ``head_stride·bits`` and ``col0·bits`` multiples of 8 where they matter:
:func:`hwmodel.arch.dma.check_write_alignment` names the first row that does not, and
:func:`simulate_writer` refuses such a window); a row that ends inside a byte is written to the
end of that byte, its other bits 0. That is what the compiler's layout allows
(``codesign/program/_compile.py``, *write alignment*): row strides padded so rows start on bytes,
and a window that ends inside a byte ends at its row's last code, the rest of the byte padding.

**Timing** (cycle 0 the ``start`` pulse): exactly :func:`hwmodel.arch.dma.read_cycles` /
:func:`~hwmodel.arch.dma.write_cycles` against the testbench DRAM of :func:`simulate_reader` /
:func:`simulate_writer` (latency ``L`` from an address to its first beat / from a last write beat
to its response, one beat a cycle, and a bandwidth cap: beat ``k`` not before
``⌈(k+1)·beat_bytes / B⌉``). A row of ``nb`` beats in one burst, the unpacker keeping up, reads in
``1 + L + nb + 1`` cycles. The model's price of a tile transfer is ``⌈bytes / bytes_per_cycle⌉``
(plus ``dram_latency_cycles`` on a layer's first load, :func:`hwmodel.arch.controller.layer_schedule`);
the DMA differs by (1) whole beats: each window row is its own beats, ``⌊(S + cols·bits − 1) /
data_bits⌋ − ⌊S / data_bits⌋ + 1`` of them, so a row that is not beat-aligned pays a partial beat
at each end; (2) the bus: one beat a cycle, ``data_bits / 8`` bytes, whatever the device's
``bytes_per_cycle``; (3) the output stream: ``elems_per_cycle`` elements a cycle, ``data_bits /
bits`` per beat would be needed to keep up; (4) latency: ``L`` once per transfer when
``max_outstanding`` bursts cover ``L`` cycles of beats, else again every ``max_outstanding``
bursts (row-by-row bursts are short: 4 beats for a 256-byte row on 512 bits). DeiT-B fc1 on
ZCU102 at 200 MHz (96 B/cycle, ``L`` = 43 cycles from the 214 ns of the calibration), an A tile of
64 tokens × 256 channels at 8 bits (16 KiB; the weight tile 64 × 256 of the 3072 × 768 weight is
the same): the model charges ``⌈16384 / 96⌉`` = 171 cycles (214 with the first-load latency); the
DMA (``max_burst`` 16) takes 2,093 cycles on 128 bits with 8 elements a cycle (output-bound: 8 B a
cycle), 1,069 with 16 a cycle (a ``max_bits`` = 8 build; bus-bound: 1,024 beats), 797 on 512 bits
with 32 a cycle and 4 bursts in flight (latency-bound: 4 bursts of 4 beats per 43 cycles), 557
with 8 or 16 in flight (output-bound: 512 words), and 301 = 1 + 43 + 256 + 1 with 64 a cycle
(``max_bits`` 8) and 16 in flight — the best a 512-bit port does, 1.76× the model's 171 (64 B a
beat against the 96 B a cycle the model assumes). Writing the C tile (64 × 256 of the 197 × 3072
output, 8 bits, 16 KiB) takes 2,157 / 1,133 / 816 / 365 cycles (128 / 8; 128 / 16; 512 / 32 with
4 in flight; 512 / 64 with 16; :func:`~hwmodel.arch.dma.write_cycles`: the last burst's response
latency adds ``L + 1``).

**Area** (``python -m hwmodel.rtl.dma``: Yosys ``synth_xilinx -family xcup``, ``max_bits`` 16,
``max_burst`` 16, 4 bursts in flight): reader 64 bits / 4 elements 2,102 LUT, 363 FF, 127
CARRY, 10 DSP48E2 (the start's address products); 128 / 8: 4,573 LUT, 492 FF, 131 CARRY, 10 DSP;
writer 64 / 4: 2,208 LUT, 456 FF, 186 CARRY, 10 DSP; 128 / 8: 3,847 LUT, 582 FF, 208 CARRY, 10
DSP; 512 / 8 (measured once; ~4 min a synthesis, so not in the printed table): reader 8,012 LUT,
1,262 FF, 128 CARRY, 11 DSP; writer 6,016 LUT, 1,354 FF, 227 CARRY, 11 DSP. The barrel shifters of
the two-beat windows dominate and grow with ``data_bits`` (synthesis took 38–230 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.dma import (
    BOUNDARY_BYTES,
    DmaConfig,
    Window,
    check_transfer,
    check_write_alignment,
)
from hwmodel.arch.program import ADDR_BITS, Operand
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dram import Dram
from hwmodel.rtl.engines import hold_register
from hwmodel.rtl.verilog import working_block_verilog

Wire: TypeAlias = pyrtl.WireVector

#: Stream bit addresses (8 · a 32-bit byte address).
BIT_ADDR_BITS = ADDR_BITS + 3
COUNT_BITS = 16
#: Beats of one window row (at most 2^16 elements of 16 bits on a 8-bit bus) and its bits.
ROW_BEATS_BITS = 24
ROW_BITS = 24

_TRANSFER_PORTS = (
    ("op_addr", ADDR_BITS),
    ("op_row_stride", ADDR_BITS),
    ("op_head_stride", ADDR_BITS),
    ("op_bits", 7),
    ("op_signed", 1),
    ("win_head", COUNT_BITS),
    ("win_row0", COUNT_BITS),
    ("win_rows", COUNT_BITS),
    ("win_col0", COUNT_BITS),
    ("win_cols", COUNT_BITS),
)


def _log2(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


def _fit(w: Wire, width: int) -> Wire:
    return w[:width] if len(w) > width else w.zero_extended(width)


def _min(a: Wire, b: Wire) -> Wire:
    return pyrtl.select(a < b, a, b)


@dataclass(frozen=True)
class Transfer:
    """A transfer's inputs: ``now_*`` the ports' values (valid in the ``start`` cycle only), the
    others held from the ``start`` cycle on."""

    start: Wire
    bits: Wire
    signed: Wire
    row_step: Wire  # rs · bits
    row_bits: Wire  # cols · bits
    cols: Wire
    now_first_bit: Wire  # the first row's first stream bit
    now_rows: Wire
    now_cols: Wire
    now_row_bits: Wire


def transfer_inputs(start: Wire, ports: Mapping[str, Wire] | None = None) -> Transfer:
    """The transfer inputs (module docstring; ``ports`` by name, cut or zero-extended to their
    widths; ``None``: top-level input ports of those names) and their held registers."""
    if ports is None:
        p = {name: pyrtl.Input(width, name) for name, width in _TRANSFER_PORTS}
    else:
        p = {name: _fit(ports[name], width) for name, width in _TRANSFER_PORTS}
    bits = p["op_bits"]
    index = p["win_head"] * p["op_head_stride"] + p["win_row0"] * p["op_row_stride"] + p["win_col0"]
    first = (pyrtl.concat(p["op_addr"], pyrtl.Const(0, 3)) + index * bits)[:BIT_ADDR_BITS]
    row_bits = (p["win_cols"] * bits)[:ROW_BITS]
    return Transfer(
        start=start,
        bits=hold_register(bits, start),
        signed=hold_register(p["op_signed"], start),
        row_step=hold_register((p["op_row_stride"] * bits)[:BIT_ADDR_BITS], start),
        row_bits=hold_register(row_bits, start),
        cols=hold_register(p["win_cols"], start),
        now_first_bit=first,
        now_rows=p["win_rows"],
        now_cols=p["win_cols"],
        now_row_bits=row_bits,
    )


def _pick(start: Wire, at_start: Wire, cases: list[tuple[Wire, Wire]], reg: Wire) -> Wire:
    """``at_start`` in the ``start`` cycle, else the first case whose condition holds, else ``reg``
    (each value cut to ``len(reg)`` bits)."""
    out: Wire = reg
    for cond, value in reversed(cases):
        out = pyrtl.select(cond, value[: len(reg)], out)
    return pyrtl.select(start, at_start[: len(reg)], out)


@dataclass(frozen=True)
class AddressChannel:
    """An AXI4 address channel's master side: ``valid``, byte ``addr``, ``length`` (beats − 1);
    ``busy`` while bursts are left to issue."""

    valid: Wire
    addr: Wire
    length: Wire
    busy: Wire

    def ports(self, prefix: str, data_bits: int) -> dict[str, Wire]:
        """The channel's AXI4 ports (``<prefix>valid`` … ``<prefix>burst``: INCR, full-width beats)."""
        return {
            f"{prefix}valid": self.valid,
            f"{prefix}addr": self.addr,
            f"{prefix}len": self.length,
            f"{prefix}size": pyrtl.Const(_log2(data_bits // 8), 3),
            f"{prefix}burst": pyrtl.Const(1, 2),
        }


def burst_generator(t: Transfer, ready: Wire, room: Wire, data_bits: int, max_burst: int) -> AddressChannel:
    """Walk the window's rows and put out their bursts (:func:`hwmodel.arch.dma.bursts`), one a
    cycle from the cycle after ``start`` while ``room`` (outstanding bursts) allows; a burst
    leaves with ``ready`` (the address handshake)."""
    shift = _log2(data_bits)
    page_bits = _log2(BOUNDARY_BYTES // (data_bits // 8))

    def row_span(row_bit: Wire, row_bits: Wire) -> tuple[Wire, Wire]:
        first = row_bit[shift:]
        last = (row_bit + row_bits - 1)[shift:BIT_ADDR_BITS]
        return first, (last - first + 1)[:ROW_BEATS_BITS]

    active = pyrtl.Register(1)
    row_bit = pyrtl.Register(BIT_ADDR_BITS)
    beat = pyrtl.Register(BIT_ADDR_BITS - shift)
    left = pyrtl.Register(ROW_BEATS_BITS)
    rows_left = pyrtl.Register(COUNT_BITS)
    valid = active & room
    fire = valid & ready
    to_page = pyrtl.Const(1 << page_bits, page_bits + 1) - beat[:page_bits]
    cap = _min(left, pyrtl.Const(max_burst, ROW_BEATS_BITS))
    n = _min(cap, to_page[: page_bits + 1].zero_extended(ROW_BEATS_BITS))
    row_over = fire & (n == left)
    next_bit = (row_bit + t.row_step)[:BIT_ADDR_BITS]
    first0, beats0 = row_span(t.now_first_bit, t.now_row_bits)
    first1, beats1 = row_span(next_bit, t.row_bits)
    active.next <<= pyrtl.select(t.start, pyrtl.Const(1, 1), active & ~(row_over & (rows_left == 1)))
    row_bit.next <<= _pick(t.start, t.now_first_bit, [(row_over, next_bit)], row_bit)
    beat.next <<= _pick(t.start, first0, [(row_over, first1), (fire, beat + n)], beat)
    left.next <<= _pick(t.start, beats0, [(row_over, beats1), (fire, left - n)], left)
    rows_left.next <<= _pick(t.start, t.now_rows, [(row_over, rows_left - 1)], rows_left)
    addr = (pyrtl.concat(beat, pyrtl.Const(0, shift - 3)) if shift > 3 else beat)[:ADDR_BITS]
    return AddressChannel(valid, addr, (n - 1)[:8], active)


def outstanding(issue: Wire, retire: Wire, limit: int) -> pyrtl.Register:
    """The bursts in flight: issued (``issue``) and not yet retired (``retire``: a burst's last
    beat or its response); another may go while it is below ``limit``."""
    count = pyrtl.Register(max(limit, 1).bit_length() + 1)
    count.next <<= (count + issue - retire)[: len(count)]
    return count


def _elements(group: Wire, bits: Wire, signed: Wire, elems: int, max_bits: int) -> Wire:
    """``elems`` codes of ``bits`` bits from the bottom of ``group``, each sign-extended (when
    ``signed``) or zero-extended to ``max_bits``, element ``i`` at bits ``i·max_bits``."""
    mask = (pyrtl.shift_left_logical(pyrtl.Const(1, max_bits + 1), bits) - 1)[:max_bits]
    out = []
    for i in range(elems):
        code = group if i == 0 else pyrtl.shift_right_logical(group, (bits * i)[: len(group).bit_length()])
        code = code[:max_bits] & mask
        top = pyrtl.shift_right_logical(code, (bits - 1)[: len(bits)])[0]
        out.append(pyrtl.select(signed & top, code | ~mask, code))
    return pyrtl.concat_list(out)


@dataclass(frozen=True)
class ElementStream:
    """A stream of up to ``elems_per_cycle`` elements a cycle (module docstring)."""

    valid: Wire
    data: Wire
    count: Wire
    row_end: Wire
    last: Wire


def unpacker(t: Transfer, rvalid: Wire, rdata: Wire, elems: int, max_bits: int) -> tuple[ElementStream, Wire]:
    """The read data's window rows as an element stream; returns it and ``rready``."""
    data_bits = len(rdata)
    shift = _log2(data_bits)
    lo, hi = pyrtl.Register(data_bits), pyrtl.Register(data_bits)
    nvalid = pyrtl.Register(2)
    active = pyrtl.Register(1)
    ptr = pyrtl.Register(shift)  # bit offset of the next element in ``lo``
    row_off = pyrtl.Register(shift)  # the current row's offset in its first beat
    rem = pyrtl.Register(COUNT_BITS)  # elements left in the row
    rows_left = pyrtl.Register(COUNT_BITS)
    width = shift + 1
    k = _min(rem, pyrtl.Const(elems, COUNT_BITS))
    k_bits = (k[:width] * t.bits)[:width]
    end = (ptr + k_bits)[: width + 1]  # one past the group's last bit in the window
    need_hi = end > data_bits
    emit = active & (nvalid != 0) & (~need_hi | (nvalid == 2))
    row_end = rem <= elems
    last = row_end & (rows_left == 1)
    next_off = (row_off + t.row_step[:shift])[:shift]
    pop_in_row = pyrtl.select(end >= data_bits, pyrtl.Const(1, 2), pyrtl.Const(0, 2))
    pop = pyrtl.select(
        emit,
        pyrtl.select(row_end, pyrtl.select(need_hi, pyrtl.Const(2, 2), pyrtl.Const(1, 2)), pop_in_row),
        0,
    )
    after = (nvalid - pop)[:2]
    rready = after < 2
    push = rvalid & rready
    lo_after = pyrtl.select(pop == 0, lo, hi)
    lo.next <<= pyrtl.select(push & (after == 0), rdata, lo_after)
    hi.next <<= pyrtl.select(push & (after == 1), rdata, hi)
    nvalid.next <<= pyrtl.select(t.start, pyrtl.Const(0, 2), (after + push)[:2])
    first_off = t.now_first_bit[:shift]
    ptr.next <<= _pick(t.start, first_off, [(emit & row_end, next_off), (emit, end)], ptr)
    row_off.next <<= _pick(t.start, first_off, [(emit & row_end, next_off)], row_off)
    rem.next <<= _pick(t.start, t.now_cols, [(emit & row_end, t.cols), (emit, rem - k)], rem)
    rows_left.next <<= _pick(t.start, t.now_rows, [(emit & row_end, rows_left - 1)], rows_left)
    active.next <<= pyrtl.select(t.start, pyrtl.Const(1, 1), active & ~(emit & last))
    window = pyrtl.concat(hi, lo)
    group = pyrtl.shift_right_logical(window, ptr)[: elems * max_bits]
    data = _elements(group, t.bits, t.signed, elems, max_bits)
    stream = ElementStream(emit, data, k[: elems.bit_length()], emit & row_end, emit & last)
    return stream, rready


@dataclass(frozen=True)
class ReadChannel:
    """An AXI4 read channel's inputs to its master: ``arready``, ``rvalid``, ``rdata``, ``rlast``."""

    arready: Wire
    rvalid: Wire
    rdata: Wire
    rlast: Wire


def read_channel_inputs(data_bits: int, prefix: str = "m_") -> ReadChannel:
    """A read channel's inputs as top-level input ports (``m_arready`` …)."""
    return ReadChannel(
        pyrtl.Input(1, f"{prefix}arready"),
        pyrtl.Input(1, f"{prefix}rvalid"),
        pyrtl.Input(data_bits, f"{prefix}rdata"),
        pyrtl.Input(1, f"{prefix}rlast"),
    )


def read_channel_wires(data_bits: int) -> ReadChannel:
    """A read channel's inputs as wires for a top-level to drive (its interconnect's outputs)."""
    return ReadChannel(
        pyrtl.WireVector(1), pyrtl.WireVector(1), pyrtl.WireVector(data_bits), pyrtl.WireVector(1)
    )


@dataclass(frozen=True)
class Reader:
    """A reader's outputs: its AXI4 read master side (``ar``, ``rready``), the element stream and
    ``done`` (the cycle after the last word)."""

    ar: AddressChannel
    rready: Wire
    stream: ElementStream
    done: Wire

    def ports(self, data_bits: int, prefix: str = "m_") -> dict[str, Wire]:
        """The master's AXI4 output ports by name (``m_arvalid`` … ``m_rready``)."""
        return {**self.ar.ports(f"{prefix}ar", data_bits), f"{prefix}rready": self.rready}


def reader(cfg: DmaConfig, start: Wire, ports: Mapping[str, Wire] | None, axi: ReadChannel) -> Reader:
    """The reader (module docstring) on wires: ``start``, the transfer inputs ``ports``
    (:func:`transfer_inputs`) and the read channel ``axi``."""
    t = transfer_inputs(start, ports)
    room = pyrtl.WireVector(1)
    ar = burst_generator(t, axi.arready, room, cfg.data_bits, cfg.max_burst)
    stream, rready = unpacker(t, axi.rvalid, axi.rdata, cfg.elems_per_cycle, cfg.max_bits)
    retire = axi.rvalid & rready & axi.rlast
    room <<= outstanding(ar.valid & axi.arready, retire, cfg.max_outstanding) < cfg.max_outstanding
    done = pyrtl.Register(1)
    done.next <<= stream.last
    return Reader(ar, rready, stream, done)


def tile_reader(cfg: DmaConfig) -> None:
    """The reader with named ports (module docstring) in the working block."""
    r = reader(cfg, pyrtl.Input(1, "start"), None, read_channel_inputs(cfg.data_bits))
    outputs = {
        **r.ports(cfg.data_bits),
        "out_valid": r.stream.valid,
        "out_data": r.stream.data,
        "out_count": r.stream.count,
        "out_row_end": r.stream.row_end,
        "out_last": r.stream.last,
        "done": r.done,
    }
    for name, wire in outputs.items():
        output_port(name, wire)


def packer(
    t: Transfer, in_valid: Wire, in_data: Wire, wready: Wire, data_bits: int, elems: int, max_bits: int
) -> tuple[Wire, Wire, Wire, Wire, Wire]:
    """Pack the window rows of an element stream into write beats; returns ``in_ready``,
    ``wvalid``, ``wdata``, ``wstrb`` and ``busy`` (rows or beats left)."""
    shift = _log2(data_bits)
    strobes = data_bits // 8
    acc = pyrtl.Register(2 * data_bits)
    fill = pyrtl.Register(shift + 2)  # bits of ``acc`` taken (from bit 0 of its first beat)
    first = pyrtl.Register(_log2(strobes) + 1)  # the first byte of the low beat to write
    flush = pyrtl.Register(1)  # the row is in: send what is left
    active = pyrtl.Register(1)
    row_off = pyrtl.Register(shift)
    rem = pyrtl.Register(COUNT_BITS)
    rows_left = pyrtl.Register(COUNT_BITS)
    lo_full = fill >= data_bits
    wvalid = active & (lo_full | (flush & (fill != 0)))
    send = wvalid & wready
    fill_after = pyrtl.select(send, pyrtl.select(lo_full, fill - data_bits, pyrtl.Const(0)), fill)[
        : len(fill)
    ]
    acc_after = pyrtl.select(send, acc[data_bits:].zero_extended(2 * data_bits), acc)
    k = _min(rem, pyrtl.Const(elems, COUNT_BITS))
    k_bits = (k[: shift + 1] * t.bits)[: shift + 1]
    in_ready = active & ~flush & ((fill_after + k_bits) <= 2 * data_bits)
    take = in_valid & in_ready
    row_in = take & (rem <= elems)
    mask_bits = elems * max_bits
    code_mask = (pyrtl.shift_left_logical(pyrtl.Const(1, max_bits + 1), t.bits) - 1)[:max_bits]
    packed: Wire = pyrtl.Const(0, mask_bits)
    for i in range(elems):
        code = (in_data[i * max_bits : (i + 1) * max_bits] & code_mask).zero_extended(mask_bits)
        at = (t.bits * i)[: mask_bits.bit_length()]
        packed = packed | (code if i == 0 else pyrtl.shift_left_logical(code, at))
    keep = (pyrtl.shift_left_logical(pyrtl.Const(1, mask_bits + 1), k_bits) - 1)[:mask_bits]
    placed = pyrtl.shift_left_logical((packed & keep).zero_extended(2 * data_bits), fill_after)
    acc.next <<= pyrtl.select(take, acc_after | placed, acc_after)
    emptied = flush & send & ~(fill > data_bits)  # the row's last beat leaves
    next_off = (row_off + t.row_step[:shift])[:shift]
    first_off = t.now_first_bit[:shift]
    fill.next <<= _pick(t.start, first_off, [(emptied, next_off), (take, fill_after + k_bits)], fill_after)
    low_first = pyrtl.select(send, pyrtl.Const(0, len(first)), first)
    first.next <<= _pick(t.start, first_off[3:], [(emptied, next_off[3:])], low_first)
    flush.next <<= pyrtl.select(
        t.start, pyrtl.Const(0, 1), pyrtl.select(row_in, pyrtl.Const(1, 1), flush & ~emptied)
    )
    row_off.next <<= _pick(t.start, first_off, [(emptied, next_off)], row_off)
    rem.next <<= _pick(t.start, t.now_cols, [(row_in, t.cols), (take, rem - k)], rem)
    rows_left.next <<= _pick(t.start, t.now_rows, [(emptied, rows_left - 1)], rows_left)
    active.next <<= pyrtl.select(t.start, pyrtl.Const(1, 1), active & ~(emptied & (rows_left == 1)))
    # a row's last beat: its bytes up to the one holding its last bit (a partial byte's other
    # bits are 0: the padding the compiler leaves after a row that ends inside a byte)
    top = pyrtl.select(lo_full, pyrtl.Const(strobes, len(first) + 1), (fill + 7)[3 : len(fill)])
    upto = (pyrtl.shift_left_logical(pyrtl.Const(1, strobes + 1), top) - 1)[:strobes]
    below = (pyrtl.shift_left_logical(pyrtl.Const(1, strobes + 1), first) - 1)[:strobes]
    return in_ready, wvalid, acc[:data_bits], upto & ~below, active


@dataclass(frozen=True)
class WriteChannel:
    """An AXI4 write channel's inputs to its master: ``awready``, ``wready``, ``bvalid``."""

    awready: Wire
    wready: Wire
    bvalid: Wire


def write_channel_inputs(prefix: str = "m_") -> WriteChannel:
    """A write channel's inputs as top-level input ports (``m_awready`` …)."""
    return WriteChannel(
        pyrtl.Input(1, f"{prefix}awready"),
        pyrtl.Input(1, f"{prefix}wready"),
        pyrtl.Input(1, f"{prefix}bvalid"),
    )


def write_channel_wires() -> WriteChannel:
    """A write channel's inputs as wires for a top-level to drive."""
    return WriteChannel(pyrtl.WireVector(1), pyrtl.WireVector(1), pyrtl.WireVector(1))


@dataclass(frozen=True)
class Writer:
    """A writer's outputs: its AXI4 write master side, ``in_ready`` and ``done``."""

    aw: AddressChannel
    wvalid: Wire
    wdata: Wire
    wstrb: Wire
    wlast: Wire
    in_ready: Wire
    done: Wire

    def ports(self, data_bits: int, prefix: str = "m_") -> dict[str, Wire]:
        """The master's AXI4 output ports by name (``m_awvalid`` … ``m_bready``)."""
        return write_ports(self.aw, self.wvalid, self.wdata, self.wstrb, self.wlast, data_bits, prefix)


def write_ports(
    aw: AddressChannel, wvalid: Wire, wdata: Wire, wstrb: Wire, wlast: Wire, data_bits: int, prefix: str
) -> dict[str, Wire]:
    """An AXI4 write master's output ports by name (``<prefix>awvalid`` … ``<prefix>bready``: the
    response always taken)."""
    return {
        **aw.ports(f"{prefix}aw", data_bits),
        f"{prefix}wvalid": wvalid,
        f"{prefix}wdata": wdata,
        f"{prefix}wstrb": wstrb,
        f"{prefix}wlast": wlast,
        f"{prefix}bready": pyrtl.Const(1, 1),
    }


def writer(
    cfg: DmaConfig,
    start: Wire,
    ports: Mapping[str, Wire] | None,
    axi: WriteChannel,
    in_valid: Wire,
    in_data: Wire,
) -> Writer:
    """The writer (module docstring) on wires: ``start``, the transfer inputs ``ports``
    (:func:`transfer_inputs`), the write channel ``axi`` and the element stream in."""
    data_bits, max_outstanding = cfg.data_bits, cfg.max_outstanding
    t = transfer_inputs(start, ports)
    room = pyrtl.WireVector(1)
    aw = burst_generator(t, axi.awready, room, data_bits, cfg.max_burst)
    # a burst's write data follows its address: beats go while an address is ahead of them
    ahead = pyrtl.Register(max_outstanding.bit_length() + 1)
    may = ahead != 0
    in_ready, packed_valid, wdata, wstrb, packing = packer(
        t, in_valid, in_data, axi.wready & may, data_bits, cfg.elems_per_cycle, cfg.max_bits
    )
    wvalid = packed_valid & may
    # the W side walks the same bursts to know each one's last beat
    sent = wvalid & axi.wready
    wlast = pyrtl.WireVector(1)
    wburst = burst_generator(t, sent & wlast, pyrtl.Const(1, 1), data_bits, cfg.max_burst)
    in_burst = pyrtl.Register(8)
    wlast <<= in_burst == wburst.length
    in_burst.next <<= pyrtl.select(
        t.start | (sent & wlast), pyrtl.Const(0, 8), pyrtl.select(sent, in_burst + 1, in_burst)
    )
    issue = aw.valid & axi.awready
    count = outstanding(issue, axi.bvalid, max_outstanding)
    room <<= count < max_outstanding
    ahead.next <<= (ahead + issue - (sent & wlast))[: len(ahead)]
    running = pyrtl.Register(1)
    over = running & ~aw.busy & ~packing & (count == 0)
    running.next <<= pyrtl.select(t.start, pyrtl.Const(1, 1), running & ~over)
    done = pyrtl.Register(1)
    done.next <<= over
    return Writer(aw, wvalid, wdata, wstrb, wlast, in_ready, done)


def tile_writer(cfg: DmaConfig) -> None:
    """The writer with named ports (module docstring) in the working block."""
    w = writer(
        cfg,
        pyrtl.Input(1, "start"),
        None,
        write_channel_inputs(),
        pyrtl.Input(1, "in_valid"),
        pyrtl.Input(cfg.elems_per_cycle * cfg.max_bits, "in_data"),
    )
    for name, wire in {**w.ports(cfg.data_bits), "in_ready": w.in_ready, "done": w.done}.items():
        output_port(name, wire)


def transfer_values(op: Operand, win: Window) -> dict[str, int]:
    """The transfer input ports' values for ``win`` of ``op``."""
    return {
        "op_addr": op.addr,
        "op_row_stride": op.row_stride,
        "op_head_stride": op.head_stride,
        "op_bits": op.bits,
        "op_signed": op.signed,
        "win_head": win.head,
        "win_row0": win.row0,
        "win_rows": win.rows,
        "win_col0": win.col0,
        "win_cols": win.cols,
    }


@dataclass(frozen=True)
class ReadRun:
    """A simulated read: the elements (rows, cols), the cycles from ``start`` to ``done``, the
    bursts issued (byte address, beats), and the input ports' values in each cycle (to replay the
    run on the exported Verilog)."""

    values: npt.NDArray[np.int64]
    cycles: int
    bursts: tuple[tuple[int, int], ...]
    input_vectors: tuple[dict[str, int], ...]


def simulate_reader(
    image: npt.NDArray[np.uint8],
    op: Operand,
    win: Window,
    cfg: DmaConfig,
    latency_cycles: int = 16,
    bytes_per_cycle: float | None = None,
    max_cycles: int = 1_000_000,
) -> ReadRun:
    """Run one transfer of the reader against a DRAM image (bytes): the DRAM takes every
    address, offers a burst's beats from ``latency_cycles`` after its address, in order, one a
    cycle, each no earlier than :func:`hwmodel.arch.dma.dram_beat_cycle` allows (the bandwidth
    cap ``bytes_per_cycle``), and holds a beat until ``m_rready``. Resets the working block."""
    check_transfer(op, win, cfg, latency_cycles)
    fresh_block()
    tile_reader(cfg)
    sim = pyrtl.FastSimulation()
    dram = Dram(image, cfg.data_bits, latency_cycles, bytes_per_cycle, writes=False)
    idle = {name: 0 for name, _ in _TRANSFER_PORTS}
    out: list[int] = []
    vectors: list[dict[str, int]] = []
    max_bits = cfg.max_bits
    mask = (1 << max_bits) - 1
    for cycle in range(max_cycles):
        inputs = {"start": int(cycle == 0), **(transfer_values(op, win) if cycle == 0 else idle)}
        inputs |= dram.inputs(cycle)
        sim.step(inputs)
        vectors.append(inputs)
        dram.observe(cycle, sim.inspect)
        if sim.inspect("out_valid"):
            word = sim.inspect("out_data")
            for i in range(sim.inspect("out_count")):
                code = word >> (i * max_bits) & mask
                out.append(code - (1 << max_bits) if op.signed and code >> (max_bits - 1) else code)
        if sim.inspect("done"):
            values = np.array(out, dtype=np.int64).reshape(win.rows, win.cols)
            return ReadRun(values, cycle, dram.bursts(), tuple(vectors))
    raise RuntimeError(f"the reader did not finish within {max_cycles} cycles")


@dataclass(frozen=True)
class WriteRun:
    """A simulated write: the DRAM image after it, the cycles from ``start`` to ``done``, the
    bursts issued (byte address, beats)."""

    image: npt.NDArray[np.uint8]
    cycles: int
    bursts: tuple[tuple[int, int], ...]


def simulate_writer(
    image: npt.NDArray[np.uint8],
    op: Operand,
    win: Window,
    values: npt.ArrayLike,
    cfg: DmaConfig,
    latency_cycles: int = 16,
    bytes_per_cycle: float | None = None,
    max_cycles: int = 1_000_000,
) -> WriteRun:
    """Write ``values`` (rows, cols) to window ``win`` of ``op`` in a copy of ``image``: the
    stream offers the next ``≤ elems_per_cycle`` elements of the current row every cycle from
    the one after ``start``; the DRAM takes every address and a write beat each cycle the
    bandwidth cap allows (:func:`hwmodel.arch.dma.dram_beat_cycle`), writes the strobed bytes, and
    answers a burst ``latency_cycles`` (≥ 1) after its last beat (and its address). Resets the
    working block."""
    check_transfer(op, win, cfg, latency_cycles)
    check_write_alignment(op, win)
    v = np.asarray(values, dtype=np.int64).reshape(win.rows, win.cols)
    fresh_block()
    tile_writer(cfg)
    sim = pyrtl.FastSimulation()
    dram = Dram(image.copy(), cfg.data_bits, latency_cycles, bytes_per_cycle, reads=False)
    max_bits, elems_per_cycle = cfg.max_bits, cfg.elems_per_cycle
    idle = {name: 0 for name, _ in _TRANSFER_PORTS}
    words = [
        v[r, c : min(c + elems_per_cycle, win.cols)]
        for r in range(win.rows)
        for c in range(0, win.cols, elems_per_cycle)
    ]
    mask = (1 << max_bits) - 1
    for cycle in range(max_cycles):
        word = 0
        for i, x in enumerate(words[0] if words else ()):
            word |= (int(x) & mask) << (i * max_bits)
        inputs = {
            "start": int(cycle == 0),
            **(transfer_values(op, win) if cycle == 0 else idle),
            **dram.inputs(cycle),
            "in_valid": int(cycle > 0 and bool(words)),
            "in_data": word,
        }
        sim.step(inputs)
        if inputs["in_valid"] and sim.inspect("in_ready"):
            words.pop(0)
        dram.observe(cycle, sim.inspect)
        if sim.inspect("done"):
            if words:
                raise RuntimeError("done before the stream was taken")
            return WriteRun(dram.image, cycle, dram.write_bursts())
    raise RuntimeError(f"the writer did not finish within {max_cycles} cycles")


def reader_verilog(cfg: DmaConfig, module_name: str = "codesign_dma_reader") -> str:
    """Verilog of the reader (resets the PyRTL working block and builds it)."""
    fresh_block()
    tile_reader(cfg)
    return working_block_verilog(module_name)


def writer_verilog(cfg: DmaConfig, module_name: str = "codesign_dma_writer") -> str:
    """Verilog of the writer (resets the PyRTL working block and builds it)."""
    fresh_block()
    tile_writer(cfg)
    return working_block_verilog(module_name)


def main() -> None:
    """Print the Yosys (xcup) resources of the reader and the writer for a few bus widths."""
    from hwmodel.rtl.verilog import synthesize_verilog

    print("part    data_bits  elems/cycle    LUT     FF  CARRY  DSP  synth s", flush=True)
    for data_bits, elems in ((64, 4), (128, 8)):
        for name, verilog in (
            ("reader", reader_verilog(DmaConfig(data_bits, elems))),
            ("writer", writer_verilog(DmaConfig(data_bits, elems))),
        ):
            r = synthesize_verilog(verilog)
            row = f"{name:7s} {data_bits:9d} {elems:12d} {r.lut:6d} {r.ff:6d} {r.carry:6d} {r.dsp:4d}"
            print(f"{row} {r.synth_seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()
