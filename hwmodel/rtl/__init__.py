"""PyRTL generators of the compute engines, GEMM simulation harness, Verilog export and synthesis.

Generators (wires → wires, ``hwmodel.rtl.engines``): :func:`fixed_subarray` (DSP slices,
:mod:`hwmodel.rtl.dsp`), :func:`pot_subarray`, :func:`separate_lanes`, :func:`pot_add`,
:func:`delay_line`; :func:`build_engine` builds a whole :class:`hwmodel.engine.EngineConfig` with
named ports. :func:`simulate_gemm` streams a tiled GEMM through it (cycle count observed from the
results); :func:`engine_verilog` / :func:`write_engine_verilog` export it (fabric + DSP
primitives), :func:`cosimulate_verilog` runs Icarus, and :func:`synthesize_engine` runs the
pinned Yosys.
"""

from hwmodel.engine import EngineConfig
from hwmodel.rtl.engines import (
    SubArrayPorts,
    build_engine,
    chain_layout,
    delay_line,
    fixed_subarray,
    pot_add,
    pot_subarray,
    separate_lanes,
)
from hwmodel.rtl.harness import (
    GemmRun,
    GemmTiling,
    decode_pot,
    pot_columns,
    reference_gemm,
    simulate_gemm,
    wrap_signed,
)
from hwmodel.rtl.verilog import (
    SynthResult,
    cosimulate_verilog,
    engine_verilog,
    iverilog_available,
    synthesize_engine,
    synthesize_verilog,
    write_engine_verilog,
    yosys_version,
)

__all__ = [
    "EngineConfig",
    "GemmRun",
    "GemmTiling",
    "SubArrayPorts",
    "SynthResult",
    "build_engine",
    "chain_layout",
    "cosimulate_verilog",
    "decode_pot",
    "delay_line",
    "engine_verilog",
    "fixed_subarray",
    "iverilog_available",
    "pot_add",
    "pot_columns",
    "pot_subarray",
    "reference_gemm",
    "separate_lanes",
    "simulate_gemm",
    "synthesize_engine",
    "synthesize_verilog",
    "wrap_signed",
    "write_engine_verilog",
    "yosys_version",
]
