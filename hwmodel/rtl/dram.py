"""The testbench DRAM of the PyRTL simulations: an AXI4 slave on a byte image, with a latency and a
bandwidth cap, serving any number of masters (one read and one write channel per port prefix,
each port its own queue, all on one image).

Semantics (what :func:`hwmodel.arch.dma.read_cycles` / :func:`~hwmodel.arch.dma.write_cycles` count
and the Verilator testbench's DRAM repeats): ``arready`` and ``awready`` are always high; a read
burst's beats are offered in order from ``latency_cycles`` after its address, one a cycle, beat
``k`` of a port's reads (counted from the simulation's cycle 0) no earlier than
:func:`hwmodel.arch.dma.dram_beat_cycle` allows, and each held until ``rready``; a write beat is
taken when ``wvalid`` and ``wready`` (``wready`` by the same cap on the port's write beats), its
strobed bytes stored, and a burst answered (``bvalid`` for one cycle) ``latency_cycles`` after
its last beat or its address, whichever is later. A write beat before its burst's address is an
error, as is an access outside the image.

Use: per cycle, ``sim.step({**dram.inputs(cycle), ...})`` then ``dram.observe(cycle, sim.inspect)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hwmodel.arch.dma import dram_beat_cycle


@dataclass
class _Port:
    reads: list[tuple[int, int, bool]] = field(default_factory=list)  # (offered from, address, last)
    read_beats: int = 0
    bursts_read: list[tuple[int, int]] = field(default_factory=list)
    writes: list[tuple[int, int, int]] = field(default_factory=list)  # (address, beats, cycle of the address)
    beat: int = 0  # beats of the current write burst taken
    burst: int = 0  # write bursts completed
    write_beats: int = 0
    answers: list[int] = field(default_factory=list)  # cycles a write response is due


class Dram:
    """The DRAM (module docstring) on ``image`` (uint8, written in place) for the masters whose
    ports start with ``prefixes`` (``"m_"``: ``m_arvalid`` …); ``data_bits`` per beat."""

    def __init__(
        self,
        image: npt.NDArray[np.uint8],
        data_bits: int,
        latency_cycles: int = 16,
        bytes_per_cycle: float | None = None,
        prefixes: Sequence[str] = ("m_",),
        reads: bool = True,
        writes: bool = True,
    ) -> None:
        if latency_cycles < 1:
            raise ValueError(f"latency_cycles {latency_cycles}: at least 1")
        self.image = image
        self.beat_bytes = data_bits // 8
        self.latency_cycles = latency_cycles
        self.bytes_per_cycle = bytes_per_cycle
        self.has_reads, self.has_writes = reads, writes
        self.ports = {p: _Port() for p in prefixes}

    def _allowed(self, beat: int, cycle: int) -> bool:
        return cycle >= dram_beat_cycle(beat, self.beat_bytes, self.bytes_per_cycle)

    def _offered(self, port: _Port, cycle: int) -> bool:
        return bool(port.reads) and cycle >= port.reads[0][0] and self._allowed(port.read_beats, cycle)

    def _bytes(self, addr: int, n: int) -> bytes:
        if addr < 0 or addr + n > len(self.image):
            raise IndexError(f"DRAM access {addr:#x}+{n} outside the {len(self.image)}-byte image")
        return self.image[addr : addr + n].tobytes()

    def inputs(self, cycle: int) -> dict[str, int]:
        """Every port's channel inputs for ``cycle``."""
        out: dict[str, int] = {}
        for p, port in self.ports.items():
            if self.has_reads:
                out |= {f"{p}arready": 1, f"{p}rvalid": 0, f"{p}rdata": 0, f"{p}rlast": 0}
                if self._offered(port, cycle):
                    _, addr, last = port.reads[0]
                    data = int.from_bytes(self._bytes(addr, self.beat_bytes), "little")
                    out |= {f"{p}rvalid": 1, f"{p}rdata": data, f"{p}rlast": int(last)}
            if self.has_writes:
                out |= {
                    f"{p}awready": 1,
                    f"{p}wready": int(self._allowed(port.write_beats, cycle)),
                    f"{p}bvalid": int(cycle in port.answers),
                }
        return out

    def observe(self, cycle: int, inspect: Callable[[str], int]) -> None:
        """Take the handshakes of ``cycle`` (``inspect``: the simulation's output values)."""
        for p, port in self.ports.items():
            if self.has_reads:
                if self._offered(port, cycle) and inspect(f"{p}rready"):
                    port.reads.pop(0)
                    port.read_beats += 1
                if inspect(f"{p}arvalid"):
                    addr, n = inspect(f"{p}araddr"), inspect(f"{p}arlen") + 1
                    port.bursts_read.append((addr, n))
                    port.reads += [
                        (cycle + self.latency_cycles, addr + i * self.beat_bytes, i == n - 1)
                        for i in range(n)
                    ]
            if self.has_writes:
                self._observe_write(p, port, cycle, inspect)

    def _observe_write(self, p: str, port: _Port, cycle: int, inspect: Callable[[str], int]) -> None:
        if inspect(f"{p}awvalid"):
            port.writes.append((inspect(f"{p}awaddr"), inspect(f"{p}awlen") + 1, cycle))
        if not (inspect(f"{p}wvalid") and self._allowed(port.write_beats, cycle)):
            return
        if port.burst >= len(port.writes):
            raise RuntimeError(f"{p}: write data before its address at cycle {cycle}")
        addr, n, aw_cycle = port.writes[port.burst]
        at = addr + port.beat * self.beat_bytes
        self._bytes(at, self.beat_bytes)  # bounds
        data, strobe = inspect(f"{p}wdata"), inspect(f"{p}wstrb")
        for j in range(self.beat_bytes):
            if strobe >> j & 1:
                self.image[at + j] = data >> (8 * j) & 0xFF
        if bool(inspect(f"{p}wlast")) != (port.beat == n - 1):
            raise RuntimeError(f"{p}: wlast wrong at beat {port.beat} of burst {port.burst} (cycle {cycle})")
        port.beat += 1
        port.write_beats += 1
        if port.beat == n:
            port.answers.append(max(cycle, aw_cycle) + self.latency_cycles)
            port.burst, port.beat = port.burst + 1, 0

    def bursts(self, prefix: str = "m_") -> tuple[tuple[int, int], ...]:
        """The (byte address, beats) of every read burst port ``prefix`` issued, in order."""
        return tuple(self.ports[prefix].bursts_read)

    def write_bursts(self, prefix: str = "m_") -> tuple[tuple[int, int], ...]:
        """The (byte address, beats) of every write burst port ``prefix`` announced, in order."""
        return tuple((a, n) for a, n, _ in self.ports[prefix].writes)
