"""A fresh PyRTL working block whose netlist names do not depend on what was built before."""

from __future__ import annotations

import pyrtl
import pyrtl.memory
import pyrtl.wire


def fresh_block() -> None:
    """Empty the PyRTL working block and put PyRTL's wire, constant and memory name counters back
    at their start (as PyRTL's own Verilog examples do), so a netlist built next has the same
    names, and its Verilog the same text, whatever this process built before: an exported
    ``engine.v`` is reproducible byte for byte, whatever order a run exports its designs in."""
    pyrtl.reset_working_block()
    pyrtl.wire._reset_wire_indexers()
    pyrtl.memory._reset_memory_indexer()


def output_port(name: str, wire: pyrtl.WireVector) -> pyrtl.Output:
    """A top-level output port ``name`` of ``wire``'s width driven by it."""
    port = pyrtl.Output(len(wire), name)
    port <<= wire
    return port
