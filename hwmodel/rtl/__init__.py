"""PyRTL generators of the compute engines, GEMM simulation harness, Verilog export and synthesis.

Generators (wires → wires, ``hwmodel.rtl.engines``): :func:`fixed_subarray` (DSP slices,
:mod:`hwmodel.rtl.dsp`), :func:`pot_subarray`, :func:`separate_lanes`, :func:`pot_add`,
:func:`delay_line`; :func:`build_engine` builds a whole :class:`hwmodel.arch.engine.EngineConfig` with
named ports. :func:`simulate_gemm` streams a tiled GEMM through it (cycle count observed from the
results); :func:`engine_verilog` / :func:`write_engine_verilog` export it (fabric + DSP
primitives), :func:`cosimulate_verilog` runs Icarus, and :func:`synthesize_engine` runs the
pinned Yosys. Non-linear units (:mod:`hwmodel.rtl.nonlinear`): :func:`gelu_lane`,
:func:`softmax_lane`, :func:`layernorm_lane`, :func:`build_unit` (``lanes`` lanes with named
ports) and :func:`simulate_unit` (streams rows, returns outputs + cycles). The tile frontend
(:mod:`hwmodel.rtl.tile`: the engine with its A/B/C buffers and the fold sequencer that replaces
the harness for one tile; ``python -m hwmodel.rtl.tile`` prints its Yosys resources) is imported
from its module.
"""

from hwmodel.arch.engine import EngineConfig, decode_pot
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
    pot_columns,
    reference_gemm,
    simulate_gemm,
    wrap_signed,
)
from hwmodel.rtl.nonlinear import (
    UnitRun,
    build_unit,
    gelu_lane,
    layernorm_lane,
    simulate_unit,
    softmax_lane,
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
    "UnitRun",
    "build_engine",
    "build_unit",
    "chain_layout",
    "cosimulate_verilog",
    "decode_pot",
    "delay_line",
    "engine_verilog",
    "fixed_subarray",
    "gelu_lane",
    "iverilog_available",
    "layernorm_lane",
    "pot_add",
    "pot_columns",
    "pot_subarray",
    "reference_gemm",
    "separate_lanes",
    "simulate_gemm",
    "simulate_unit",
    "softmax_lane",
    "synthesize_engine",
    "synthesize_verilog",
    "wrap_signed",
    "write_engine_verilog",
    "yosys_version",
]
