"""PyRTL buffer bank: the on-chip memory ``hwmodel.arch.buffers`` maps to block RAM or LUT RAM."""

from __future__ import annotations

import pyrtl

from hwmodel.arch.bits import bits_for
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.verilog import working_block_verilog


def buffer_bank(depth_words: int, width_bits: int) -> pyrtl.WireVector:
    """One ``depth_words`` × ``width_bits`` buffer bank with a write port and a registered read.

    Ports (inputs): ``we``, ``waddr``, ``wdata``, ``raddr``; returns the read data, valid one
    cycle after ``raddr`` (latency 1). Area: one simple-dual-port memory (block RAM, whose output
    register absorbs the read register, or LUT RAM plus a data register); see
    ``hwmodel.arch.buffers.bank_memory``.
    """
    abits = bits_for(depth_words)
    mem = pyrtl.MemBlock(bitwidth=width_bits, addrwidth=abits, name="bank", max_read_ports=1)
    we = pyrtl.Input(1, "we")
    waddr = pyrtl.Input(abits, "waddr")
    wdata = pyrtl.Input(width_bits, "wdata")
    raddr = pyrtl.Input(abits, "raddr")
    mem[waddr] <<= pyrtl.MemBlock.EnabledWrite(wdata, we)
    rdata = pyrtl.Register(width_bits, "rdata_q")
    rdata.next <<= mem[raddr]
    return rdata


def bank_verilog(depth_words: int, width_bits: int, module_name: str = "toplevel") -> str:
    """Verilog of one buffer bank (resets the PyRTL working block and builds it)."""
    fresh_block()
    out = pyrtl.Output(width_bits, "rdata")
    out <<= buffer_bank(depth_words, width_bits)
    return working_block_verilog(module_name)
