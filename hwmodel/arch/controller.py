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

A layer followed by a non-linear op hands that op's rows to the non-linear unit as they are
finished (:data:`NL_MODES`): GELU each output tile (after its last k tile: an element-wise op on
the C tile before its write-back), softmax and LayerNorm each group of whole rows (after the last
n and k tile of an m tile: all of those rows' outputs exist; ``head`` after the last tile of a
head, for an attention matmul run transposed, whose softmax rows are its output columns). The
unit takes one job at a time: a tile that finishes a group hands it over only when the unit is
free (the controller holds the next tile until then), so the unit's job on tile i's C copy is
over before tile i + 2 writes that copy again; ``done`` pulses when the last job is over. With
S_j the slot cycles of group j and g_j its job: group j's hand-over comes
``max(S_j, g_{j−1})`` cycles after group j − 1's, and the layer takes
``first_load + S_0 + Σ_{j≥1} max(S_j, g_{j−1}) + g_last`` — the plain layer plus the
*exposed* non-linear cycles ``Σ_{j≥1} max(0, g_{j−1} − S_j) + g_last``.

The last job need not hold the next layer back (``defer``): where the next GEMM (the op's
*consumer*) reads the job's rows only in a later group — its last m tile, or its last head after
a softmax — the layer's ``done`` comes with the last hand-over and the next layer starts beside
the job (:data:`CHAIN_GAP` cycles after ``done``). The consumer holds only the transfer that
loads the first tile of that group (:data:`WAITS`) until the job is over
(:func:`pending_release`): the layer loses ``g_last`` and the consumer gains
``max(0, release + x_w − start)`` (x_w: that transfer's cycles, start: the group's start
without the wait); everything after it moves by that much.

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
from hwmodel.arch.nonlinear import Successor

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
#: Control flip-flops: loading, running, go (tile start), done, ping-pong, compute/transfer flags,
#: of the non-linear stage: job start, unit busy, draining (waiting for the last job), and of the
#: chain: a job left pending for the next layer, a transfer held until it is over.
CONTROL_BITS = 12

#: When a layer hands work to its non-linear successor (the RTL's ``nl_mode`` input is the index):
#: never, after every output tile, after every group of whole rows (m tile), after every head.
NL_MODES: tuple[str, ...] = ("none", "tile", "row", "head")

#: What group of a layer reads the results of the job the previous layer left pending
#: (``LayerSchedule.wait``: the group and its index d): m tile d onwards (``m``, one head) or
#: head d onwards (``head``); d = 0 holds the first load, d ≥ 1 the transfer that starts with
#: the last tile of group d − 1 (it loads group d's first tile).
WAITS: tuple[str, ...] = ("m", "head")

#: Cycles from the deferring layer's ``done`` to the next layer's ``start`` (the sequencer starts
#: a layer in the cycle after the previous one's ``done``; the latencies do not count it).
CHAIN_GAP = 1


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


def is_job_tile(nl_mode: str, tile: tuple[int, int, int, int], counts: tuple[int, int, int, int]) -> bool:
    """Whether ``tile`` = (h, m, n, k) finishes a group of the non-linear successor's work."""
    _h, m, n, k = tile
    last_k = k == counts[3] - 1
    if nl_mode == "tile":
        return last_k
    if nl_mode == "row":
        return last_k and n == counts[2] - 1
    if nl_mode == "head":
        return last_k and n == counts[2] - 1 and m == counts[1] - 1
    return False


def pending_release(pending: int) -> int:
    """The cycle (from the next layer's ``start``) in which a job of ``pending`` cycles that the
    previous layer left at its ``done`` is over (its unit's done pulse)."""
    return pending - 1 - CHAIN_GAP


def overlapped_cycles(
    first_load: int,
    compute: Sequence[int],
    transfer: Sequence[int],
    job_tiles: Sequence[bool],
    jobs: Sequence[int],
    defer: bool = False,
    pending: int = 0,
    wait_tile: int = -1,
) -> int:
    """Cycles from ``start`` to ``done`` of a layer whose tiles ``job_tiles`` hand a job (cycles
    ``jobs``, in order) to the non-linear unit (see the module docstring): a job tile's successor
    starts when both the tile and the unit's previous job are done; ``done`` after the last job,
    or with its hand-over when the layer ``defer``-s it to the next. ``pending``: the cycles of
    the job the previous layer left (0: none); the transfer of tile ``wait_tile`` (−1: the first
    load) then starts no earlier than that job's end (:func:`pending_release`)."""
    release = pending_release(pending) if pending else 0
    t = first_load + (max(release, 0) if wait_tile < 0 else 0)  # the current tile's start
    free = 0  # the cycle the unit's job is over
    jobs_left = iter(jobs)
    for i, (c, x, job) in enumerate(zip(compute, transfer, job_tiles, strict=True)):
        if i == wait_tile and t < release:  # the held transfer: a DMA answer takes ≥ 2 cycles
            t = max(t + c, release + max(x, 2))
        else:
            t += max(c, x)
        if job:
            t = max(t, free)
            free = t + next(jobs_left)
    return t if defer else max(t, free)


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
    #: the non-linear successor's hand-over (:data:`NL_MODES`) and its jobs' cycles, in order
    nl_mode: str = "none"
    jobs: tuple[int, ...] = ()
    #: the last job is left pending for the next layer (``done`` does not wait for it)
    defer: bool = False
    #: the cycles of the job the previous layer left pending (0: none) and the group that reads
    #: its results (:data:`WAITS`, index)
    pending: int = 0
    wait: tuple[str, int] = ("m", 0)

    @property
    def job_tiles(self) -> list[bool]:
        return [is_job_tile(self.nl_mode, tile, self.counts) for tile in tile_order(self.counts)]

    @property
    def wait_tile(self) -> int:
        """The tile (index in controller order) whose transfer waits for the pending job: the
        last tile of group d − 1 (−1: the first load)."""
        kind, d = self.wait
        if d == 0:
            return -1
        nh, nm, nn, nk = self.counts
        if kind == "head":
            return ((d - 1) * nm + nm - 1) * nn * nk + nn * nk - 1
        return (((nh - 1) * nm + d - 1) * nn + nn - 1) * nk + nk - 1

    @property
    def cycles(self) -> int:
        if self.nl_mode == "none" and not self.pending:
            return schedule_cycles(self.first_load, self.compute, self.transfer)
        return overlapped_cycles(
            self.first_load,
            self.compute,
            self.transfer,
            self.job_tiles,
            self.jobs,
            self.defer and bool(self.jobs),
            self.pending,
            self.wait_tile,
        )

    @property
    def exposed_cycles(self) -> int:
        """Cycles the non-linear successor adds to the layer (0 without one)."""
        return self.cycles - schedule_cycles(self.first_load, self.compute, self.transfer)


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
    successor: Successor | None = None,
    defer: bool = False,
    pending: int = 0,
    wait: tuple[str, int] = ("m", 0),
) -> LayerSchedule:
    """The tile-by-tile schedule of a GEMM (``C[m×n] = A[m×k]·B[k×n]``, ``repeat`` heads) with the
    model's accounting (:func:`hwmodel.model.evaluation._oriented_timing`), tile by tile with the scalar
    cycle functions of :mod:`hwmodel.arch.cycles`: a tile's compute is
    :func:`~hwmodel.arch.cycles.mixed_tile_cycles`; its transfer moves its A tile (shared by the n
    tiles when one k tile covers K), its B tile (shared by the m tiles when one tile covers N and
    K) and, at the last k tile, its C tile, at ``bytes_per_cycle``; the first load brings the
    first A and B tiles after the DRAM latency. ``successor``: the non-linear op the layer hands
    its finished rows to (its mode and the cycles of each job, :class:`Successor`), its last job
    left to run beside the next layer with ``defer``; ``pending``: the cycles of the job the
    previous layer left, whose results group ``wait`` (:data:`WAITS`) reads."""
    wb, ab = layer_bits
    tm, tn, tk = (min(t, d) for t, d in zip(tiling, (m, n, k), strict=True))
    ems, ens, eks = tile_extents(m, tm), tile_extents(n, tn), tile_extents(k, tk)
    n_m, n_n, n_k = len(ems), len(ens), len(eks)
    per_a = ab / (8.0 * (n_n if n_k == 1 else 1))
    per_b = wb / (8.0 * (n_m if n_n == 1 and n_k == 1 else 1))
    per_c = ab / 8.0
    compute: list[int] = []
    transfer: list[int] = []
    jobs: list[int] = []
    counts = (repeat, n_m, n_n, n_k)
    for tile in tile_order(counts):
        _h, mi, ni, ki = tile
        em, en, ek = ems[mi], ens[ni], eks[ki]
        compute.append(mixed_tile_cycles(em, en, ek, engine, pot_ratio, layer_bits))
        last_k = 1 if ki == n_k - 1 else 0
        tile_bytes = (em * ek) * per_a + (ek * en) * per_b + ((em * en) * per_c) * last_k
        transfer.append(math.ceil(tile_bytes / bytes_per_cycle))
        if successor is not None and is_job_tile(successor.mode, tile, counts):
            jobs.append(successor.job_cycles(em, en))
    first = math.ceil((tm * tk * ab + tk * tn * wb) / 8.0 / bytes_per_cycle) + dram_latency_cycles
    mode = "none" if successor is None else successor.mode
    return LayerSchedule(
        counts, first, tuple(compute), tuple(transfer), mode, tuple(jobs), defer, pending, wait
    )
