"""The Verilator harness: a top-level exported from PyRTL runs under Verilator with the C++ host
and DRAM exactly as in PyRTL (:func:`hwmodel.rtl.verilator.simulate_top`, the same
:class:`~hwmodel.rtl.dram.Dram` semantics) — the same registers, cycles, beats and DRAM image —
for the layer sequencer alone (cycles as :mod:`hwmodel.arch.sequencer` schedules them) and for a
copy engine (sequencer, DMA reader and writer behind the AXI interconnect; the image as
:func:`~hwmodel.arch.program.read_operand` / ``write_operand`` leave it)."""

from __future__ import annotations

import time
from functools import cache

import numpy as np
import pyrtl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_program import descriptors

from hwmodel.arch.dma import DmaConfig
from hwmodel.arch.program import (
    HEADER_BYTES,
    OPCODES,
    REGISTERS,
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_IDLE,
    Descriptor,
    Operand,
    encode_program,
    read_operand,
    write_operand,
)
from hwmodel.arch.sequencer import sequencer_schedule
from hwmodel.rtl.axi import read_interconnect, write_interconnect
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import (
    read_channel_inputs,
    read_channel_wires,
    reader,
    write_channel_inputs,
    write_channel_wires,
    writer,
)
from hwmodel.rtl.engines import delay_line
from hwmodel.rtl.sequencer import lite_inputs, sequencer
from hwmodel.rtl.verilator import (
    VerilatorDevice,
    VerilatorSim,
    check_top,
    idle_write_port,
    simulate_top,
    verilator_available,
)
from hwmodel.rtl.verilog import working_block_verilog

pytestmark = pytest.mark.skipif(not verilator_available(), reason="verilator not installed")

SEQ_BITS = 128
OP_CYCLES = 30


def sequencer_top(data_bits: int = SEQ_BITS, op_cycles: int = OP_CYCLES) -> str:
    """The layer sequencer whose ``op_done`` is its ``op_start`` ``op_cycles`` later, write
    channel idle; its Verilog (the PyRTL block stays built)."""
    fresh_block()
    op_done = pyrtl.WireVector(1)
    seq = sequencer(data_bits, lite_inputs(), read_channel_inputs(data_bits), op_done)
    op_done <<= delay_line(seq.op_start, op_cycles)[op_cycles]
    for name, wire in {**seq.lite, **seq.ar.ports("m_ar", data_bits), "m_rready": seq.rready}.items():
        output_port(name, wire)
    idle_write_port(data_bits)
    return working_block_verilog("codesign_sequencer_top", initialize_registers=True)


COPY = DmaConfig(64, 4, 16, 4, 2)
BUFFER_WORDS = 64
_OPERAND = ("addr", "row_stride", "head_stride", "bits", "signed")


def copy_top(cfg: DmaConfig = COPY) -> str:
    """A copy engine: per op, the window (``m`` rows × ``k`` columns) of operand ``a`` goes to
    operand ``c``; the sequencer's fetch and the DMA reader share the read port (interconnect),
    the writer has the write port through it; a ``BUFFER_WORDS`` buffer sits between the reader's
    stream and the writer's. Its Verilog (the PyRTL block stays built)."""
    data_bits = cfg.data_bits
    fresh_block()
    op_done = pyrtl.WireVector(1)
    fetch_channel = read_channel_wires(data_bits)
    seq = sequencer(data_bits, lite_inputs(), fetch_channel, op_done)
    start = seq.op_start
    zero = pyrtl.Const(0, 16)

    def transfer(op: str) -> dict[str, pyrtl.WireVector]:
        return {
            **{f"op_{f}": seq.fields[f"{op}_{f}"] for f in _OPERAND},
            "win_head": zero,
            "win_row0": zero,
            "win_rows": seq.fields["m"],
            "win_col0": zero,
            "win_cols": seq.fields["k"],
        }

    dma_channel = read_channel_wires(data_bits)
    r = reader(cfg, start, transfer("a"), dma_channel)
    rport = read_interconnect(
        [seq, r], [fetch_channel, dma_channel], read_channel_inputs(data_bits), 1 + cfg.max_outstanding
    )
    # the buffer between the streams
    width = cfg.elems_per_cycle * cfg.max_bits
    buffer = pyrtl.MemBlock(width, (BUFFER_WORDS - 1).bit_length(), max_read_ports=1)
    wrote, taken = pyrtl.Register(16), pyrtl.Register(16)
    aw = (BUFFER_WORDS - 1).bit_length()
    buffer[wrote[:aw]] <<= pyrtl.MemBlock.EnabledWrite(r.stream.data, r.stream.valid)
    in_valid = taken < wrote
    wchannel = write_channel_wires()
    w = writer(cfg, start, transfer("c"), wchannel, in_valid, buffer[taken[:aw]])
    wrote.next <<= pyrtl.select(start, pyrtl.Const(0, 16), (wrote + r.stream.valid)[:16])
    taken.next <<= pyrtl.select(start, pyrtl.Const(0, 16), (taken + (in_valid & w.in_ready))[:16])
    wport = write_interconnect([w], [wchannel], write_channel_inputs(), cfg.max_outstanding)
    op_done <<= w.done
    for name, wire in {**seq.lite, **rport.ports(data_bits), **wport.ports(data_bits)}.items():
        output_port(name, wire)
    return working_block_verilog("codesign_copy_top", initialize_registers=True)


WIDE = DmaConfig(128, 8, 16, 8, 4)


@cache
def built(name: str) -> tuple[VerilatorSim, float]:
    """The top's simulator (built once per session) and its build seconds (0 from the cache)."""
    if name == "sequencer":
        verilog, data_bits = sequencer_top(), SEQ_BITS
    else:
        cfg = WIDE if name == "wide" else COPY
        verilog, data_bits = copy_top(cfg), cfg.data_bits
    sim = VerilatorSim(verilog, data_bits)
    t0 = time.perf_counter()
    b = sim.build()
    return sim, 0.0 if b.cached else time.perf_counter() - t0


def program_image(ops: list[Descriptor], base: int, extra: int = 256) -> np.ndarray:
    raw = encode_program(ops)
    mem = np.zeros(base + len(raw) + extra, dtype=np.uint8)
    mem[base : base + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return mem


@settings(max_examples=8, deadline=None)
@given(
    st.lists(descriptors(), min_size=0, max_size=4),
    st.integers(1, 40),
    st.sampled_from((0, 64, 4096)),
    st.sampled_from((None, 5.0)),
)
def test_the_sequencer_under_verilator_runs_on_schedule(
    ops: list[Descriptor], latency: int, base: int, bytes_per_cycle: float | None
) -> None:
    sim, _ = built("sequencer")
    sim = VerilatorSim(sim.verilog, SEQ_BITS, latency, bytes_per_cycle)
    mem = program_image(ops, base)
    after, got = sim.run(mem, base)
    assert got.status == STATUS_DONE | STATUS_IDLE and got.ops_done == len(ops) and not got.timed_out
    if bytes_per_cycle is None:
        assert got.cycles_register == sequencer_schedule([OP_CYCLES] * len(ops), SEQ_BITS, latency).cycles
    sequencer_top()
    want_image, want = simulate_top(mem, base, SEQ_BITS, latency, bytes_per_cycle)
    assert got.counts() == want.counts()
    np.testing.assert_array_equal(after, mem)
    np.testing.assert_array_equal(want_image, mem)


def test_a_bad_magic_ends_with_an_error() -> None:
    sim, _ = built("sequencer")
    mem = program_image([Descriptor("x", 1)], 0)
    mem[:HEADER_BYTES] = 0
    _, got = sim.run(mem, 0)
    assert got.status == STATUS_ERROR | STATUS_IDLE and got.ops_done == 0
    sequencer_top()
    assert simulate_top(mem, 0, SEQ_BITS)[1].counts() == got.counts()


def test_a_fetch_outside_the_image_is_a_dram_fault() -> None:
    """A program base past the image: PyRTL's Dram raises, the C++ DRAM reports the same fault."""
    sim, _ = built("sequencer")
    mem = program_image([Descriptor("x", 1)], 0)
    with pytest.raises(RuntimeError, match="outside the"):
        sim.run(mem, len(mem) + 64)
    sequencer_top()
    with pytest.raises(IndexError, match="outside the"):
        simulate_top(mem, len(mem) + 64, SEQ_BITS)


def test_running_out_of_cycles_is_reported() -> None:
    sim, _ = built("sequencer")
    _, got = sim.run(program_image([Descriptor("x", 1)] * 3, 0), 0, max_cycles=50)
    assert got.timed_out and got.cycles == 50 and got.status == 0


@st.composite
def copies(draw: st.DrawFn, src: int, dst: int, span: int) -> Descriptor:
    """A copy of an m × k window of ``a`` (in ``[src, src + span)``) to ``c`` (in ``[dst, dst +
    span)``, byte-aligned rows as the writer needs)."""
    bits = draw(st.integers(1, 16))
    unit = 8 // int(np.gcd(bits, 8))
    rows, cols = draw(st.integers(1, 4)), unit * draw(st.integers(1, 24 // unit))
    a_stride = cols + draw(st.integers(0, 20))
    c_stride = cols + unit * draw(st.integers(0, 20 // unit))
    signed = draw(st.integers(0, 1))
    a = Operand(src + draw(st.integers(0, span - rows * a_stride * bits // 8 - 8)), a_stride, 0, bits, signed)
    c = Operand(dst + draw(st.integers(0, span - rows * c_stride * bits // 8 - 8)), c_stride, 0, bits, signed)
    return Descriptor("copy", OPCODES["gemm"], m=rows, k=cols, a=a, c=c)


def copied(mem: np.ndarray, ops: list[Descriptor]) -> np.ndarray:
    want = mem.copy()
    for d in ops:
        write_operand(want, d.c, read_operand(want, d.a, (1, d.m, d.k)))
    return want


SPAN = 2048


@settings(max_examples=6, deadline=None)
@given(
    st.lists(copies(1024, 1024 + SPAN, SPAN), min_size=1, max_size=3),
    st.integers(1, 30),
    st.sampled_from((None, 3.0)),
    st.integers(0, 2**32 - 1),
)
def test_a_copy_engine_under_verilator_is_bit_exact_and_cycle_exact(
    ops: list[Descriptor], latency: int, bytes_per_cycle: float | None, seed: int
) -> None:
    """The image after the program is the reference copies'; Verilator and PyRTL agree on every
    count (cycles, registers, beats, bursts)."""
    run_copies("copy", COPY, ops, latency, bytes_per_cycle, seed)


def run_copies(
    name: str, cfg: DmaConfig, ops: list[Descriptor], latency: int, bytes_per_cycle: float | None, seed: int
) -> None:
    sim, _ = built(name)
    sim = VerilatorSim(sim.verilog, cfg.data_bits, latency, bytes_per_cycle)
    mem = program_image(ops, 0, 1024 + 2 * SPAN - len(encode_program(ops)))
    mem[1024:] = np.random.default_rng(seed).integers(0, 256, 2 * SPAN, dtype=np.uint8)
    after, got = sim.run(mem, 0)
    assert got.status == STATUS_DONE | STATUS_IDLE and got.ops_done == len(ops)
    np.testing.assert_array_equal(after, copied(mem, ops))
    copy_top(cfg)
    want_image, want = simulate_top(mem, 0, cfg.data_bits, latency, bytes_per_cycle)
    assert got.counts() == want.counts()
    np.testing.assert_array_equal(want_image, after)


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(
    st.lists(copies(1024, 1024 + SPAN, SPAN), min_size=1, max_size=4),
    st.integers(1, 30),
    st.sampled_from((None, 6.0)),
    st.integers(0, 2**32 - 1),
)
def test_a_128_bit_copy_engine_under_verilator(
    ops: list[Descriptor], latency: int, bytes_per_cycle: float | None, seed: int
) -> None:
    """The same at 128-bit beats (Verilator's multi-word signals on the write data too), 8 bursts
    of each DMA in flight."""
    run_copies("wide", WIDE, ops, latency, bytes_per_cycle, seed)


def test_the_device_runs_a_program_behind_the_register_map() -> None:
    """:class:`VerilatorDevice` as the driver uses a device: registers, then ``STATUS``."""
    sim, _ = built("copy")
    op = Descriptor(
        "copy", OPCODES["gemm"], m=2, k=16, a=Operand(1024, 40, 0, 8, 1), c=Operand(2048, 16, 0, 8, 1)
    )
    dev = VerilatorDevice(sim, 4096)
    raw = encode_program([op])
    dev.mem[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    dev.mem[1024:2048] = np.arange(1024) % 251
    before = dev.mem.copy()
    assert dev.read_reg(REGISTERS["STATUS"]) == STATUS_IDLE
    dev.write_reg(REGISTERS["PROG_BASE_LO"], 0)
    dev.write_reg(REGISTERS["CTRL"], 1)
    assert dev.read_reg(REGISTERS["STATUS"]) == STATUS_DONE | STATUS_IDLE
    assert dev.read_reg(REGISTERS["OPS_DONE"]) == 1
    assert dev.last is not None and dev.read_reg(REGISTERS["CYCLES_LO"]) == dev.last.cycles_register > 0
    np.testing.assert_array_equal(dev.mem, copied(before, [op]))


def test_a_top_without_the_axi_ports_is_refused() -> None:
    fresh_block()
    output_port("x", pyrtl.Input(1, "y"))
    with pytest.raises(ValueError, match="s_awvalid"):
        check_top(working_block_verilog("nothing"), 128)
