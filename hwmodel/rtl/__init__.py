"""PyRTL generators of the compute engines, GEMM simulation harness, Verilog export and synthesis.

Generators (wires → wires, ``hwmodel.rtl.engines``): :func:`systolic_array`,
:func:`fixed_product`, :func:`packed_pair_products`, :func:`pot_product`, :func:`pe_accumulate`,
:func:`skew_feeder`, :func:`delay_line`; :func:`build_engine` builds a whole mixed engine
(:class:`EngineConfig`) with named ports. :func:`simulate_gemm` streams a tiled GEMM through it
(cycle count observed from the ``done`` signals); :func:`engine_verilog` /
:func:`write_engine_verilog` export it, :func:`cosimulate_verilog` runs Icarus, and
:func:`synthesize_engine` runs the pinned Yosys.
"""

from hwmodel.rtl.engines import (
    ArrayPorts,
    EngineConfig,
    PeState,
    build_engine,
    delay_line,
    fixed_product,
    model_lanes_per_dsp,
    packed_pair_products,
    pe_accumulate,
    pot_product,
    skew_feeder,
    systolic_array,
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
    "ArrayPorts",
    "EngineConfig",
    "GemmRun",
    "GemmTiling",
    "PeState",
    "SynthResult",
    "build_engine",
    "cosimulate_verilog",
    "decode_pot",
    "delay_line",
    "engine_verilog",
    "fixed_product",
    "iverilog_available",
    "model_lanes_per_dsp",
    "packed_pair_products",
    "pe_accumulate",
    "pot_columns",
    "pot_product",
    "reference_gemm",
    "simulate_gemm",
    "skew_feeder",
    "synthesize_engine",
    "synthesize_verilog",
    "systolic_array",
    "wrap_signed",
    "write_engine_verilog",
    "yosys_version",
]
