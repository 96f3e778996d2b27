"""The accelerator's program: compile a design's integer model into descriptors and a DRAM image
(:func:`compile_program`, :class:`Program`), run it by its reference semantics (:func:`execute`;
one op :func:`execute_op`; one GEMM's epilogue on given accumulators :func:`gemm_epilogue`, one non-linear op
:func:`nonlinear_op`: what the RTL units are held to), and the host driver
(:mod:`codesign.program.driver`).
"""

from codesign.program._compile import (
    PARAMS_FILE,
    PROGRAM_FILE,
    PROGRAM_JSON,
    ROLES,
    Program,
    Region,
    compile_program,
    export_program,
    write_program,
)
from codesign.program._execute import MemoryFault, execute, execute_op, gemm_epilogue, nonlinear_op

__all__ = [
    "PARAMS_FILE",
    "PROGRAM_FILE",
    "PROGRAM_JSON",
    "ROLES",
    "MemoryFault",
    "Program",
    "Region",
    "compile_program",
    "execute",
    "execute_op",
    "export_program",
    "gemm_epilogue",
    "nonlinear_op",
    "write_program",
]
