"""The accelerator's program: compile a design's integer model into descriptors and a DRAM image
(:func:`compile_program`, :class:`Program`), run it by its reference semantics (:func:`execute`),
and the host driver (:mod:`codesign.program.driver`).
"""

from codesign.program._compile import ROLES, Program, Region, compile_program
from codesign.program._execute import MemoryFault, execute

__all__ = ["ROLES", "MemoryFault", "Program", "Region", "compile_program", "execute"]
