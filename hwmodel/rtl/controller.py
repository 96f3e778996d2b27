"""PyRTL generator of the tile controller: tile loops, ping-pong select and buffer addresses.

:func:`tile_controller` sequences the tiles of a GEMM layer (loops heads → m → n → k, the loop
bounds are run-time inputs, ``last_*`` = count − 1) and generates the addresses of the tile
buffers (:class:`hwmodel.arch.controller.ControllerSpec`). Ports (all synchronous, registers start
at 0):

* in ``start`` (pulse, idle only), ``compute_done`` (the engine's pulse: the current tile's
  compute ends this cycle), ``xfer_done`` (the DMA's pulse: its current transfer ends this
  cycle), ``last_h``, ``last_m``, ``last_n``, ``last_k`` (``tile_bits`` each), ``nl_mode`` (2
  bits: when the layer hands work to its non-linear successor, the index in
  :data:`hwmodel.arch.controller.NL_MODES`), ``nl_done`` (the unit's pulse: its job ends),
  ``nl_defer`` (leave the last job pending beside the next layer instead of waiting for it),
  ``pend_done`` (the pulse of the unit running the job the previous layer left pending),
  ``wait_load``, ``wait_head`` and ``wait_idx`` (``tile_bits``: which transfer waits for that
  job, :data:`hwmodel.arch.controller.WAITS`);
* out ``xfer_start`` (a transfer starts: the first load with ``first`` high, then one per tile),
  ``tile_start`` (the engine starts the tile ``idx_h``/``idx_m``/``idx_n``/``idx_k`` this cycle),
  ``last_k_tile`` (the current tile is the last k tile: its result is written back), ``pp``
  (the copy the engine uses; the DMA uses the other), ``nl_start`` (the unit takes the group
  the last tile finished), ``done`` (pulse: the layer is finished);
* per buffer ``<name>``: in ``<name>_last_word`` (words per tile − 1), ``<name>_eng_step``,
  ``<name>_dma_step``; out ``<name>_eng_addr`` = ``{pp, word}`` (reset by ``tile_start``, one
  word per engine step), ``<name>_dma_addr`` = ``{¬pp, word}`` (reset by ``xfer_start``; the
  DMA walks the banks fastest, then the words); A and B buffers: out ``<name>_we`` (one-hot bank
  write enable, ``banks`` bits, gated by the DMA step); C buffers: in ``<name>_rdata_<bank>``,
  out ``<name>_dma_data`` (the DMA's read mux across the banks).

Schedule and cycle counts: :mod:`hwmodel.arch.controller` (``done`` pulses
``first_load + Σ max(compute_i, transfer_i)`` cycles after ``start`` without a successor; with
one, or with a pending job, :func:`hwmodel.arch.controller.overlapped_cycles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import pyrtl

from hwmodel.arch.controller import CHAIN_GAP, NL_MODES, ControllerSpec, LayerSchedule
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.verilog import working_block_verilog

Wire: TypeAlias = pyrtl.WireVector


def _wrap_step(reg: pyrtl.Register, at_last: Wire, reset: Wire, step: Wire, bits: int) -> Wire:
    """Drive ``reg`` as a counter 0 … last that wraps (``at_last``: it holds its last value);
    returns whether it wraps this step."""
    nxt = pyrtl.select(at_last, pyrtl.Const(0, bits), (reg + 1)[:bits])
    reg.next <<= pyrtl.select(reset, pyrtl.Const(0, bits), pyrtl.select(step, nxt, reg))
    return step & at_last


def _wrap_counter(reset: Wire, step: Wire, last: Wire, bits: int) -> tuple[pyrtl.Register, Wire]:
    """A counter 0 … ``last`` that wraps; returns (register, wraps this step).

    Latency: the value changes the cycle after ``step`` (``reset`` wins). Area: an incrementer,
    an equality compare and a 3-way mux of ``bits`` bits.
    """
    reg = pyrtl.Register(bits)
    return reg, _wrap_step(reg, reg == last, reset, step, bits)


def _bank_counter(reset: Wire, step: Wire, banks: int, bits: int) -> tuple[Wire, Wire]:
    """The DMA's bank counter 0 … banks − 1; returns (value, wraps this step). One bank: no
    register, every step wraps."""
    if banks <= 1:
        return pyrtl.Const(0, 1), step
    reg, wrap = _wrap_counter(reset, step, pyrtl.Const(banks - 1, bits), bits)
    return reg, wrap


def tile_controller(
    spec: ControllerSpec,
    start: Wire,
    compute_done: Wire,
    xfer_done: Wire,
    last: tuple[Wire, Wire, Wire, Wire],
    nl_mode: Wire,
    nl_done: Wire,
    chain: dict[str, Wire] | None = None,
) -> dict[str, Wire]:
    """The schedule part: returns its outputs by name (``tile_start``, ``xfer_start``, ``first``,
    ``done``, ``pp``, ``last_k_tile``, ``nl_start``, ``idx_h`` … ``idx_k``).

    Latency: ``tile_start`` of tile 0 in the cycle after the first load's ``xfer_done``; of
    tile i + 1 in the cycle after both the engine and the DMA are done with tile i (each
    ``*_done`` held in a flag until the other arrives) and, when tile i finishes a group of the
    non-linear successor's work (``nl_mode``, :data:`hwmodel.arch.controller.NL_MODES`), the
    unit is free (not busy, or its ``nl_done`` this cycle); ``nl_start`` pulses with that
    ``tile_start`` (the unit takes the group). ``done`` in the cycle after the last tile's end,
    or after the last job's ``nl_done`` — unless ``nl_defer``: then the last job is left
    *pending* (``nl_start`` and ``done`` pulse together) and the next layer runs beside it.
    While a job is pending (until ``pend_done``), the transfer that loads the first tile of the
    group that reads its results waits (``chain``, :data:`hwmodel.arch.controller.WAITS`): the
    first load (``wait_load``), or the transfer that starts with the last tile of m tile
    ``wait_idx`` (head ``wait_idx`` with ``wait_head``); ``xfer_start`` pulses when the job is
    over. Area: four ``tile_bits`` counters with compares, a ``tile_bits`` compare, 12 control
    flip-flops.
    """
    bits = spec.tile_bits
    loading = pyrtl.Register(1)
    running = pyrtl.Register(1)
    go = pyrtl.Register(1)
    done = pyrtl.Register(1)
    pp = pyrtl.Register(1)
    cflag = pyrtl.Register(1)
    xflag = pyrtl.Register(1)
    nl_go = pyrtl.Register(1)
    nl_busy = pyrtl.Register(1)
    draining = pyrtl.Register(1)
    pend = pyrtl.Register(1)
    xhold = pyrtl.Register(1)
    ch = chain or {}
    zero = pyrtl.Const(0, 1)
    defer, pend_done = ch.get("nl_defer", zero), ch.get("pend_done", zero)
    wait_load, wait_head = ch.get("wait_load", zero), ch.get("wait_head", zero)
    idle = ~loading & ~running & ~draining
    begin = idle & start
    loaded = loading & xfer_done
    both = running & (cflag | compute_done) & (xflag | xfer_done)

    counters = [pyrtl.Register(bits) for _ in range(4)]  # h, m, n, k
    at_last = [c == lst for c, lst in zip(counters, last, strict=True)]
    # the current tile finishes a group of the successor's work (nl_mode 1: tile, 2: rows, 3: head)
    job = (
        ((nl_mode == 1) & at_last[3])
        | ((nl_mode == 2) & at_last[3] & at_last[2])
        | ((nl_mode == 3) & at_last[3] & at_last[2] & at_last[1])
    )
    unit_free = ~nl_busy | nl_done
    adv = both & (~job | unit_free)

    # loop counters (k innermost): each wraps when it steps at its last value
    step: Wire = adv
    for reg, is_last in zip(reversed(counters), reversed(at_last), strict=True):
        step = _wrap_step(reg, is_last, begin, step, bits)
    finished = step  # the last tile is done (every counter wraps)
    hand_over = adv & job
    leave = finished & job & defer  # the last job is left pending for the next layer

    # the transfer of the wait tile (or the first load) waits for the pending job
    wait_idx = ch.get("wait_idx", pyrtl.Const(0, bits))
    group = pyrtl.select(wait_head, counters[0], counters[1])
    inner = at_last[3] & at_last[2] & pyrtl.select(wait_head, at_last[1], at_last[0])
    pend_free = ~pend | pend_done
    wait_here = (begin & wait_load) | (go & ~wait_load & inner & (group == wait_idx))
    hold = wait_here & ~pend_free
    release = xhold & pend_free

    loading.next <<= pyrtl.select(begin, pyrtl.Const(1, 1), loading & ~xfer_done)
    running.next <<= pyrtl.select(loaded, pyrtl.Const(1, 1), running & ~finished)
    go.next <<= loaded | (adv & ~finished)
    nl_go.next <<= hand_over
    nl_busy.next <<= (hand_over & ~leave) | (nl_busy & ~nl_done)
    draining.next <<= (finished & job & ~defer) | (draining & ~nl_done)
    done.next <<= (finished & (~job | defer)) | (draining & nl_done)
    pend.next <<= leave | (pend & ~pend_done)
    xhold.next <<= hold | (xhold & ~pend_free)
    pp.next <<= pyrtl.select(begin, pyrtl.Const(0, 1), pp ^ (adv & ~finished))
    # a done pulse waits in its flag for the other one (the first load's is not a tile's) and
    # while the unit holds the next tile back
    cflag.next <<= running & ~adv & (cflag | compute_done)
    xflag.next <<= running & ~adv & (xflag | xfer_done)
    return {
        "tile_start": go,
        "xfer_start": ((go | begin) & ~hold) | release,
        "first": loading,
        "done": done,
        "pp": pp,
        "last_k_tile": at_last[3],
        "nl_start": nl_go,
        **{f"idx_{loop}": reg for loop, reg in zip("hmnk", counters, strict=True)},
    }


def buffer_addresses(spec: ControllerSpec, tile_start: Wire, xfer_start: Wire, pp: Wire) -> None:
    """The address generators of every buffer of ``spec`` (ports in the module docstring).

    Latency: an address moves the cycle after its step; a tile or transfer start resets it to
    word 0 (bank 0). Area per buffer: two ``addr_bits`` wrap counters, a bank counter, a one-hot
    write-enable decoder (A, B) or a ``banks``-input read mux of ``width_bits`` (C).
    """
    for b in spec.buffers:
        last_word = pyrtl.Input(b.addr_bits, f"{b.name}_last_word")
        eng_step = pyrtl.Input(1, f"{b.name}_eng_step")
        dma_step = pyrtl.Input(1, f"{b.name}_dma_step")
        eng_word, _ = _wrap_counter(tile_start, eng_step, last_word, b.addr_bits)
        bank, bank_wrap = _bank_counter(xfer_start, dma_step, b.banks, max(b.bank_bits, 1))
        dma_word, _ = _wrap_counter(xfer_start, bank_wrap, last_word, b.addr_bits)
        eng_addr = pyrtl.Output(b.addr_bits + 1, f"{b.name}_eng_addr")
        dma_addr = pyrtl.Output(b.addr_bits + 1, f"{b.name}_dma_addr")
        eng_addr <<= pyrtl.concat(pp, eng_word)
        dma_addr <<= pyrtl.concat(~pp, dma_word)
        if b.role == "c":
            data = pyrtl.Output(b.width_bits, f"{b.name}_dma_data")
            rdata = [pyrtl.Input(b.width_bits, f"{b.name}_rdata_{i}") for i in range(b.banks)]
            if b.banks == 1:
                data <<= rdata[0]
            else:
                data <<= pyrtl.mux(bank, *rdata, default=pyrtl.Const(0, b.width_bits))
        else:
            we = pyrtl.Output(b.banks, f"{b.name}_we")
            if b.banks == 1:
                we <<= dma_step
            else:
                we <<= pyrtl.concat_list([dma_step & (bank == i) for i in range(b.banks)])


def build_controller(spec: ControllerSpec) -> None:
    """The whole controller with its ports in the working block."""
    start = pyrtl.Input(1, "start")
    compute_done = pyrtl.Input(1, "compute_done")
    xfer_done = pyrtl.Input(1, "xfer_done")
    last = tuple(pyrtl.Input(spec.tile_bits, f"last_{loop}") for loop in "hmnk")
    nl_mode = pyrtl.Input(2, "nl_mode")
    nl_done = pyrtl.Input(1, "nl_done")
    chain: dict[str, Wire] = {
        name: pyrtl.Input(1, name) for name in ("nl_defer", "pend_done", "wait_load", "wait_head")
    }
    chain["wait_idx"] = pyrtl.Input(spec.tile_bits, "wait_idx")
    outs = tile_controller(spec, start, compute_done, xfer_done, last, nl_mode, nl_done, chain)  # type: ignore[arg-type]
    for name, wire in outs.items():
        port = pyrtl.Output(len(wire), name)
        port <<= wire
    buffer_addresses(spec, outs["tile_start"], outs["xfer_start"], outs["pp"])


def controller_verilog(spec: ControllerSpec, module_name: str = "toplevel") -> str:
    """Verilog of the controller (resets the PyRTL working block and builds it)."""
    fresh_block()
    build_controller(spec)
    return working_block_verilog(module_name)


@dataclass(frozen=True)
class ControllerRun:
    """A simulated layer: cycles from ``start`` to ``done``, per tile (in start order) its
    ``(h, m, n, k, pp, last_k_tile)``, and the cycles whose buffer addresses, write enables or
    read data differed from the Python reference (:class:`_AddressReference`)."""

    cycles: int
    tiles: list[tuple[int, int, int, int, int, int]]
    address_mismatches: int
    address_checks: int
    #: the (h, m, n, k) of the tile whose group each ``nl_start`` handed to the unit, in order
    job_tiles: list[tuple[int, int, int, int]]


class _AddressReference:
    """Python model of one buffer's address generators (what the RTL must show each cycle)."""

    def __init__(self, banks: int, words: int) -> None:
        self.banks, self.words = banks, words
        self.eng = self.dma = self.bank = 0

    def expected(self, pp: int, addr_bits: int, dma_step: int) -> tuple[int, int, int]:
        """(engine address, DMA address, one-hot write enable) this cycle."""
        return (pp << addr_bits) | self.eng, ((1 - pp) << addr_bits) | self.dma, dma_step << self.bank

    def step(self, tile_start: int, xfer_start: int, eng_step: int, dma_step: int) -> None:
        if tile_start:
            self.eng = 0
        elif eng_step:
            self.eng = 0 if self.eng == self.words - 1 else self.eng + 1
        if xfer_start:
            self.dma = self.bank = 0
        elif dma_step:
            wrap = self.bank == self.banks - 1
            self.bank = 0 if wrap else self.bank + 1
            if wrap:
                self.dma = 0 if self.dma == self.words - 1 else self.dma + 1


def simulate_controller(
    spec: ControllerSpec,
    counts: tuple[int, int, int, int],
    first_load: int,
    compute: Sequence[int],
    transfer: Sequence[int],
    words: dict[str, int] | None = None,
    seed: int = 0,
    nl_mode: str = "none",
    jobs: Sequence[int] = (),
) -> ControllerRun:
    """Run a layer of ``counts`` = (heads, m, n, k) tiles: a behavioural DMA answers the first
    ``xfer_start`` after ``first_load`` cycles and tile i's after ``transfer[i]``, a behavioural
    engine answers tile i's ``tile_start`` after ``compute[i]`` cycles (``*_done`` in the last
    cycle, so each answer comes at least one cycle after its start: ``first_load`` and
    ``compute[i]`` ≥ 2; a 1-cycle transfer is answered as a 2-cycle one, which changes no tile's
    time as its compute takes ≥ 2). Each buffer's engine and DMA steps are random
    (seeded); its addresses are checked every cycle against the Python reference with
    ``words[name]`` words per tile (default: the whole copy). With a non-linear successor
    (``nl_mode``, :data:`~hwmodel.arch.controller.NL_MODES`) a behavioural unit answers job j's
    ``nl_start`` after ``jobs[j]`` ≥ 2 cycles. Resets the PyRTL working block."""
    layer = LayerSchedule(counts, first_load, tuple(compute), tuple(transfer), nl_mode, tuple(jobs))
    return simulate_chain(spec, [layer], words, seed)[0]


def simulate_chain(
    spec: ControllerSpec,
    layers: Sequence[LayerSchedule],
    words: dict[str, int] | None = None,
    seed: int = 0,
) -> list[ControllerRun]:
    """Run ``layers`` back to back on one controller (as :func:`simulate_controller` runs one):
    layer i + 1 starts in the cycle after layer i's ``done``
    (:data:`~hwmodel.arch.controller.CHAIN_GAP`). A layer that ``defer``-s its last job leaves it
    to its unit beside the next layer, whose ``wait`` group's transfer waits for it (the unit's
    done pulse on ``pend_done``). Each run's cycles count from its ``start`` to its ``done``."""
    import random

    for layer in layers:
        if layer.first_load < 2 or min(layer.compute, default=2) < 2:
            raise ValueError("first_load and every compute must be ≥ 2 cycles")
        if min(layer.jobs, default=2) < 2:
            raise ValueError("every job must take ≥ 2 cycles")
    fresh_block()
    build_controller(spec)
    sim = pyrtl.FastSimulation()
    rnd = random.Random(seed)
    words = words or {}
    rdata = {
        b.name: [rnd.getrandbits(b.width_bits) for _ in range(b.banks)] for b in spec.buffers if b.role == "c"
    }
    refs = {b.name: _AddressReference(b.banks, words.get(b.name, 1 << b.addr_bits)) for b in spec.buffers}
    fixed: dict[str, int] = {}
    for b in spec.buffers:
        fixed[f"{b.name}_last_word"] = refs[b.name].words - 1
        for i, v in enumerate(rdata.get(b.name, [])):
            fixed[f"{b.name}_rdata_{i}"] = v
    mismatches = checks = 0
    pend_at = -1  # the cycle the pending job's unit pulses done
    runs: list[ControllerRun] = []
    cycle = 0
    for layer in layers:
        base = dict(fixed)
        base.update({f"last_{loop}": c - 1 for loop, c in zip("hmnk", layer.counts, strict=True)})
        kind, d = layer.wait
        base.update(
            nl_mode=NL_MODES.index(layer.nl_mode),
            nl_defer=int(layer.defer),
            wait_load=int(d == 0),
            wait_head=int(kind == "head"),
            wait_idx=max(d - 1, 0),
        )
        compute, transfer, jobs = layer.compute, layer.transfer, layer.jobs
        cdone_at = xdone_at = ndone_at = -1
        job_tiles: list[tuple[int, int, int, int]] = []
        tile = -1  # the tile the engine computes
        xfer = -1  # -1 before the first load; the first load is transfer "-1"
        tiles: list[tuple[int, int, int, int, int, int]] = []
        layer_mismatches, layer_checks = mismatches, checks
        begin = cycle
        limit = cycle + layer.first_load + sum(max(c, t) for c, t in zip(compute, transfer, strict=True))
        limit += sum(jobs) + layer.pending + 100
        while True:
            if cycle >= limit:
                n_tiles = len(compute)
                raise RuntimeError(f"controller did not finish {n_tiles} tiles in {limit - begin} cycles")
            inputs = dict(base)
            inputs["start"] = int(cycle == begin)
            inputs["compute_done"] = int(cycle == cdone_at)
            inputs["xfer_done"] = int(cycle == xdone_at)
            inputs["nl_done"] = int(cycle == ndone_at)
            inputs["pend_done"] = int(cycle == pend_at)
            steps = {b.name: (rnd.getrandbits(1), rnd.getrandbits(1)) for b in spec.buffers}
            for b in spec.buffers:
                inputs[f"{b.name}_eng_step"], inputs[f"{b.name}_dma_step"] = steps[b.name]
            sim.step(inputs)
            out = sim.inspect
            pp = out("pp")
            for b in spec.buffers:
                ref = refs[b.name]
                eng, dma, we = ref.expected(pp, b.addr_bits, steps[b.name][1])
                ok = out(f"{b.name}_eng_addr") == eng and out(f"{b.name}_dma_addr") == dma
                if b.role == "c":
                    ok = ok and out(f"{b.name}_dma_data") == rdata[b.name][ref.bank]
                else:
                    ok = ok and out(f"{b.name}_we") == we
                mismatches += int(not ok)
                checks += 1
                ref.step(out("tile_start"), out("xfer_start"), *steps[b.name])
            if out("nl_start"):  # the unit takes the group the last started tile finished
                if len(job_tiles) == len(jobs):
                    raise RuntimeError(f"the controller handed over more than the {len(jobs)} jobs given")
                ends = cycle + jobs[len(job_tiles)] - 1
                if layer.defer and len(job_tiles) == len(jobs) - 1:
                    pend_at = ends  # left pending: the next layer's pend_done
                else:
                    ndone_at = ends
                job_tiles.append(tiles[-1][:4])
            if out("done"):
                runs.append(
                    ControllerRun(
                        cycle - begin,
                        tiles,
                        mismatches - layer_mismatches,
                        checks - layer_checks,
                        job_tiles,
                    )
                )
                cycle += CHAIN_GAP
                break
            if out("tile_start"):
                tile += 1
                tiles.append((out("idx_h"), out("idx_m"), out("idx_n"), out("idx_k"), pp, out("last_k_tile")))
                cdone_at = cycle + compute[tile] - 1
            if out("xfer_start"):
                length = layer.first_load if xfer < 0 else max(transfer[xfer], 2)
                xdone_at = cycle + length - 1
                xfer += 1
            cycle += 1
    return runs
