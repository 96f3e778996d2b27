"""PyRTL generator of the whole accelerator, ``codesign_accelerator``: the layer sequencer, the GEMM
unit (core and epilogue), the non-linear op unit and the AXI4 interconnect, wired as one top-level
that runs a compiled program (:mod:`hwmodel.arch.program`) from DRAM.

**Ports** (:func:`hwmodel.rtl.verilator.top_ports`): ``clk``; the sequencer's AXI4-Lite slave
(``s_awvalid`` … ``s_rdata``: ``CTRL``, ``STATUS``, ``PROG_BASE_*``, ``OPS_DONE``, ``CYCLES_*``,
:data:`hwmodel.arch.program.REGISTERS`) and one AXI4 master port to DRAM with both channels
(``m_ar*``/``m_r*``, ``m_aw*``/``m_w*``/``m_b*``; ``data_bits`` a beat, INCR bursts, one ID,
responses in order).

**Inside** (each part's module docstring has its ports, timing and area):

* :func:`hwmodel.rtl.sequencer.sequencer` fetches the header and the descriptors and dispatches
  one op at a time (``op_start`` and the fields ``d_<field>``), counts ``OPS_DONE`` and
  ``CYCLES``; an op unit's ``error`` ends the run with ``STATUS`` error;
* a ``gemm`` descriptor starts the GEMM unit: :func:`hwmodel.rtl.gemm.gemm_core` (tile DMA
  reader(s), the tile frontend with the design's engine, the tile walker) streams each output
  tile's accumulators to :func:`hwmodel.rtl.epilogue.epilogue` (bias, dyadic rescale or residual
  add or raw sums, output segments, its own reader for tables and R and a DMA writer); the op is
  done when the epilogue has written the last tile;
* a ``layernorm`` / ``softmax`` / ``gelu`` descriptor starts :func:`hwmodel.rtl.nl_op.nl_op`
  (rows through the DMA, the lanes of the program's kernels, the rescale or the log2 quantizer,
  the rows written back);
* :func:`hwmodel.rtl.axi.read_interconnect` / :func:`~hwmodel.rtl.axi.write_interconnect` put the
  read masters (the sequencer's fetch, the core's readers, the epilogue's and the non-linear
  unit's readers) and the write masters (the epilogue's and the non-linear unit's writers) on
  the one DRAM port.

**Schedule** (this version): ops run in series, as the program lists them; the next descriptor
is fetched while an op runs (the sequencer's prefetch). The model's overlap of a GEMM with its
non-linear successor (``nl_mode``, ``F_DEFER``, ``wait`` in the descriptors) is not yet used:
the sequencer dispatches one op at a time (its module docstring designs the paired dispatch),
and the GEMM unit loads a tile's operands one element a cycle and computes its tiles one after
another; the simulated cycles are therefore above the model's latency (``codesign.rtlsim``
prints both).

:class:`AcceleratorSpec` is the build (the parts' specs, derived from a design's engine and
its program by :meth:`AcceleratorSpec.for_program`); :func:`build_accelerator` builds the top
with named ports in the working block, :func:`accelerator_verilog` its Verilog (DSP slices as
primitives for synthesis, or as their PyRTL model for simulation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyrtl

from hwmodel.arch.engine import EngineConfig
from hwmodel.arch.program import OPCODES, Descriptor
from hwmodel.rtl.axi import ReadMaster, WriteMaster, read_interconnect, write_interconnect
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import (
    read_channel_inputs,
    read_channel_wires,
    write_channel_inputs,
    write_channel_wires,
)
from hwmodel.rtl.dsp import PrimitiveSlices, SliceBuilder, embed_primitives
from hwmodel.rtl.epilogue import EpilogueSpec, epilogue
from hwmodel.rtl.gemm import GemmSpec, gemm_core, gemm_spec
from hwmodel.rtl.nl_op import KINDS, NlOpSpec, nl_op
from hwmodel.rtl.sequencer import lite_inputs, sequencer
from hwmodel.rtl.verilog import working_block_verilog

MODULE_NAME = "codesign_accelerator"
#: Bursts in flight on the shared DRAM port (all masters together).
PORT_OUTSTANDING = 16


@dataclass(frozen=True)
class AcceleratorSpec:
    """A top-level build: the DRAM port's ``data_bits`` and the units' builds (``nl`` None: a
    program without non-linear ops)."""

    data_bits: int
    gemm: GemmSpec
    epilogue: EpilogueSpec
    nl: NlOpSpec | None

    @classmethod
    def for_program(
        cls,
        engine: EngineConfig,
        descriptors: Sequence[Descriptor],
        data_bits: int = 128,
        max_burst: int = 16,
        max_outstanding: int = 4,
        nl_lanes: Mapping[str, int] | None = None,
    ) -> AcceleratorSpec:
        """The build that runs ``descriptors`` on ``engine`` (a design's,
        :func:`hwmodel.model.evaluation.design_engine`): each unit sized by the program's ops;
        ``nl_lanes``: the lanes of each non-linear kind's unit (a design's
        :attr:`~hwmodel.arch.config.AcceleratorConfig.lanes_key`; default 2 each)."""
        dma = {"data_bits": data_bits, "max_burst": max_burst, "max_outstanding": max_outstanding}
        core = gemm_spec(engine, descriptors, **dma)
        epi = EpilogueSpec.from_descriptors(descriptors, elems=core.elems, **dma)
        has_nl = any(d.kind in KINDS for d in descriptors)
        nl = NlOpSpec.from_descriptors(descriptors, kind_lanes=nl_lanes, **dma) if has_nl else None
        return cls(data_bits, core, epi, nl)

    @property
    def read_masters(self) -> int:
        """Read masters on the DRAM port: the sequencer's fetch, the core's reader(s), the
        epilogue's and the non-linear unit's."""
        return 2 + self.gemm.readers + (self.nl is not None)

    @property
    def write_masters(self) -> int:
        """Write masters on the DRAM port: the epilogue's writer and the non-linear unit's."""
        return 1 + (self.nl is not None)


def accelerator(spec: AcceleratorSpec, slices: SliceBuilder | None = None) -> None:
    """The top-level (module docstring) with named ports in the working block."""
    bits = spec.data_bits
    op_done, op_error = pyrtl.WireVector(1), pyrtl.WireVector(1)
    fetch = read_channel_wires(bits)
    seq = sequencer(bits, lite_inputs(), fetch, op_done, op_error)
    d = seq.fields
    is_gemm = d["opcode"] == OPCODES["gemm"]

    # ---- the GEMM unit: core → C stream → epilogue
    core_rd = [read_channel_wires(bits) for _ in range(spec.gemm.readers)]
    c_ready = pyrtl.WireVector(1)
    core = gemm_core(spec.gemm, seq.op_start & is_gemm, d, core_rd, c_ready, slices)
    epi_rd, epi_wr = read_channel_wires(bits), write_channel_wires()
    epi = epilogue(spec.epilogue, seq.op_start & is_gemm, d, epi_rd, epi_wr, core.c, core.done)
    c_ready <<= epi.ready
    readers: list[ReadMaster] = [seq, *core.readers, epi.reader]
    writers: list[WriteMaster] = [epi.writer]
    read_channels, write_channels = [fetch, *core_rd, epi_rd], [epi_wr]
    done, error = epi.done, epi.error

    # ---- the non-linear op unit
    if spec.nl is not None:
        nl_rd, nl_wr = read_channel_wires(bits), write_channel_wires()
        unit = nl_op(spec.nl, seq.op_start & ~is_gemm, d, nl_rd, nl_wr)
        readers.append(unit.reader)
        read_channels.append(nl_rd)
        writers.append(unit.writer)
        write_channels.append(nl_wr)
        done, error = done | unit.done, error | unit.error
    op_done <<= done
    op_error <<= error

    # ---- one DRAM port
    assert (len(readers), len(writers)) == (spec.read_masters, spec.write_masters)
    rd_port = read_interconnect(readers, read_channels, read_channel_inputs(bits), PORT_OUTSTANDING)
    wr_port = write_interconnect(writers, write_channels, write_channel_inputs(), PORT_OUTSTANDING)
    ports = {**seq.lite, **rd_port.ports(bits), **wr_port.ports(bits)}
    for name, wire in ports.items():
        output_port(name, wire)


def build_accelerator(spec: AcceleratorSpec, slices: SliceBuilder | None = None) -> None:
    """A fresh working block holding the top-level (``slices``: the engine's DSP slices, their
    PyRTL model by default)."""
    fresh_block()
    accelerator(spec, slices)


def accelerator_verilog(spec: AcceleratorSpec, primitives: bool = False) -> str:
    """Verilog of module :data:`MODULE_NAME`; ``primitives``: the DSP slices as the vendor's
    primitives (for synthesis; their simulation models come separately), else as logic (what
    Verilator runs)."""
    if not primitives:
        build_accelerator(spec)
        return working_block_verilog(MODULE_NAME, initialize_registers=True)
    slices = PrimitiveSlices(spec.gemm.engine.slice)
    build_accelerator(spec, slices)
    return embed_primitives(working_block_verilog(MODULE_NAME, initialize_registers=True), slices.instances)


def unit_verilogs(spec: AcceleratorSpec) -> dict[str, str]:
    """Verilog of each unit of the top-level alone, as the top builds it (the engine and the GEMM
    core with their DSP primitives), for synthesis unit by unit: ``engine``, ``gemm_core`` (the
    engine, tile frontend, DMA reader(s) and walker), ``epilogue``, ``nl_op`` (when the program has
    non-linear ops), ``sequencer``, ``interconnect``. Resets the PyRTL working block."""
    from hwmodel.rtl.axi import interconnect_verilog
    from hwmodel.rtl.epilogue import build_epilogue
    from hwmodel.rtl.gemm import gemm_verilog
    from hwmodel.rtl.nl_op import build_nl_op
    from hwmodel.rtl.sequencer import sequencer_verilog
    from hwmodel.rtl.verilog import engine_verilog

    def alone(build: Callable[[], None], name: str) -> str:
        fresh_block()
        build()
        return working_block_verilog(name, initialize_registers=True)

    nl = spec.nl
    out = {
        "engine": engine_verilog(spec.gemm.engine, "codesign_engine"),
        "gemm_core": gemm_verilog(spec.gemm, "codesign_gemm_core"),
        "epilogue": alone(lambda: build_epilogue(spec.epilogue), "codesign_epilogue"),
    }
    if nl is not None:
        out["nl_op"] = alone(lambda: build_nl_op(nl), "codesign_nl_op")
    out["sequencer"] = sequencer_verilog(spec.data_bits)
    out["interconnect"] = interconnect_verilog(
        spec.read_masters, spec.write_masters, spec.data_bits, PORT_OUTSTANDING
    )
    return out
