"""PyRTL generator of the AXI4 interconnect: N read masters share one AXI4 read port, M write
masters one AXI4 write port (the top-level's DRAM ports), on wires as :mod:`hwmodel.rtl.dma`'s
``reader`` / ``writer``.

**Conventions** (as :mod:`hwmodel.rtl.dma` and :mod:`hwmodel.rtl.sequencer`): one ID, INCR
bursts of full-width beats, responses in order. A read master is anything with ``ar``
(:class:`~hwmodel.rtl.dma.AddressChannel`) and ``rready`` (a :class:`~hwmodel.rtl.dma.Reader`
is one); a write master has ``aw``, ``wvalid``, ``wdata``, ``wstrb`` and ``wlast`` (a
:class:`~hwmodel.rtl.dma.Writer`) and takes a write response whenever it comes (``bready`` high,
as the DMA writer). The interconnect drives each master's
:class:`~hwmodel.rtl.dma.ReadChannel` / :class:`~hwmodel.rtl.dma.WriteChannel` wires (made with
:func:`~hwmodel.rtl.dma.read_channel_wires` / :func:`~hwmodel.rtl.dma.write_channel_wires`
before the master is built) and returns the shared port's master side (:class:`ReadPort` /
:class:`WritePort`, whose ``ports()`` name them ``m_ar*`` … as a DMA's).

**Address grant: round-robin**, one address a cycle: among the masters whose ``valid`` is high,
the first at or after the pointer (master 0 after reset) is put through combinationally; the
pointer moves past a master when its address is taken. A presented address that the port does
not take (``arready`` low) stays granted until it is (AXI: ``valid`` and the address held), so
the shared port's address never changes under ``valid``. No master waits for more than N − 1
other addresses. An address is granted only while the FIFO below has room (``max_outstanding``
bursts in flight on the port, all masters together; size it to the sum of the masters' own
limits and it never throttles them).

**Routing**: each granted address pushes its master's index into a FIFO (read: one; write: one
for the W data, one for the B responses). Read beats (in order, no IDs) go to the master at the
head of the read FIFO (``rvalid`` to it alone, the port's ``rready`` from it; ``rdata`` and
``rlast`` to every master) until the beat with ``rlast`` pops it. The W beats of the port come
from the master at the head of the W FIFO only — write data in the order of the addresses (AXI4
has no write interleaving) — until its ``wlast``, from the cycle after its address is taken
(``wready`` is low to a master before; the DMA writer sends no data earlier). Write responses
go to the head of the B FIFO (``bvalid`` to it alone), one per burst.

**Latency: 0 cycles** (:data:`LATENCY_CYCLES`). Address, data and responses go through
combinationally; the FIFOs are registers written in the cycle of the address handshake and read
from the next, before any answer can come (the DRAM answers one or more cycles after an
address). A single master behind the interconnect takes exactly the cycles it takes on the port
itself (tests/test_rtl_axi.py holds the DMA reader and writer to
:func:`hwmodel.arch.dma.read_cycles` / ``write_cycles``); only a master that puts a burst's
first W beat in the cycle of its own address (none of ours) loses that cycle. Several masters
share the port's one address and one beat a cycle. Combinational paths: the port's ``arready``
/ ``awready`` / ``wready`` / ``rvalid`` / ``bvalid`` to the masters, the masters' ``valid`` and
``rready`` / ``wvalid`` to the port (as through a wire); a top-level that needs a registered
boundary adds a register slice on the port.

**Head-of-line**: a write master whose address was granted holds the W channel until its
burst's data is in, so another master's ready data waits; the DMA writer issues addresses up
to ``max_outstanding`` bursts ahead of its data, so two writers serialise their bursts in
address order. So a write master whose data waits (through buffers or the controller) on
another write master's data going out deadlocks the port: e.g. a GEMM's C writer whose next
tile waits for a non-linear unit to free a buffer, while that unit's writer waits behind the
GEMM writer's granted address. A top-level with several writers must rule that out (writers on
separate ports, or a writer whose addresses go out only with its data, which the DMA writer
does not do today).

**Composing a top**: the layer sequencer on wires (:func:`hwmodel.rtl.sequencer.sequencer`) is
a read master as it is (``ar``, ``rready``): tests/test_rtl_verilator.py's copy engine puts it and
a DMA reader on the read port and a DMA writer on the write port, exported and run under
:mod:`hwmodel.rtl.verilator`.

**Area** (Yosys 0.70 ``synth_xilinx -family xcup``, ``python -m hwmodel.rtl.axi``:
:func:`interconnect_verilog`, 32-bit addresses, 128-bit beats, FIFOs of 16 bursts): 3 read
masters 114 LUT, 50 FF; 2 write masters 276 LUT, 61 FF (mostly the W multiplexer: 146 bits a
beat); 4 read + 2 write masters 395 LUT, 114 FF; no DSP, no memory (the FIFOs are registers:
``max_outstanding`` × ⌈log2 N⌉ bits each, pointers and a count). Synthesis 30–65 s each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import pyrtl

from hwmodel.arch.program import ADDR_BITS
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import (
    AddressChannel,
    ReadChannel,
    WriteChannel,
    read_channel_inputs,
    read_channel_wires,
    write_channel_inputs,
    write_channel_wires,
    write_ports,
)
from hwmodel.rtl.verilog import working_block_verilog

Wire: TypeAlias = pyrtl.WireVector

#: Added latency of the interconnect, cycles (module docstring).
LATENCY_CYCLES = 0


class ReadMaster(Protocol):
    """What the interconnect takes of a read master (a :class:`~hwmodel.rtl.dma.Reader`)."""

    @property
    def ar(self) -> AddressChannel: ...

    @property
    def rready(self) -> Wire: ...


class WriteMaster(Protocol):
    """What the interconnect takes of a write master (a :class:`~hwmodel.rtl.dma.Writer`)."""

    @property
    def aw(self) -> AddressChannel: ...

    @property
    def wvalid(self) -> Wire: ...

    @property
    def wdata(self) -> Wire: ...

    @property
    def wstrb(self) -> Wire: ...

    @property
    def wlast(self) -> Wire: ...


@dataclass(frozen=True)
class ReadPort:
    """The shared read port's master side (itself a :class:`ReadMaster`)."""

    ar: AddressChannel
    rready: Wire

    def ports(self, data_bits: int, prefix: str = "m_") -> dict[str, Wire]:
        """Its AXI4 output ports by name (``m_arvalid`` … ``m_rready``)."""
        return {**self.ar.ports(f"{prefix}ar", data_bits), f"{prefix}rready": self.rready}


@dataclass(frozen=True)
class WritePort:
    """The shared write port's master side (itself a :class:`WriteMaster`)."""

    aw: AddressChannel
    wvalid: Wire
    wdata: Wire
    wstrb: Wire
    wlast: Wire

    def ports(self, data_bits: int, prefix: str = "m_") -> dict[str, Wire]:
        """Its AXI4 output ports by name (``m_awvalid`` … ``m_bready``)."""
        return write_ports(self.aw, self.wvalid, self.wdata, self.wstrb, self.wlast, data_bits, prefix)


def _index_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _mux(index: Wire, values: Sequence[Wire]) -> Wire:
    """``values[index]`` (``values[0]`` for an index past the end)."""
    if len(values) == 1:
        return values[0]
    return pyrtl.mux(index, *values, default=values[0])


def _fit(w: Wire, width: int) -> Wire:
    return w[:width] if len(w) > width else w.zero_extended(width)


@dataclass(frozen=True)
class _Grant:
    valid: Wire  # the port's address valid
    index: Wire  # the granted master
    fire: Wire  # the address is taken this cycle


def _arbiter(requests: Sequence[Wire], ready: Wire, room: Wire) -> _Grant:
    """Round-robin grant of one of ``requests`` (module docstring), held while not taken."""
    n = len(requests)
    bits = _index_bits(n)
    pointer = pyrtl.Register(bits)
    held = pyrtl.Register(1)  # last cycle's grant was not taken: keep it
    held_index = pyrtl.Register(bits)
    rotations = []
    for first in range(n):
        chosen: Wire = pyrtl.Const(first, bits)
        for offset in reversed(range(n)):  # the first requester from ``first`` on wins
            i = (first + offset) % n
            chosen = pyrtl.select(requests[i], pyrtl.Const(i, bits), chosen)
        rotations.append(chosen)
    any_request = pyrtl.rtl_any(*requests) if n > 1 else requests[0]
    index = pyrtl.select(held, held_index, _mux(pointer, rotations))
    valid = room & (held | any_request)
    fire = valid & ready
    after = pyrtl.select(index == n - 1, pyrtl.Const(0, bits), (index + 1)[:bits]) if n > 1 else index
    pointer.next <<= pyrtl.select(fire, after, pointer)
    held.next <<= valid & ~ready
    held_index.next <<= index
    return _Grant(valid, index, fire)


@dataclass(frozen=True)
class _Fifo:
    head: Wire  # the oldest index (valid when ``count`` ≠ 0)
    count: Wire
    full: Wire


def _index_fifo(push: Wire, value: Wire, pop: Wire, depth: int) -> _Fifo:
    """A FIFO of ``depth`` master indices in registers (push and pop in one cycle allowed; a pop
    of an empty FIFO is ignored)."""
    pbits = max(1, (depth - 1).bit_length())
    entries = [pyrtl.Register(len(value)) for _ in range(depth)]
    rd, wr = pyrtl.Register(pbits), pyrtl.Register(pbits)
    count = pyrtl.Register(depth.bit_length())
    empty = count == 0
    do_pop = pop & ~empty
    for i, entry in enumerate(entries):
        entry.next <<= pyrtl.select(push & (wr == i), value, entry)

    def step(ptr: Wire) -> Wire:
        return pyrtl.select(ptr == depth - 1, pyrtl.Const(0, pbits), (ptr + 1)[:pbits])

    rd.next <<= pyrtl.select(do_pop, step(rd), rd)
    wr.next <<= pyrtl.select(push, step(wr), wr)
    count.next <<= (count + push - do_pop)[: len(count)]
    return _Fifo(_mux(rd, entries), count, count == depth)


def _drive(wire: Wire, value: Wire) -> None:
    """``wire <<= value`` (for a wire held in a frozen dataclass's field)."""
    wire <<= value


def _check(n: int, max_outstanding: int) -> None:
    if n < 1:
        raise ValueError("an interconnect needs at least one master")
    if max_outstanding < 1:
        raise ValueError(f"max_outstanding {max_outstanding}: at least 1")


def _address(channels: Sequence[AddressChannel], ready: Wire, room: Wire) -> tuple[AddressChannel, _Grant]:
    grant = _arbiter([c.valid for c in channels], ready, room)
    addr = _mux(grant.index, [_fit(c.addr, ADDR_BITS) for c in channels])
    length = _mux(grant.index, [_fit(c.length, 8) for c in channels])
    busy = pyrtl.rtl_any(*(c.busy for c in channels)) if len(channels) > 1 else channels[0].busy
    return AddressChannel(grant.valid, addr, length, busy), grant


def read_interconnect(
    masters: Sequence[ReadMaster],
    channels: Sequence[ReadChannel],
    port: ReadChannel,
    max_outstanding: int = 16,
) -> ReadPort:
    """Put ``masters`` on one read port (module docstring): drive each master's ``channels``
    wires from the port's inputs ``port``; returns the port's master side."""
    _check(len(masters), max_outstanding)
    if len(channels) != len(masters):
        raise ValueError(f"{len(masters)} read masters but {len(channels)} channels")
    n = len(masters)
    pop = pyrtl.WireVector(1)
    room = pyrtl.WireVector(1)
    ar, grant = _address([m.ar for m in masters], port.arready, room)
    fifo = _index_fifo(grant.fire, grant.index, pop, max_outstanding)
    room <<= ~fifo.full
    owned = fifo.count != 0
    rready = owned & _mux(fifo.head, [m.rready for m in masters])
    pop <<= port.rvalid & rready & port.rlast
    for i, ch in enumerate(channels):
        mine = grant.index == i if n > 1 else pyrtl.Const(1, 1)
        at_head = fifo.head == i if n > 1 else pyrtl.Const(1, 1)
        _drive(ch.arready, port.arready & grant.valid & mine)
        _drive(ch.rvalid, port.rvalid & owned & at_head)
        _drive(ch.rdata, port.rdata)
        _drive(ch.rlast, port.rlast)
    return ReadPort(ar, rready)


def write_interconnect(
    masters: Sequence[WriteMaster],
    channels: Sequence[WriteChannel],
    port: WriteChannel,
    max_outstanding: int = 16,
) -> WritePort:
    """Put ``masters`` on one write port (module docstring): drive each master's ``channels``
    wires from the port's inputs ``port``; returns the port's master side."""
    _check(len(masters), max_outstanding)
    if len(channels) != len(masters):
        raise ValueError(f"{len(masters)} write masters but {len(channels)} channels")
    n = len(masters)
    w_pop, b_pop = pyrtl.WireVector(1), pyrtl.WireVector(1)
    room = pyrtl.WireVector(1)
    aw, grant = _address([m.aw for m in masters], port.awready, room)
    w_fifo = _index_fifo(grant.fire, grant.index, w_pop, max_outstanding)
    b_fifo = _index_fifo(grant.fire, grant.index, b_pop, max_outstanding)
    room <<= ~w_fifo.full & ~b_fifo.full
    w_owner = w_fifo.head
    w_owned = w_fifo.count != 0
    wvalid = w_owned & _mux(w_owner, [m.wvalid for m in masters])
    wdata = _mux(w_owner, [m.wdata for m in masters])
    wstrb = _mux(w_owner, [m.wstrb for m in masters])
    wlast = _mux(w_owner, [m.wlast for m in masters])
    w_pop <<= wvalid & port.wready & wlast
    b_pop <<= port.bvalid
    for i, ch in enumerate(channels):
        mine = grant.index == i if n > 1 else pyrtl.Const(1, 1)
        w_mine = w_owner == i if n > 1 else pyrtl.Const(1, 1)
        b_mine = b_fifo.head == i if n > 1 else pyrtl.Const(1, 1)
        _drive(ch.awready, port.awready & grant.valid & mine)
        _drive(ch.wready, port.wready & w_owned & w_mine)
        _drive(ch.bvalid, port.bvalid & (b_fifo.count != 0) & b_mine)
    return WritePort(aw, wvalid, wdata, wstrb, wlast)


def _master_wires(n: int, data_bits: int, read: bool) -> list[dict[str, Wire]]:
    """Input ports standing for ``n`` masters' outputs (``r<i>_arvalid`` … / ``w<i>_awvalid`` …)."""
    out = []
    for i in range(n):
        if read:
            names = {"arvalid": 1, "araddr": ADDR_BITS, "arlen": 8, "rready": 1}
            out.append({k: pyrtl.Input(w, f"r{i}_{k}") for k, w in names.items()})
        else:
            names = {
                "awvalid": 1,
                "awaddr": ADDR_BITS,
                "awlen": 8,
                "wvalid": 1,
                "wdata": data_bits,
                "wstrb": data_bits // 8,
                "wlast": 1,
            }
            out.append({k: pyrtl.Input(w, f"w{i}_{k}") for k, w in names.items()})
    return out


def interconnect_verilog(
    read_masters: int, write_masters: int, data_bits: int = 128, max_outstanding: int = 16
) -> str:
    """Verilog of an interconnect alone (masters' sides as ports ``r<i>_*`` / ``w<i>_*``, the
    shared ports ``m_*``), for synthesis; resets the working block."""
    fresh_block()
    zero = pyrtl.Const(0, 1)
    if read_masters:
        wires = _master_wires(read_masters, data_bits, read=True)
        reads = [
            ReadPort(AddressChannel(w["arvalid"], w["araddr"], w["arlen"], zero), w["rready"]) for w in wires
        ]
        channels = [read_channel_wires(data_bits) for _ in reads]
        rport = read_interconnect(reads, channels, read_channel_inputs(data_bits), max_outstanding)
        for i, ch in enumerate(channels):
            for name in ("arready", "rvalid", "rdata", "rlast"):
                output_port(f"r{i}_{name}", getattr(ch, name))
        for name, wire in rport.ports(data_bits).items():
            output_port(name, wire)
    if write_masters:
        wires = _master_wires(write_masters, data_bits, read=False)
        writes = [
            WritePort(
                AddressChannel(w["awvalid"], w["awaddr"], w["awlen"], zero),
                w["wvalid"],
                w["wdata"],
                w["wstrb"],
                w["wlast"],
            )
            for w in wires
        ]
        wchannels = [write_channel_wires() for _ in writes]
        wport = write_interconnect(writes, wchannels, write_channel_inputs(), max_outstanding)
        for i, wch in enumerate(wchannels):
            for name in ("awready", "wready", "bvalid"):
                output_port(f"w{i}_{name}", getattr(wch, name))
        for name, wire in wport.ports(data_bits).items():
            output_port(name, wire)
    return working_block_verilog("codesign_axi_interconnect")


def main() -> None:
    """Print the Yosys (xcup) resources of a few interconnects."""
    from hwmodel.rtl.verilog import synthesize_verilog

    print("read  write  data_bits  in flight    LUT     FF  synth s", flush=True)
    for reads, writes in ((3, 0), (0, 2), (4, 2)):
        r = synthesize_verilog(interconnect_verilog(reads, writes, 128, 16))
        print(
            f"{reads:4d} {writes:6d} {128:10d} {16:10d} {r.lut:6d} {r.ff:6d} {r.synth_seconds:8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
