"""The tile controller of a design: its parameters, schedule and resources (what
:mod:`hwmodel.rtl.controller` builds).

The controller walks the tiles of a GEMM layer in the model's loop order (heads → m → n → k, k
innermost), ping-pongs the double-buffered A/B/C tile buffers, and generates their addresses:
per buffer an engine-side word counter (``{pp, word}``) and a DMA-side bank/word counter
(``{¬pp, word}``) with a one-hot bank write enable (A and B buffers) or a bank read mux (C
buffers, read back for the write-back). Schedule (cycle-exact, checked by the tests against the
PyRTL simulation): the first load takes ``first_load`` cycles from ``start``; then tile i takes
``max(compute_i, transfer_i)`` cycles (the engine's compute and the DMA's transfer of that slot
run together, the controller starts the next tile in the cycle after both are done); ``done``
pulses ``first_load + Σ max(compute_i, transfer_i)`` cycles after ``start`` — the per-layer
latency of :func:`hwmodel.model.evaluation._oriented_timing`.

Resources: flip-flops are structural (:func:`controller_register_bits`, exact); LUTs a fitted
linear model over :data:`CONTROLLER_FEATURES`, one coefficient set per Yosys family
(``coefficients.json`` → ``controller``); no DSP slices, no block RAM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hwmodel.arch.bits import bits_for
from hwmodel.arch.buffers import Buffer
from hwmodel.arch.cycles import mixed_tile_cycles, tile_extents
from hwmodel.arch.engine import EngineConfig

#: Buffer roles: ``a`` (activations in), ``b`` (weights / second operand in), ``c`` (results out).
ROLES: dict[str, str] = {
    "input_a": "a",
    "weight_b": "b",
    "weight_pot": "b",
    "output_c": "c",
    "output_pot": "c",
}


@dataclass(frozen=True)
class BufferPort:
    """One tile buffer as the controller addresses it."""

    name: str
    role: str  # "a", "b" or "c"
    banks: int
    addr_bits: int  # word address bits of one copy (the ping-pong bit comes on top)
    width_bits: int  # word width (the C read mux's width)

    @property
    def bank_bits(self) -> int:
        """Bits of the DMA's bank counter (0 for a single bank)."""
        return 0 if self.banks <= 1 else bits_for(self.banks)


@dataclass(frozen=True)
class ControllerSpec:
    """What the controller RTL is built for: loop-counter width and the buffers it addresses."""

    tile_bits: int
    buffers: tuple[BufferPort, ...]

    @property
    def name(self) -> str:
        parts = [
            f"{b.role}{b.banks}x2^{b.addr_bits}" + (f"w{b.width_bits}" if b.role == "c" else "")
            for b in self.buffers
        ]
        return f"ctrl t{self.tile_bits} " + " ".join(parts)


#: Loops of the tile schedule (heads, m, n, k), one counter each.
LOOPS: tuple[str, ...] = ("h", "m", "n", "k")
#: Control flip-flops: loading, running, go (tile start), done, ping-pong, compute/transfer flags.
CONTROL_BITS = 7


def controller_spec(tile_counts: Sequence[int], buffers: Sequence[Buffer]) -> ControllerSpec:
    """The controller of a design: loop counters wide enough for the largest tile count of any
    loop (``tile_counts``: heads and m/n/k tiles of every layer), one port per tile buffer."""
    ports = tuple(
        BufferPort(b.name, ROLES[b.name], b.banks, bits_for(b.depth_words), b.width_bits)
        for b in buffers
        if b.name in ROLES
    )
    return ControllerSpec(bits_for(max(tile_counts, default=1)), ports)


def schedule_cycles(first_load: int, compute: Sequence[int], transfer: Sequence[int]) -> int:
    """Cycles from ``start`` to ``done``: the first load, then per tile max(compute, transfer)."""
    return first_load + sum(max(c, t) for c, t in zip(compute, transfer, strict=True))


def tile_order(counts: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """(h, m, n, k) of every tile in the controller's order (k innermost)."""
    nh, nm, nn, nk = counts
    return [(h, m, n, k) for h in range(nh) for m in range(nm) for n in range(nn) for k in range(nk)]


@dataclass(frozen=True)
class LayerSchedule:
    """One layer as the controller walks it: the first load, then per tile (controller order)
    the engine's compute cycles and the DMA's transfer cycles of that slot."""

    counts: tuple[int, int, int, int]  # heads, m, n, k tiles
    first_load: int
    compute: tuple[int, ...]
    transfer: tuple[int, ...]

    @property
    def cycles(self) -> int:
        return schedule_cycles(self.first_load, self.compute, self.transfer)


def layer_schedule(
    m: int,
    n: int,
    k: int,
    tiling: tuple[int, int, int],
    repeat: int,
    engine: EngineConfig,
    pot_ratio: float,
    layer_bits: tuple[int, int],
    bytes_per_cycle: float,
    dram_latency_cycles: int,
) -> LayerSchedule:
    """The tile-by-tile schedule of a GEMM (``C[m×n] = A[m×k]·B[k×n]``, ``repeat`` heads) with the
    model's accounting (:func:`hwmodel.model.evaluation._oriented_timing`), tile by tile with the scalar
    cycle functions of :mod:`hwmodel.arch.cycles`: a tile's compute is
    :func:`~hwmodel.arch.cycles.mixed_tile_cycles`; its transfer moves its A tile (shared by the n
    tiles when one k tile covers K), its B tile (shared by the m tiles when one tile covers N and
    K) and, at the last k tile, its C tile, at ``bytes_per_cycle``; the first load brings the
    first A and B tiles after the DRAM latency."""
    wb, ab = layer_bits
    tm, tn, tk = (min(t, d) for t, d in zip(tiling, (m, n, k), strict=True))
    ems, ens, eks = tile_extents(m, tm), tile_extents(n, tn), tile_extents(k, tk)
    n_m, n_n, n_k = len(ems), len(ens), len(eks)
    per_a = ab / (8.0 * (n_n if n_k == 1 else 1))
    per_b = wb / (8.0 * (n_m if n_n == 1 and n_k == 1 else 1))
    per_c = ab / 8.0
    compute: list[int] = []
    transfer: list[int] = []
    for _h, mi, ni, ki in tile_order((repeat, n_m, n_n, n_k)):
        em, en, ek = ems[mi], ens[ni], eks[ki]
        compute.append(mixed_tile_cycles(em, en, ek, engine, pot_ratio, layer_bits))
        last_k = 1 if ki == n_k - 1 else 0
        tile_bytes = (em * ek) * per_a + (ek * en) * per_b + ((em * en) * per_c) * last_k
        transfer.append(math.ceil(tile_bytes / bytes_per_cycle))
    first = math.ceil((tm * tk * ab + tk * tn * wb) / 8.0 / bytes_per_cycle) + dram_latency_cycles
    return LayerSchedule((repeat, n_m, n_n, n_k), first, tuple(compute), tuple(transfer))
