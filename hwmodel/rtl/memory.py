"""PyRTL buffer bank: the on-chip memory ``hwmodel.arch.buffers`` maps to block RAM or LUT RAM."""

from __future__ import annotations

import pyrtl

from hwmodel.arch.bits import bits_for
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.verilog import working_block_verilog


def ram_bank(
    we: pyrtl.WireVector,
    waddr: pyrtl.WireVector,
    wdata: pyrtl.WireVector,
    raddr: pyrtl.WireVector,
    depth_words: int,
    name: str = "bank",
    bypass: bool = False,
) -> pyrtl.Register:
    """A ``depth_words`` × ``len(wdata)`` memory with one write port and one registered read port
    (a generator from wires to wires). Returns the read data, valid one cycle after ``raddr``
    (latency 1). ``bypass``: a read of the address written in the same cycle returns the new word
    (write-first forwarding: an address compare and a data mux in fabric); without it, the old
    one. Area: one simple-dual-port memory (see ``hwmodel.arch.buffers.bank_memory``), its read
    register (absorbed by a block RAM's output register).
    """
    width = len(wdata)
    # the read address may come from logic (PyRTL calls that asynchronous); the read register
    # behind the read makes it a synchronous block-RAM read all the same (Yosys's memory_dff)
    mem = pyrtl.MemBlock(
        bitwidth=width, addrwidth=bits_for(depth_words), name=name, max_read_ports=1, asynchronous=True
    )
    mem[waddr] <<= pyrtl.MemBlock.EnabledWrite(wdata, we)
    rdata = pyrtl.Register(width, f"{name}_rdata_q" if name != "bank" else "rdata_q")
    word = mem[raddr]
    if bypass:
        word = pyrtl.select(we & (waddr == raddr), wdata, word)
    rdata.next <<= word
    return rdata


def buffer_bank(depth_words: int, width_bits: int) -> pyrtl.WireVector:
    """One ``depth_words`` × ``width_bits`` buffer bank with a write port and a registered read.

    Ports (inputs): ``we``, ``waddr``, ``wdata``, ``raddr``; returns the read data, valid one
    cycle after ``raddr`` (latency 1). Area: one simple-dual-port memory (block RAM, whose output
    register absorbs the read register, or LUT RAM plus a data register); see
    ``hwmodel.arch.buffers.bank_memory``.
    """
    abits = bits_for(depth_words)
    return ram_bank(
        pyrtl.Input(1, "we"),
        pyrtl.Input(abits, "waddr"),
        pyrtl.Input(width_bits, "wdata"),
        pyrtl.Input(abits, "raddr"),
        depth_words,
    )


def bank_verilog(depth_words: int, width_bits: int, module_name: str = "toplevel") -> str:
    """Verilog of one buffer bank (resets the PyRTL working block and builds it)."""
    fresh_block()
    out = pyrtl.Output(width_bits, "rdata")
    out <<= buffer_bank(depth_words, width_bits)
    return working_block_verilog(module_name)
