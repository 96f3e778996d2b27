"""PyRTL generator of the layer sequencer: the AXI4-Lite register file the host drives, and the
fetch, check and dispatch of the program's descriptors (:mod:`hwmodel.arch.program`) over an
AXI4 read channel.

**Registers** (:data:`hwmodel.arch.program.REGISTERS`, AXI4-Lite slave, 32-bit data): a write
of ``CTRL`` bit 0 while idle starts the program at ``PROG_BASE``; ``STATUS`` reads done / idle /
error; ``OPS_DONE`` and ``CYCLES_LO``/``HI`` count the run (cycles from the start to done). A
write is taken in the cycle where ``awvalid`` and ``wvalid`` are both high (``awready`` =
``wready`` then), answered by ``bvalid`` until ``bready``; a read is taken with ``arvalid`` while
no answer is pending, ``rdata`` valid the next cycle until ``rready``.

**Fetch** (AXI4 read master, ``data_bits`` per beat, INCR bursts): the header (its magic, version
and descriptor size checked; a bad header ends the run with ``STATUS`` error), then each
descriptor in one burst of ``DESCRIPTOR_BYTES · 8 / data_bits`` beats into a one-descriptor
prefetch buffer: the next descriptor is fetched while the current op runs.

**Dispatch**: the op ports (``op_start`` pulse, and every field of :data:`FIELDS` as
``d_<field>``, held until the next ``op_start``) take a fetched descriptor when the op units are
free: in the cycle after the previous op's ``op_done`` when it was fetched by then
(:data:`hwmodel.arch.controller.CHAIN_GAP`), else in the cycle after its last beat. The ``end``
descriptor ends the run (``STATUS`` done) in the cycle after the last op's ``op_done``.

**Overlapped pairs** (design, not built yet: today every descriptor is dispatched alone, so a run
cannot overlap a GEMM with its non-linear successor as the model schedules it). A GEMM descriptor
carries its schedule (:mod:`hwmodel.arch.program`: ``nl_mode``,
:data:`~hwmodel.arch.program.F_DEFER`, ``wait``/``wait_idx``, filled from the model's per-layer
table); the sequencer must run it as follows.

* *Pair*: a GEMM whose ``nl_mode`` is not ``none`` is dispatched together with the descriptor after
  it (its successor: the ``layernorm`` / ``softmax`` / ``gelu`` op over the GEMM's output rows). The
  prefetch buffer holds two descriptors: a pair is dispatched when both are fetched (both fetched
  behind the previous op, as one descriptor is today; the next fetch starts once the pair is
  dispatched). One ``op_start`` presents the two at once: the GEMM's fields to the tile
  controller (:mod:`hwmodel.rtl.controller`) — its loop bounds in the GEMM's orientation (with
  :data:`~hwmodel.arch.program.F_TRANSPOSED` m/n and tm/tn swapped: ``last_h = repeat − 1``,
  ``last_m = ⌈m/tm⌉ − 1``, ``last_n``, ``last_k`` alike), ``nl_mode`` as is, ``nl_defer =``
  :data:`~hwmodel.arch.program.F_DEFER` — and the successor's fields (kind, ``variant``, formats,
  epilogue tables, operands) to the non-linear unit of its kind, which then takes its jobs (groups
  of rows or output tiles of the GEMM's C, in the controller's order) on the controller's
  ``nl_start`` and answers each with ``nl_done``. A GEMM whose ``nl_mode`` is ``none`` and a
  non-linear op that follows no such GEMM are dispatched alone, as today (the op runs in series from
  DRAM).
* *Wait*: the consumer of a pending job gets ``wait_load = (wait ≠ 0 ∧ wait_idx = 0)``, ``wait_head
  = (wait = 2)`` (``head``) and the controller's ``wait_idx`` port ``= max(wait_idx − 1, 0)`` (it
  names the group before the one that waits: the transfer that starts with that group's last tile
  loads group d's first tile; as :func:`hwmodel.rtl.controller.simulate_chain` maps
  :attr:`hwmodel.arch.controller.LayerSchedule.wait`), and ``pend_done`` wired from the unit of the
  pending op's kind (a different unit from its own successor's: the model defers only then). With
  ``wait = 0`` the three are 0 and ``pend_done`` is ignored.
* *op_done of a pair*: the controller's ``done``. Without :data:`~hwmodel.arch.program.F_DEFER` it
  comes after the last job's ``nl_done``: both descriptors are over (``OPS_DONE`` + 2) and the next
  dispatch follows as for one op. With :data:`~hwmodel.arch.program.F_DEFER` it comes with the last
  job's hand-over (``nl_start`` and ``done`` together): the GEMM is over (``OPS_DONE`` + 1) and the
  next descriptor — the consumer, which waits as above — is dispatched
  :data:`~hwmodel.arch.controller.CHAIN_GAP` cycle later beside the pending job; the successor
  counts (``OPS_DONE`` + 1) at its unit's done pulse. The sequencer tracks that pending unit: it
  holds any dispatch that is not a consumer with ``wait ≠ 0`` (and the ``end``: ``STATUS`` done)
  until the pending job is over, so a program whose schedule does not match its order still runs,
  only slower.
* *Timing* (:mod:`hwmodel.arch.sequencer` would then take, per pair, the controller's cycles from
  ``start`` to ``done``, :attr:`hwmodel.arch.controller.LayerSchedule.cycles` with the pair's
  successor, its defer and its wait, and the fetch of two descriptors per pair): the sum over a
  program of those cycles, each pair's start :data:`~hwmodel.arch.controller.CHAIN_GAP` after the
  previous ``done``, is the model's latency of the GEMMs with their overlapped non-linear ops
  (:func:`hwmodel.validate.design_schedules` checks that sum), plus the ops in series.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.program import (
    ADDR_BITS,
    CTRL_START,
    DESCRIPTOR_BYTES,
    FIELDS,
    HEADER_BYTES,
    HEADER_FORMAT,
    OPCODES,
    PROGRAM_MAGIC,
    PROGRAM_VERSION,
    REGISTERS,
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_IDLE,
    Descriptor,
    field_offsets,
)
from hwmodel.arch.sequencer import beats
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import AddressChannel, ReadChannel, read_channel_inputs
from hwmodel.rtl.verilog import working_block_verilog

Wire: TypeAlias = pyrtl.WireVector

REG_ADDR_BITS = 5
COUNTER_BITS = 32
CYCLE_BITS = 64
#: The fetch FSM: idle, header address / data, descriptor address / data.
_IDLE, _HDR_AR, _HDR_R, _DESC_AR, _DESC_R = range(5)


def _header_ok(header: Wire) -> Wire:
    """The header's magic, version and descriptor size are this build's."""
    expected = struct.pack(HEADER_FORMAT[:-1], PROGRAM_MAGIC, PROGRAM_VERSION, DESCRIPTOR_BYTES)
    value = int.from_bytes(expected, "little")
    return header[: 8 * len(expected)] == pyrtl.Const(value, bitwidth=8 * len(expected))


def _collect(buffer: pyrtl.Register, rdata: Wire, take: Wire, data_bits: int) -> Wire:
    """A little-endian burst into ``buffer``: each beat shifts in from the top (the last beat
    ends at the top), so after ``len(buffer) / data_bits`` beats byte 0 is at bit 0."""
    shifted = pyrtl.concat(rdata, buffer[data_bits:]) if len(buffer) > data_bits else rdata
    buffer.next <<= pyrtl.select(take, shifted, buffer)
    return shifted


#: The AXI4-Lite slave's inputs (name, bits) after the ``s_`` prefix.
LITE_INPUTS = (
    ("awvalid", 1),
    ("awaddr", REG_ADDR_BITS),
    ("wvalid", 1),
    ("wdata", 32),
    ("bready", 1),
    ("arvalid", 1),
    ("araddr", REG_ADDR_BITS),
    ("rready", 1),
)


@dataclass(frozen=True)
class Sequencer:
    """The sequencer's outputs: the AXI4-Lite slave's (``lite``, by port name ``s_awready`` …),
    the fetch's AXI4 read master (``ar``, ``rready``), ``op_start``, ``running`` and the current
    descriptor's fields (``fields``, by name as :data:`FIELDS`)."""

    lite: dict[str, Wire]
    ar: AddressChannel
    rready: Wire
    op_start: Wire
    running: Wire
    fields: dict[str, Wire]

    def ports(self, data_bits: int) -> dict[str, Wire]:
        """Every output by its port name (``s_*``, ``m_ar*``, ``m_rready``, ``op_start``,
        ``running``, ``d_<field>``)."""
        return {
            **self.lite,
            **self.ar.ports("m_ar", data_bits),
            "m_rready": self.rready,
            "op_start": self.op_start,
            "running": self.running,
            **{f"d_{name}": wire for name, wire in self.fields.items()},
        }


def lite_inputs(prefix: str = "s_") -> dict[str, Wire]:
    """The AXI4-Lite slave's inputs as top-level input ports, by name without the prefix."""
    return {name: pyrtl.Input(bits, f"{prefix}{name}") for name, bits in LITE_INPUTS}


def field_bits(name: str) -> int:
    """Bits of descriptor field ``name`` (its ``struct`` code's bytes × 8)."""
    return 8 * struct.calcsize("<" + dict(FIELDS)[name])


def descriptor_inputs(prefix: str = "d_") -> dict[str, Wire]:
    """Every descriptor field as a top-level input ``<prefix><field>`` (the sequencer's outputs)."""
    return {name: pyrtl.Input(field_bits(name), f"{prefix}{name}") for name, _ in FIELDS}


def descriptor_values(d: Descriptor, prefix: str = "d_") -> dict[str, int]:
    """The values of :func:`descriptor_inputs` for ``d`` (signed fields as two's complement)."""
    return {
        f"{prefix}{name}": value & ((1 << field_bits(name)) - 1)
        for (name, _), value in zip(FIELDS, d.values(), strict=True)
    }


def layer_sequencer(data_bits: int = 128) -> None:
    """The sequencer with named ports (module docstring) in the working block."""
    seq = sequencer(data_bits, lite_inputs(), read_channel_inputs(data_bits), pyrtl.Input(1, "op_done"))
    for name, wire in seq.ports(data_bits).items():
        output_port(name, wire)


def sequencer(
    data_bits: int, lite: Mapping[str, Wire], axi: ReadChannel, op_done: Wire, op_error: Wire | None = None
) -> Sequencer:
    """The sequencer (module docstring) on wires: the AXI4-Lite slave's inputs ``lite`` (by
    :data:`LITE_INPUTS` name), the fetch's read channel ``axi``, the op units' ``op_done`` and
    ``op_error`` (high while an op unit refuses its op: the run ends with ``STATUS`` error, as on
    a bad header; the unit is left as it is until the next start)."""
    if data_bits % 8 or (DESCRIPTOR_BYTES * 8) % data_bits or (HEADER_BYTES * 8) % data_bits:
        raise ValueError(f"data_bits {data_bits}: a descriptor and the header must be whole beats")
    reg = REGISTERS
    # ---- AXI4-Lite slave
    awvalid, awaddr, wvalid, wdata = lite["awvalid"], lite["awaddr"], lite["wvalid"], lite["wdata"]
    bready, arvalid, araddr, rready = lite["bready"], lite["arvalid"], lite["araddr"], lite["rready"]
    bvalid, rvalid = pyrtl.Register(1), pyrtl.Register(1)
    rdata_reg = pyrtl.Register(32)
    write = awvalid & wvalid & ~bvalid
    read = arvalid & ~rvalid
    bvalid.next <<= write | (bvalid & ~bready)
    rvalid.next <<= read | (rvalid & ~rready)
    lite_out = {
        "s_awready": write,
        "s_wready": write,
        "s_bvalid": bvalid,
        "s_arready": read,
        "s_rvalid": rvalid,
        "s_rdata": rdata_reg,
    }

    def wrote(name: str) -> Wire:
        return write & (awaddr == reg[name])

    base_lo, base_hi = pyrtl.Register(32), pyrtl.Register(32)
    base_lo.next <<= pyrtl.select(wrote("PROG_BASE_LO"), wdata, base_lo)
    base_hi.next <<= pyrtl.select(wrote("PROG_BASE_HI"), wdata, base_hi)

    # ---- run state
    state = pyrtl.Register(3)
    running, done, error = pyrtl.Register(1), pyrtl.Register(1), pyrtl.Register(1)
    start = wrote("CTRL") & wdata[CTRL_START.bit_length() - 1] & ~running  # bit 0
    ops_done = pyrtl.Register(COUNTER_BITS)
    cycles = pyrtl.Register(CYCLE_BITS)
    status = pyrtl.concat(error, ~running, done)  # bits 2, 1, 0
    assert (STATUS_DONE, STATUS_IDLE, STATUS_ERROR) == (1, 2, 4)
    values = {
        reg["STATUS"]: status,
        reg["PROG_BASE_LO"]: base_lo,
        reg["PROG_BASE_HI"]: base_hi,
        reg["OPS_DONE"]: ops_done,
        reg["CYCLES_LO"]: cycles[:32],
        reg["CYCLES_HI"]: cycles[32:],
    }
    answer: Wire = pyrtl.Const(0, 32)
    for offset, value in values.items():
        answer = pyrtl.select(araddr == offset, value.zero_extended(32), answer)
    rdata_reg.next <<= pyrtl.select(read, answer, rdata_reg)

    # ---- AXI4 read master (fetch)
    m_arready, m_rvalid, m_rdata, m_rlast = axi.arready, axi.rvalid, axi.rdata, axi.rlast
    ptr = pyrtl.Register(ADDR_BITS)
    header = pyrtl.Register(HEADER_BYTES * 8)
    fetched = pyrtl.Register(DESCRIPTOR_BYTES * 8)
    have = pyrtl.Register(1)  # the prefetch buffer holds a descriptor
    fetch_over = pyrtl.Register(1)  # the end descriptor has been fetched
    busy = pyrtl.Register(1)  # an op runs
    cur = pyrtl.Register(DESCRIPTOR_BYTES * 8)
    op_start = pyrtl.Register(1)

    in_state = {s: state == s for s in (_IDLE, _HDR_AR, _HDR_R, _DESC_AR, _DESC_R)}
    hdr_beat = in_state[_HDR_R] & m_rvalid
    desc_beat = in_state[_DESC_R] & m_rvalid
    hdr_value = _collect(header, m_rdata, hdr_beat, data_bits)
    desc_value = _collect(fetched, m_rdata, desc_beat, data_bits)
    hdr_last = hdr_beat & m_rlast
    desc_last = desc_beat & m_rlast
    bad_header = hdr_last & ~_header_ok(hdr_value)
    # an op unit's refusal ends the run (a fetch under way finishes its burst)
    fault = running & busy & op_error if op_error is not None else pyrtl.Const(0, 1)
    opcode_at, _ = field_offsets()["opcode"]
    is_end = fetched[8 * opcode_at : 8 * opcode_at + 8] == OPCODES["end"]

    free = ~busy | op_done
    dispatch = running & have & ~is_end & free
    finish = running & have & is_end & free
    next_desc = (in_state[_DESC_R] & desc_last) | (in_state[_HDR_R] & hdr_last & ~bad_header)
    desc_end = desc_last & (desc_value[8 * opcode_at : 8 * opcode_at + 8] == OPCODES["end"])

    state_next: Wire = state
    state_next = pyrtl.select(start, pyrtl.Const(_HDR_AR, 3), state_next)
    state_next = pyrtl.select(in_state[_HDR_AR] & m_arready, pyrtl.Const(_HDR_R, 3), state_next)
    state_next = pyrtl.select(bad_header, pyrtl.Const(_IDLE, 3), state_next)
    state_next = pyrtl.select(in_state[_HDR_R] & hdr_last & ~bad_header, pyrtl.Const(_IDLE, 3), state_next)
    state_next = pyrtl.select(in_state[_DESC_R] & desc_last, pyrtl.Const(_IDLE, 3), state_next)
    # from idle, a descriptor fetch while the run wants one and the buffer has room
    want = running & ~fetch_over & ~have & ~next_desc & in_state[_IDLE] & ~start
    state_next = pyrtl.select(want, pyrtl.Const(_DESC_AR, 3), state_next)
    state_next = pyrtl.select(in_state[_DESC_AR] & m_arready, pyrtl.Const(_DESC_R, 3), state_next)
    state.next <<= state_next

    base = base_lo.zero_extended(ADDR_BITS)
    ptr.next <<= pyrtl.select(
        start,
        base,
        pyrtl.select(hdr_last, ptr + HEADER_BYTES, pyrtl.select(desc_last, ptr + DESCRIPTOR_BYTES, ptr))[
            :ADDR_BITS
        ],
    )
    have.next <<= pyrtl.select(start, pyrtl.Const(0, 1), desc_last | (have & ~dispatch))
    fetch_over.next <<= pyrtl.select(start, pyrtl.Const(0, 1), fetch_over | desc_end)
    busy.next <<= dispatch | (busy & ~op_done)
    cur.next <<= pyrtl.select(dispatch, fetched, cur)
    op_start.next <<= dispatch
    running.next <<= start | (running & ~finish & ~bad_header & ~fault)
    done.next <<= pyrtl.select(start, pyrtl.Const(0, 1), done | finish)
    error.next <<= pyrtl.select(start, pyrtl.Const(0, 1), error | bad_header | fault)
    ops_done.next <<= pyrtl.select(
        start,
        pyrtl.Const(0, COUNTER_BITS),
        pyrtl.select(running & busy & op_done, ops_done + 1, ops_done)[:COUNTER_BITS],
    )
    cycles.next <<= pyrtl.select(
        start, pyrtl.Const(0, CYCLE_BITS), pyrtl.select(running, cycles + 1, cycles)[:CYCLE_BITS]
    )

    arvalid_m = in_state[_HDR_AR] | in_state[_DESC_AR]
    burst = pyrtl.select(
        in_state[_HDR_AR],
        pyrtl.Const(beats(HEADER_BYTES, data_bits) - 1, 8),
        pyrtl.Const(beats(DESCRIPTOR_BYTES, data_bits) - 1, 8),
    )
    ar = AddressChannel(arvalid_m, ptr, burst, arvalid_m)
    fields = {name: cur[8 * offset : 8 * (offset + size)] for name, (offset, size) in field_offsets().items()}
    return Sequencer(lite_out, ar, in_state[_HDR_R] | in_state[_DESC_R], op_start, running, fields)


def sequencer_verilog(data_bits: int = 128, module_name: str = "codesign_sequencer") -> str:
    """Verilog of the sequencer (resets the PyRTL working block and builds it)."""
    fresh_block()
    layer_sequencer(data_bits)
    return working_block_verilog(module_name)


@dataclass(frozen=True)
class SequencerRun:
    """A simulated run: each dispatched op's fields (:data:`FIELDS` order) and its ``op_start``
    and ``op_done`` cycles; the registers read back at the end; the cycle of the start write."""

    ops: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]
    dones: tuple[int, ...]
    status: int
    ops_done: int
    cycles: int
    start_cycle: int


def _signed_field(value: int, code: str) -> int:
    bits = 8 * struct.calcsize("<" + code)
    return value - (1 << bits) if code.islower() and value >> (bits - 1) else value


def simulate_sequencer(
    image: npt.NDArray[np.uint8],
    program_base: int,
    op_cycles: Callable[[int], int],
    data_bits: int = 128,
    dram_latency: int = 16,
    max_cycles: int = 1_000_000,
) -> SequencerRun:
    """Run the sequencer on a DRAM image: the host writes ``PROG_BASE`` and ``CTRL`` over AXI4-Lite
    and polls ``STATUS``; the DRAM answers a burst ``dram_latency`` cycles after its address, one
    beat a cycle; op ``i`` raises ``op_done`` ``op_cycles(i)`` cycles after its ``op_start``.
    Resets the PyRTL working block."""
    fresh_block()
    layer_sequencer(data_bits)
    sim = pyrtl.FastSimulation()
    beat_bytes = data_bits // 8
    host = [("w", REGISTERS["PROG_BASE_LO"], program_base), ("w", REGISTERS["CTRL"], CTRL_START)]
    beats_due: dict[int, tuple[int, bool]] = {}
    done_at: dict[int, int] = {}
    ops: list[tuple[int, ...]] = []
    starts: list[int] = []
    dones: list[int] = []
    regs: dict[int, int] = {}
    start_cycle = -1
    pending_read: int | None = None
    finished = False
    for cycle in range(max_cycles):
        inputs = {
            "s_awvalid": 0,
            "s_awaddr": 0,
            "s_wvalid": 0,
            "s_wdata": 0,
            "s_bready": 1,
            "s_arvalid": 0,
            "s_araddr": 0,
            "s_rready": 1,
            "m_arready": 1,
            "m_rvalid": 0,
            "m_rdata": 0,
            "m_rlast": 0,
            "op_done": int(cycle in done_at.values()),
        }
        if host and pending_read is None:
            kind, offset, value = host[0]
            if kind == "w":
                inputs |= {"s_awvalid": 1, "s_awaddr": offset, "s_wvalid": 1, "s_wdata": value}
            else:
                inputs |= {"s_arvalid": 1, "s_araddr": offset}
        if cycle in beats_due:
            addr, last = beats_due.pop(cycle)
            chunk = image[addr : addr + beat_bytes]
            inputs |= {
                "m_rvalid": 1,
                "m_rdata": int.from_bytes(chunk.tobytes(), "little"),
                "m_rlast": int(last),
            }
        sim.step(inputs)
        if inputs["op_done"]:
            dones.append(cycle)
        if host and pending_read is None:
            kind, offset, value = host[0]
            if kind == "w" and sim.inspect("s_awready"):
                host.pop(0)
                if offset == REGISTERS["CTRL"]:
                    start_cycle = cycle
                    host.append(("r", REGISTERS["STATUS"], 0))
            elif kind == "r" and sim.inspect("s_arready"):
                pending_read = offset
                host.pop(0)
        elif pending_read is not None and sim.inspect("s_rvalid"):
            value = sim.inspect("s_rdata")
            regs[pending_read] = value
            if pending_read == REGISTERS["STATUS"]:
                if value & (STATUS_DONE | STATUS_ERROR):
                    host += [
                        ("r", REGISTERS["OPS_DONE"], 0),
                        ("r", REGISTERS["CYCLES_LO"], 0),
                        ("r", REGISTERS["CYCLES_HI"], 0),
                    ]
                    finished = True
                else:
                    host.append(("r", REGISTERS["STATUS"], 0))
            pending_read = None
            if finished and not host:
                break
        if sim.inspect("m_arvalid"):
            addr, n = sim.inspect("m_araddr"), sim.inspect("m_arlen") + 1
            for i in range(n):
                beats_due[cycle + dram_latency + i] = (addr + i * beat_bytes, i == n - 1)
        if sim.inspect("op_start"):
            fields = [_signed_field(sim.inspect(f"d_{name}"), code) for name, code in FIELDS]
            ops.append(tuple(fields))
            starts.append(cycle)
            done_at[len(ops) - 1] = cycle + max(1, op_cycles(len(ops) - 1))
    else:
        raise RuntimeError(f"the sequencer did not finish within {max_cycles} cycles")
    cycles = regs.get(REGISTERS["CYCLES_LO"], 0) | regs.get(REGISTERS["CYCLES_HI"], 0) << 32
    return SequencerRun(
        tuple(ops),
        tuple(starts),
        tuple(dones),
        regs[REGISTERS["STATUS"]],
        regs.get(REGISTERS["OPS_DONE"], 0),
        cycles,
        start_cycle,
    )
