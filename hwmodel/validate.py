"""Analytic model vs PyRTL simulation vs Yosys: ``python -m hwmodel.validate [--json]``.

1. Cycle cross-check: random GEMMs (M, N, K, engine shape, DSP slice, packing, engine and layer
   bit-widths, PoT ratio, tiling) streamed through the simulated RTL; the simulated cycle count
   must equal ``hwmodel.arch.cycles.gemm_compute_cycles`` and the outputs the integer reference.
2. Resources: ``hwmodel.cost.engine.engine_resources`` against the committed Yosys table
   (``hwmodel/calibration/synth_table.csv``, every engine on each Yosys family ``xcup``, ``xcu``,
   ``xc7``): DSP and BRAM absolute, FF and LUT relative error (worst case per family too).
3. Buffer banks: ``hwmodel.arch.buffers.bank_memory`` against Yosys's memory mapping of the same
   banks (``hwmodel/calibration/memory_table.csv``): BRAM36 tiles and LUT RAM primitives must be
   equal; the LUT RAM's fabric (read mux, write decode, data register) is reported.
4. Non-linear units (softmax, LayerNorm, GELU; :mod:`hwmodel.rtl.nonlinear`): random rows
   (plus edge rows) streamed through the simulated units must give the integer kernels' outputs
   bit for bit and :func:`hwmodel.arch.nonlinear.stream_cycles` cycle for cycle; their resources
   (fitted fabric + modelled row buffers) against the committed Yosys table
   (``hwmodel/calibration/nonlinear_table.csv``, fitted and held-out points). Both kernel
   variants (:data:`hwmodel.arch.intops.VARIANTS`): the ``nonlinear_*`` figures are the poly
   units', the ``nonlinear_shift_*`` ones the shift-and-add units'; ``nonlinear_families`` holds
   the worst errors per variant, family and fitted / held-out.
5. Tile controller (:mod:`hwmodel.rtl.controller`): random small GEMMs (shape, tiling, heads,
   engine, PoT ratio, bandwidth), three in four followed by a GELU, softmax or LayerNorm the
   controller overlaps with the GEMM, walked by the simulated controller with the per-tile
   compute and transfer times and the unit's job times of
   :func:`hwmodel.arch.controller.layer_schedule`; its cycles must equal the model's per-layer
   latency (exposed non-linear cycles included), its tiles and hand-overs come in the
   schedule's order and its buffer addresses equal the Python reference every cycle; its resources
   (fitted LUT, structural FF, no DSP or BRAM) against the committed Yosys table
   (``hwmodel/calibration/controller_table.csv``, fitted and held-out points).
6. ``--efficiency``: per engine and family, LUT, FF and DSP per MAC/cycle (peak, densest packing
   mode), from synthesis and from the model side by side.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwmodel.arch.bits import bits_for
from hwmodel.arch.buffers import LUTRAM_LIBRARIES, bank_memory
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.arch.controller import (
    NL_MODES,
    WAITS,
    BufferPort,
    ControllerSpec,
    LayerSchedule,
    layer_schedule,
    tile_order,
)
from hwmodel.arch.cycles import gemm_compute_cycles
from hwmodel.arch.engine import DSP_SLICES, PACKINGS, EngineConfig
from hwmodel.arch.intops import KERNELS, VARIANTS
from hwmodel.arch.nonlinear import Successor, row_buffer_memory, stream_cycles, unit_spec
from hwmodel.base.cli import OneLineParser
from hwmodel.calibration.tables import (
    CONTROLLER_TABLE_PATH,
    MEMORY_TABLE_PATH,
    NONLINEAR_TABLE_PATH,
    TABLE_PATH,
    ControllerRow,
    NonlinearRow,
    SynthRow,
    is_holdout,
    parse_spec,
    read_controller_table,
    read_memory_table,
    read_nonlinear_table,
    read_table,
    unit_total_lut,
)
from hwmodel.cost.coefficients import load_coefficients, nonlinear_section
from hwmodel.cost.controller import controller_resources
from hwmodel.cost.engine import engine_resources
from hwmodel.cost.nonlinear import unit_resources
from hwmodel.model.evaluation import (
    DesignReport,
    _engine,
    _gemm_timing,
    _GemmTiming,
    _layer_arrays,
    _nonlinear_part,
    _workload_tables,
    _WorkloadTables,
    design_engine,
    nonlinear_row_bits,
    successor_unit,
)
from hwmodel.rtl.controller import ControllerRun, simulate_chain, simulate_controller
from hwmodel.rtl.harness import GemmTiling, pot_columns, reference_gemm, simulate_gemm
from hwmodel.target.device import Device
from hwmodel.target.workload import GemmOp, NonlinearOp, Workload

RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class CycleCase:
    """One random cycle cross-check case and its outcome."""

    m: int
    n: int
    k: int
    engine: EngineConfig
    layer_bits: tuple[int, int]
    lanes: int  # MACs per DSP slice of the layer's mode (0: PoT only)
    tiling: GemmTiling
    pot_ratio: float
    analytic_cycles: int
    simulated_cycles: int
    outputs_exact: bool


@dataclass(frozen=True)
class ResourcePoint:
    """Model vs Yosys for one grid point."""

    synth_family: str
    name: str
    dsp_model: int
    dsp_yosys: int
    ff_model: float
    ff_yosys: int
    lut_model: float
    lut_yosys: int
    bram_model: float
    bram_yosys: float

    @property
    def ff_rel_err(self) -> float:
        return abs(self.ff_model - self.ff_yosys) / max(self.ff_yosys, 1)

    @property
    def lut_rel_err(self) -> float:
        return abs(self.lut_model - self.lut_yosys) / max(self.lut_yosys, 1)


def random_case(
    rng: np.random.Generator,
) -> tuple[EngineConfig, GemmTiling, float, int, int, int, tuple[int, int]]:
    """A random small case: shape, engine (slice, packing, widths), layer widths, ratio, tiling.

    Every third case draws 4-bit operands on a packing-4 engine so that the 4-lane mode is
    exercised; extreme operands are drawn by :func:`run_cycle_case`.
    """
    ratio = float(rng.choice(RATIOS))
    rows = int(rng.integers(1, 10))
    cf = 0 if ratio == 1.0 else int(rng.integers(1, 4))
    cp = 0 if ratio == 0.0 else int(rng.integers(1, 4))
    packing = int(rng.choice(PACKINGS))
    wb, ab, pb = int(rng.integers(2, 9)), int(rng.integers(2, 9)), int(rng.integers(2, 6))
    acc = ab + int(rng.integers(6, 20))
    dsp = str(rng.choice(sorted(DSP_SLICES)))
    engine = EngineConfig(rows, cf, cp, wb, pb, ab, acc, packing, dsp)
    lw, la = int(rng.integers(2, wb + 1)), int(rng.integers(2, ab + 1))
    if packing == 4 and rng.random() < 0.5:
        lw, la = min(lw, 4), min(la, 4)
    m, n, k = (int(v) for v in rng.integers(1, 15, size=3))
    tiling = GemmTiling(int(rng.integers(1, m + 1)), int(rng.integers(1, n + 1)), int(rng.integers(1, k + 1)))
    return engine, tiling, ratio, m, n, k, (lw, la)


def run_cycle_case(rng: np.random.Generator) -> CycleCase:
    eng, til, ratio, m, n, k, bits = random_case(rng)
    wb, ab = bits
    if rng.random() < 0.25:  # most negative operands: the worst case for lanes and signs
        a = np.full((m, k), -(1 << (ab - 1)), dtype=np.int64)
        wf = np.full((k, n), -(1 << (wb - 1)), dtype=np.int64)
        wp = np.full((k, n), (1 << eng.pot_weight_bits) - 1, dtype=np.int64)
    else:
        a = rng.integers(-(1 << (ab - 1)), 1 << (ab - 1), size=(m, k))
        wf = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(k, n))
        wp = rng.integers(0, 1 << eng.pot_weight_bits, size=(k, n))
    mask = pot_columns(n, til.tn, ratio)
    w = np.where(mask[None, :], wp, wf)
    run = simulate_gemm(a, w, eng, til, ratio, layer_bits=bits)
    ana = gemm_compute_cycles(m, n, k, eng, ratio, til.tm, til.tn, til.tk, bits)
    exact = bool(np.array_equal(run.outputs, reference_gemm(a, w, mask, eng)))
    lanes = run.mode.lanes if run.mode is not None and ratio < 1.0 else 0
    return CycleCase(m, n, k, eng, bits, lanes, til, ratio, ana, run.cycles, exact)


def resource_point(row: SynthRow) -> ResourcePoint:
    res = engine_resources(row.engine, row.synth_family, load_coefficients())
    return ResourcePoint(
        synth_family=row.synth_family,
        name=row.name,
        dsp_model=res.dsp,
        dsp_yosys=row.dsp,
        ff_model=res.ff,
        ff_yosys=row.ff,
        lut_model=res.lut,
        lut_yosys=row.lut,
        bram_model=0.0,  # the compute engines hold no block RAM (buffers are separate)
        bram_yosys=row.bram36,
    )


def resource_points() -> list[ResourcePoint]:
    return [resource_point(row) for row in read_table()]


def nonlinear_point(row: NonlinearRow) -> ResourcePoint:
    """Model (fitted fabric + modelled row buffers) vs Yosys for one synthesised unit."""
    coef = load_coefficients()
    fabric = unit_resources(
        row.kind, row.synth_family, coef, row.lanes, row.log2_rows, row.in_bits, row.variant
    )
    mem = row_buffer_memory(row.kind, row.lanes, row.log2_rows, row.synth_family)
    kind = row.kind if row.variant == "poly" else f"{row.kind} {row.variant}"
    return ResourcePoint(
        synth_family=row.synth_family,
        name=f"{kind} x{row.lanes} {row.in_bits}-bit rows 2^{row.log2_rows}",
        dsp_model=fabric.dsp,
        dsp_yosys=row.dsp,
        ff_model=fabric.ff + mem.ff,
        ff_yosys=row.ff,
        lut_model=fabric.lut + mem.lut,
        lut_yosys=unit_total_lut(row),
        bram_model=mem.bram36,
        bram_yosys=row.bram36,
    )


def nonlinear_points() -> list[ResourcePoint]:
    return [nonlinear_point(row) for row in read_nonlinear_table()]


def controller_point(row: ControllerRow) -> ResourcePoint:
    """Model (fitted LUT, structural FF) vs Yosys for one synthesised controller."""
    spec = parse_spec(row.spec)
    res = controller_resources(spec, load_coefficients().controller_for(row.synth_family))
    return ResourcePoint(
        synth_family=row.synth_family,
        name=spec.name + (" (held out)" if row.holdout else ""),
        dsp_model=0,
        dsp_yosys=row.dsp,
        ff_model=float(res.ff),
        ff_yosys=row.ff,
        lut_model=res.lut,
        lut_yosys=row.lut,
        bram_model=0.0,
        bram_yosys=row.bram36,
    )


#: The buffers of the simulated controllers (an A, two B and two C buffers of a mixed engine).
CHECK_BUFFERS: tuple[BufferPort, ...] = (
    BufferPort("input_a", "a", 4, 3, 16),
    BufferPort("weight_b", "b", 3, 4, 8),
    BufferPort("output_c", "c", 3, 2, 12),
    BufferPort("weight_pot", "b", 2, 3, 4),
    BufferPort("output_pot", "c", 2, 2, 20),
)


#: The GEMM before each kind of non-linear successor in the controller cases (name, kind).
_PRODUCERS: dict[str, tuple[str, str]] = {
    "gelu": ("blocks.0.mlp.fc1", "fc1"),
    "softmax": ("blocks.0.attn.qk", "qk"),
    "layernorm": ("blocks.0.attn.proj", "proj"),
}


@dataclass(frozen=True)
class ControllerCase:
    """One layer through the simulated controller: the model's latency and exposed non-linear
    cycles, the tile-by-tile schedule and the simulation."""

    latency: int
    exposed: int
    transposed: bool
    schedule: LayerSchedule
    run: ControllerRun

    @property
    def cycle_mismatch(self) -> bool:
        return not (self.run.cycles == self.schedule.cycles == self.latency) or (
            self.schedule.exposed_cycles != self.exposed
        )

    @property
    def order_mismatch(self) -> bool:
        counts = self.schedule.counts
        jobs = [t for t, job in zip(tile_order(counts), self.schedule.job_tiles, strict=True) if job]
        return [t[:4] for t in self.run.tiles] != tile_order(counts) or self.run.job_tiles != jobs


def _case_timing(
    ops: list[GemmOp | NonlinearOp],
    tiles: tuple[int, int, int],
    shape: tuple[int, int, int],
    ratio: float,
    bpc: float,
    lanes: int,
    kernels: tuple[tuple[str, str], ...],
) -> tuple[_GemmTiming, EngineConfig, int, _WorkloadTables]:
    """The model's timing of a small workload of ``ops`` (one tiling, 8-bit layers) on an engine
    of ``shape`` = (rows, fixed cols, PoT cols): per-layer timing, the engine, the DRAM latency
    and the workload's tables."""
    rows, cols, pot_cols = shape
    hw = LayerHw(weight_bits=8, act_bits=8, pot_ratio=ratio, tm=tiles[0], tn=tiles[1], tk=tiles[2])
    act_act = {op.name for op in ops if isinstance(op, GemmOp) and not op.weight_operand}
    cfg = AcceleratorConfig(
        freq_mhz=200.0,
        rows=rows,
        cols=cols + pot_cols,
        pot_cols=pot_cols,
        default=hw,
        layers={name: replace(hw, pot_ratio=0.0) for name in act_act},
        nonlinear_lanes=lanes,
    )
    first = next(op for op in ops if isinstance(op, GemmOp))
    wl = Workload("case", 8, 1, 1, first.m, first.k, 1, first.repeat, first.n, first.n, tuple(ops))
    la = _layer_arrays(wl, cfg)
    engine = _engine(cfg, la, "DSP48E2")
    coef = load_coefficients()
    dram = coef.dram_latency_cycles(cfg.freq_mhz)
    tables = _workload_tables(wl)
    succ = _nonlinear_part(tables, lanes, "xcup", coef, kernels).successors
    return _gemm_timing(wl, engine, la, bpc, dram, True, succ), engine, dram, tables


def _case_schedule(
    gemm: GemmOp,
    successor: str | None,
    mode: str,
    transposed: bool,
    tiles: tuple[int, int, int],
    engine: EngineConfig,
    ratio: float,
    bpc: float,
    dram: int,
    unit: tuple[int, int, str],
    defer: bool = False,
    pending: int = 0,
    wait: tuple[str, int] = ("m", 0),
) -> LayerSchedule:
    """The tile-by-tile schedule of ``gemm`` as the model runs it (``transposed``: Cᵀ = Bᵀ·Aᵀ),
    handing its rows to a ``successor`` unit of ``unit`` = (lanes, row-buffer bits, kernel) in
    the model's ``mode`` (:meth:`hwmodel.model.evaluation._GemmTiming.schedule`)."""
    succ = None
    if successor is not None:
        succ = Successor(successor, mode, unit[0], unit[1], gemm.n, gemm.m, unit[2])
    ratio = 0.0 if not gemm.weight_operand else ratio
    args = (engine, ratio, (8, 8), bpc, dram, succ, defer, pending, wait)
    return _oriented_schedule(gemm, tiles, transposed, *args)


def _oriented_schedule(
    gemm: GemmOp,
    tiles: tuple[int, int, int],
    transposed: bool,
    engine: EngineConfig,
    ratio: float,
    bits: tuple[int, int],
    bpc: float,
    dram: int,
    succ: Successor | None,
    defer: bool,
    pending: int,
    wait: tuple[str, int],
) -> LayerSchedule:
    """:func:`hwmodel.arch.controller.layer_schedule` of ``gemm`` in its orientation
    (``transposed``: Cᵀ = Bᵀ·Aᵀ, m and n swapped, Tm and Tn with them)."""
    m, n, k = gemm.m, gemm.n, gemm.k
    oriented = (n, m, k, (tiles[1], tiles[0], tiles[2])) if transposed else (m, n, k, tiles)
    return layer_schedule(*oriented, gemm.repeat, engine, ratio, bits, bpc, dram, succ, defer, pending, wait)


def design_schedules(
    workload: Workload, config: AcceleratorConfig, device: Device, report: DesignReport
) -> list[LayerSchedule]:
    """Every GEMM of a design as the controller walks it, from the model's per-layer table
    (``report``: :func:`hwmodel.model.evaluation.evaluate` with ``detail``): the layer's tiles,
    bits, PoT ratio and orientation, and how the model schedules it — ``nl_mode`` (its
    successor, the next op, gets that hand-over), ``deferred``, and on a consumer ``wait`` /
    ``wait_index`` with the producer's last job as ``pending``. The schedules' cycles, summed,
    are the model's GEMM latency with the overlapped non-linear ops' exposed cycles."""
    engine = design_engine(workload, config, device)
    bpc = device.bytes_per_cycle(config.freq_mhz)
    dram = load_coefficients().dram_latency_cycles(config.freq_mhz)
    row_bits = nonlinear_row_bits(workload)
    ops, layers = workload.ops, report.layers
    out: list[LayerSchedule] = []
    pending = 0
    for i, (op, layer) in enumerate(zip(ops, layers, strict=True)):
        if not isinstance(op, GemmOp):
            continue
        succ = None
        if layer.nl_mode != NL_MODES[0]:
            nl = ops[i + 1]
            assert isinstance(nl, NonlinearOp)
            succ = successor_unit(nl, op, layer.nl_mode, config.lanes_key, config.kernels_key, row_bits)
        wait = (layer.wait, layer.wait_index) if layer.wait in WAITS else ("m", 0)
        tiles, bits = (layer.tm, layer.tn, layer.tk), (layer.weight_bits, layer.act_bits)
        args = (engine, layer.pot_ratio, bits, bpc, dram, succ, layer.deferred, pending, wait)
        sched = _oriented_schedule(op, tiles, layer.transposed, *args)
        pending = sched.jobs[-1] if layer.deferred and sched.jobs else 0
        out.append(sched)
    return out


def controller_case(
    dims: tuple[int, int, int],
    tiles: tuple[int, int, int],
    repeat: int,
    shape: tuple[int, int, int],
    ratio: float,
    bpc: float,
    successor: str | None = None,
    lanes: int = 2,
    seed: int = 0,
    kernel: str = "poly",
) -> ControllerCase:
    """A GEMM (``dims`` = m, n, k; ``repeat`` heads) on an engine of ``shape`` = (rows, fixed
    cols, PoT cols), followed by a ``successor`` non-linear op on ``lanes`` lanes (over its
    output rows; softmax after an attention matmul, which the model may run transposed; its
    ``kernel`` variant): the model's per-layer latency and exposed cycles
    (:func:`hwmodel.model.evaluation._gemm_timing`), the schedule of
    :func:`hwmodel.arch.controller.layer_schedule` and the PyRTL controller driven by its
    compute, transfer and job times (behavioural engine, DMA and unit)."""
    m, n, k = dims
    _rows, cols, pot_cols = shape
    name, gemm_kind = _PRODUCERS.get(successor or "", ("blocks.0.attn.qkv", "qkv"))
    act_act = successor == "softmax"
    if act_act or (cols == 0 and pot_cols == 0):
        ratio = 0.0
    gemm = GemmOp(name, gemm_kind, m, n, k, repeat, weight_operand=not act_act)
    ops: list[GemmOp | NonlinearOp] = [gemm]
    if successor is not None:
        ops.append(NonlinearOp("blocks.0.successor", successor, m * repeat, n))
    kernels = ((successor, kernel),) if successor is not None else ()
    timing, engine, dram, tables = _case_timing(ops, tiles, shape, ratio, bpc, lanes, kernels)
    transposed = bool(timing.transposed[0])
    unit = (lanes, tables.row_bits.get(successor or "", 0), kernel)
    mode = timing.schedule(0)[0]
    sched = _case_schedule(gemm, successor, mode, transposed, tiles, engine, ratio, bpc, dram, unit)
    spec = ControllerSpec(bits_for(max(sched.counts)), CHECK_BUFFERS)
    run = simulate_controller(
        spec,
        sched.counts,
        sched.first_load,
        sched.compute,
        sched.transfer,
        seed=seed,
        nl_mode=sched.nl_mode,
        jobs=sched.jobs,
    )
    return ControllerCase(int(timing.latency[0]), int(timing.exposed[0]), transposed, sched, run)


#: The chains of the controller's chain cases, by the non-linear op between the two GEMMs: the
#: producer, the consumer that reads the op's results, and the consumer's own successor.
CHAINS: dict[str, tuple[tuple[str, str], tuple[str, str], str | None]] = {
    "layernorm": (("blocks.0.attn.proj", "proj"), ("blocks.0.mlp.fc1", "fc1"), "gelu"),
    "gelu": (("blocks.0.mlp.fc1", "fc1"), ("blocks.0.mlp.fc2", "fc2"), "layernorm"),
    "softmax": (("blocks.0.attn.qk", "qk"), ("blocks.0.attn.sv", "sv"), None),
}


@dataclass(frozen=True)
class ChainCase:
    """Two GEMMs with a non-linear op between them through the simulated controller, back to
    back: the model's latencies and exposed cycles (both layers summed), whether the producer
    left its last job pending, the schedules and the runs."""

    latency: int
    exposed: int
    deferred: bool
    schedules: tuple[LayerSchedule, LayerSchedule]
    runs: list[ControllerRun]

    @property
    def cycle_mismatch(self) -> bool:
        sim = [r.cycles for r in self.runs]
        sched = [s.cycles for s in self.schedules]
        exposed = sum(s.exposed_cycles for s in self.schedules)
        return sim != sched or sum(sched) != self.latency or exposed != self.exposed


def chain_case(
    kind: str,
    dims: tuple[int, int, int, int],
    tiles: tuple[int, int, int],
    repeat: int,
    shape: tuple[int, int, int],
    ratio: float,
    bpc: float,
    lanes: int = 2,
    own: bool = True,
    seed: int = 0,
    kernel: str = "poly",
) -> ChainCase:
    """A producer GEMM (``dims`` = m, n, k, and the consumer's n), the ``kind`` op over its
    output rows (:data:`CHAINS`), the consumer GEMM of those rows (K = n; ``repeat`` heads for
    softmax) and, with ``own``, the consumer's own successor: the model's latencies, the
    schedules (the producer's last job left pending where the model leaves it) and the two
    layers through one simulated controller, the second started in the cycle after the first's
    ``done``."""
    m, n, k, n2 = dims
    (p_name, p_kind), (c_name, c_kind), own_kind = CHAINS[kind]
    act_act = kind == "softmax"
    heads = repeat if act_act else 1
    producer = GemmOp(p_name, p_kind, m, n, k, heads, weight_operand=not act_act)
    consumer = GemmOp(c_name, c_kind, m, n2, n, heads, weight_operand=not act_act)
    ops: list[GemmOp | NonlinearOp] = [producer, NonlinearOp("blocks.0.op", kind, m * heads, n), consumer]
    own_kind = own_kind if own else None
    if own_kind is not None:
        ops.append(NonlinearOp("blocks.0.own", own_kind, m * heads, n2))
    kernels = tuple((kd, kernel) for kd in (kind, own_kind) if kd is not None)
    timing, engine, dram, tables = _case_timing(ops, tiles, shape, ratio, bpc, lanes, kernels)
    unit = (lanes, tables.row_bits[kind], kernel)
    args = (tiles, engine, ratio, bpc, dram)
    mode, deferred, _ = timing.schedule(0)
    first = _case_schedule(producer, kind, mode, bool(timing.transposed[0]), *args, unit, deferred)
    own_mode, _, wait = timing.schedule(1)
    own_unit = (lanes, tables.row_bits.get(own_kind or "", 0), kernel)
    pending = first.jobs[-1] if deferred else 0
    transposed = bool(timing.transposed[1])
    second = _case_schedule(
        consumer, own_kind, own_mode, transposed, *args, own_unit, False, pending, wait or ("m", 0)
    )
    spec = ControllerSpec(bits_for(max(*first.counts, *second.counts)), CHECK_BUFFERS)
    runs = simulate_chain(spec, [first, second], seed=seed)
    latency, exposed = int(timing.latency.sum()), int(timing.exposed.sum())
    return ChainCase(latency, exposed, deferred, (first, second), runs)


#: Non-linear successors of the controller cases (None: a GEMM alone).
SUCCESSORS: tuple[str | None, ...] = (None, "gelu", "softmax", "layernorm")


def _random_case(rng: np.random.Generator, act_act: bool) -> dict[str, Any]:
    """The random part of a controller case: dims (m, n, k and a consumer's n), tiles, heads,
    engine shape (an attention matmul needs fixed-point columns), PoT ratio, bytes per cycle,
    lanes and the simulation's seed."""
    m, n, k, n2 = (int(v) for v in rng.integers(1, 33, 4))
    tm, tn, tk = (int(v) for v in rng.integers(3, 17, 3))
    repeat = int(rng.integers(1, 3))
    rows, cols, pot_cols = (int(v) for v in rng.choice([(2, 2, 0), (3, 2, 1), (2, 0, 3), (4, 1, 2)]))
    ratio = 0.0 if pot_cols == 0 else 1.0 if cols == 0 else float(rng.choice(RATIOS))
    bpc = float(rng.choice([1.5, 4.0, 16.0]))
    if act_act and cols == 0:
        cols, pot_cols = 2, pot_cols - 1
    return {
        "dims": (m, n, k, n2),
        "tiles": (tm, tn, tk),
        "repeat": repeat,
        "shape": (rows, cols, pot_cols),
        "ratio": ratio,
        "bpc": bpc,
        "lanes": int(rng.integers(1, 5)),
        "seed": int(rng.integers(1 << 16)),
    }


def controller_sim_check(cases: int, rng: np.random.Generator, chains: int = 0) -> dict[str, int]:
    """Random small GEMMs, each alone or followed by a non-linear op overlapped with it, through
    the simulated controller (:func:`controller_case`): cycles vs the model's per-layer latency,
    tile and job order and addresses vs the references; then ``chains`` random pairs of GEMMs
    with a non-linear op between them, back to back (:func:`chain_case`: the producer's last job
    left beside the consumer where the model leaves it), cycles and addresses."""
    cycle_bad = order_bad = addr_bad = checks = overlapped = 0
    for i in range(cases):
        successor = SUCCESSORS[i % len(SUCCESSORS)]
        r = _random_case(rng, successor == "softmax")
        case = controller_case(
            r["dims"][:3],
            r["tiles"],
            1 if successor == "gelu" else r["repeat"],
            r["shape"],
            r["ratio"],
            r["bpc"],
            successor,
            r["lanes"],
            seed=r["seed"],
            kernel=VARIANTS[(i // len(SUCCESSORS)) % len(VARIANTS)],  # poly and shift units in turn
        )
        cycle_bad += int(case.cycle_mismatch)
        order_bad += int(case.order_mismatch)
        addr_bad += case.run.address_mismatches
        checks += case.run.address_checks
        overlapped += int(successor is not None)
    deferred = 0
    kinds = tuple(CHAINS)
    for i in range(chains):
        kind = kinds[i % len(kinds)]
        r = _random_case(rng, kind == "softmax")
        r["repeat"] += 1  # softmax chains of 2 or 3 heads (the consumer waits for its last head)
        chain = chain_case(
            kind,
            **r,
            own=bool((i // len(kinds)) % 2),
            kernel=VARIANTS[(i // (2 * len(kinds))) % len(VARIANTS)],
        )
        cycle_bad += int(chain.cycle_mismatch)
        addr_bad += sum(run.address_mismatches for run in chain.runs)
        checks += sum(run.address_checks for run in chain.runs)
        deferred += int(chain.deferred)
    return {
        "cases": cases,
        "overlapped_cases": overlapped,
        "chain_cases": chains,
        "deferred_chains": deferred,
        "cycle_mismatches": cycle_bad,
        "order_mismatches": order_bad,
        "address_mismatches": addr_bad,
        "address_checks": checks,
    }


#: Row-buffer address bits of the simulated units (rows of 1 … 16 elements).
CHECK_LOG2_ROWS = 4


def nonlinear_sim_check(
    rows_per_unit: int, rng: np.random.Generator, variant: str = "poly"
) -> dict[str, int]:
    """Random rows (random lengths, full-range and typical codes) plus edge rows (all equal,
    extreme codes, one large and many very negative values) through 2-lane units of each kind
    built with kernel ``variant``: outputs vs that variant's kernels
    (:data:`hwmodel.arch.intops.KERNELS`), cycles vs :func:`hwmodel.arch.nonlinear.stream_cycles`."""
    from hwmodel.rtl.nonlinear import simulate_unit

    vectors = cycle_bad = out_bad = 0
    top = 1 << CHECK_LOG2_ROWS
    for kind, variants in KERNELS.items():
        op = variants[variant]
        spec = unit_spec(kind, 16)
        rows = [
            rng.integers(-(1 << 15), 1 << 15, int(rng.integers(1, top + 1))) // (1 << int(rng.integers(0, 8)))
            for _ in range(rows_per_unit)
        ]
        rows += [
            np.full(top, 5),
            np.full(top, -(1 << 15)),
            np.array([(1 << 15) - 1] + [-(1 << 15)] * (top - 1)),
        ]
        run = simulate_unit(kind, spec, rows, 2, CHECK_LOG2_ROWS, variant)
        vectors += len(rows)
        out_bad += sum(not np.array_equal(o, op(r, spec)) for o, r in zip(run.outputs, rows, strict=True))
        expected = stream_cycles(kind, spec, [len(r) for r in rows], 2, CHECK_LOG2_ROWS, variant)
        cycle_bad += int(run.cycles != expected)
    return {"vectors": vectors, "cycle_mismatches": cycle_bad, "output_mismatches": out_bad}


@dataclass(frozen=True)
class EfficiencyRow:
    """Fabric and DSP cost per MAC/cycle of one synthesised engine, from Yosys and the model."""

    synth_family: str
    name: str
    variant: str
    macs_per_cycle: int
    lut_per_mac_yosys: float
    lut_per_mac_model: float
    ff_per_mac_yosys: float
    ff_per_mac_model: float
    dsp_per_mac: float


def variant(engine: EngineConfig) -> str:
    """A short label: which sub-arrays, which packing, which slice."""
    parts = []
    if engine.cols_fixed:
        lanes = "/".join(str(m.lanes) for m in engine.modes)
        parts.append(f"W{engine.weight_bits}A{engine.act_bits} x{lanes} {engine.dsp}")
    if engine.cols_pot:
        parts.append(f"PoT{engine.pot_weight_bits}A{engine.act_bits}")
    return " + ".join(parts)


def efficiency_rows() -> list[EfficiencyRow]:
    out = []
    for row in read_table():
        e = row.engine
        macs = e.macs_per_cycle
        model = resource_point(row)
        out.append(
            EfficiencyRow(
                synth_family=row.synth_family,
                name=row.name,
                variant=variant(e),
                macs_per_cycle=macs,
                lut_per_mac_yosys=round(row.lut / macs, 2),
                lut_per_mac_model=round(model.lut_model / macs, 2),
                ff_per_mac_yosys=round(row.ff / macs, 2),
                ff_per_mac_model=round(model.ff_model / macs, 2),
                dsp_per_mac=round(row.dsp / macs, 4),
            )
        )
    return out


@dataclass(frozen=True)
class MemoryPoint:
    """Model vs Yosys for one buffer bank (LUT counts include the LUTs inside LUT RAM)."""

    synth_family: str
    depth_words: int
    width_bits: int
    bram_model: float
    bram_yosys: float
    lutram_model: int
    lutram_yosys: int
    lut_model: int
    lut_yosys: int
    ff_model: int
    ff_yosys: int

    @property
    def mapped_alike(self) -> bool:
        return self.bram_model == self.bram_yosys and self.lutram_model == self.lutram_yosys


def memory_points() -> list[MemoryPoint]:
    out = []
    for row in read_memory_table():
        mem = bank_memory(row.depth_words, row.width_bits, row.synth_family)
        per_primitive = LUTRAM_LIBRARIES[row.synth_family].luts_per_primitive
        out.append(
            MemoryPoint(
                synth_family=row.synth_family,
                depth_words=row.depth_words,
                width_bits=row.width_bits,
                bram_model=mem.bram36,
                bram_yosys=row.bram36,
                lutram_model=mem.lutram_primitives,
                lutram_yosys=row.lutram_primitives,
                lut_model=mem.lut,
                lut_yosys=row.lut + per_primitive * row.lutram_primitives,
                ff_model=mem.ff,
                ff_yosys=row.ff,
            )
        )
    return out


def scalesim_check(python: str, rng: np.random.Generator, cases: int = 12) -> tuple[int, int]:
    """Untiled GEMMs on an unpacked R×C engine (SCALE-Sim's ``ws``): our analytic cycles must be
    :func:`hwmodel.rtl.scalesim_oracle.ws_relation` of SCALE-Sim's."""
    from hwmodel.rtl.scalesim_oracle import scalesim_gemm_cycles, ws_relation

    drawn = [
        {
            "m": int(rng.integers(1, 70)),
            "n": int(rng.integers(1, 70)),
            "k": int(rng.integers(1, 70)),
            "rows": int(rng.integers(2, 9)),
            "cols": int(rng.integers(2, 9)),
        }
        for _ in range(cases)
    ]
    got = scalesim_gemm_cycles(python, drawn)
    bad = 0
    for c, g in zip(drawn, got, strict=True):
        eng = EngineConfig(c["rows"], c["cols"], 0, 8, 2, 8, 32, packing=1)
        ana = gemm_compute_cycles(c["m"], c["n"], c["k"], eng, 0.0, c["m"], c["n"], c["k"])
        bad += int(ws_relation(g, c["m"], c["n"], c["k"], c["rows"], c["cols"]) != ana)
    return len(drawn), bad


def nonlinear_summary(
    prefix: str, sim: dict[str, int], fitted: list[ResourcePoint], held: list[ResourcePoint]
) -> dict[str, float]:
    """The summary figures of one kernel variant's units, keys ``<prefix>_…`` (``nonlinear`` for
    poly, ``nonlinear_shift`` for shift: :func:`hwmodel.cost.coefficients.nonlinear_section`):
    the simulation check (:func:`nonlinear_sim_check`) and the worst resource errors of the
    fitted and the held-out points."""
    return {
        f"{prefix}_vectors": sim["vectors"],
        f"{prefix}_cycle_mismatches": sim["cycle_mismatches"],
        f"{prefix}_output_mismatches": sim["output_mismatches"],
        f"{prefix}_points": len(fitted),
        f"{prefix}_dsp_max_abs_err": max((abs(p.dsp_model - p.dsp_yosys) for p in fitted), default=0),
        f"{prefix}_ff_max_rel_err": round(max((p.ff_rel_err for p in fitted), default=0.0), 5),
        f"{prefix}_lut_max_rel_err": round(max((p.lut_rel_err for p in fitted), default=0.0), 5),
        f"{prefix}_bram_max_abs_err": max((abs(p.bram_model - p.bram_yosys) for p in fitted), default=0.0),
        # held out of the fit: how the fitted model extrapolates
        f"{prefix}_holdout_points": len(held),
        f"{prefix}_holdout_dsp_max_abs_err": max((abs(p.dsp_model - p.dsp_yosys) for p in held), default=0),
        f"{prefix}_holdout_ff_max_rel_err": round(max((p.ff_rel_err for p in held), default=0.0), 5),
        f"{prefix}_holdout_lut_max_rel_err": round(max((p.lut_rel_err for p in held), default=0.0), 5),
    }


def nonlinear_families(
    points: list[ResourcePoint], rows: list[NonlinearRow]
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """The worst non-linear unit errors per kernel variant, Yosys family and ``fitted`` /
    ``holdout`` (:func:`per_family` of each)."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for variant_name in VARIANTS:
        parts = {
            part: per_family(
                [
                    p
                    for p, r in zip(points, rows, strict=True)
                    if r.variant == variant_name and is_holdout(r) == held
                ]
            )
            for part, held in (("fitted", False), ("holdout", True))
        }
        for part, families in parts.items():
            for fam, errs in families.items():
                out.setdefault(variant_name, {}).setdefault(fam, {})[part] = errs
    return out


def validate(
    cases: int, seed: int, nonlinear_rows: int = 100, controller_cases: int = 40, chain_cases: int = 30
) -> tuple[
    list[CycleCase],
    list[ResourcePoint],
    list[MemoryPoint],
    list[ResourcePoint],
    list[ResourcePoint],
    dict[str, float],
]:
    """The checks of the module docstring: cycle cases, engine, buffer-bank and non-linear unit
    resource points, and the summary."""
    rng = np.random.default_rng(seed)
    cyc = [run_cycle_case(rng) for _ in range(cases)]
    nl_sim = {"poly": nonlinear_sim_check(nonlinear_rows, rng)}
    ctrl_sim = controller_sim_check(controller_cases, rng)
    for other in VARIANTS[1:]:  # drawn after the poly units' and the controller's cases
        nl_sim[other] = nonlinear_sim_check(nonlinear_rows, rng, other)
    chains = controller_sim_check(0, rng, chain_cases)  # drawn last: the earlier draws stay as they were
    for key in ("cycle_mismatches", "address_mismatches", "address_checks", "chain_cases", "deferred_chains"):
        ctrl_sim[key] += chains[key]
    ctrl_rows = read_controller_table()
    ctrl = [controller_point(r) for r in ctrl_rows if not r.holdout]
    ctrl_held = [controller_point(r) for r in ctrl_rows if r.holdout]
    nl_rows = read_nonlinear_table()
    all_nl = [nonlinear_point(row) for row in nl_rows]
    res = resource_points()
    mems = memory_points()
    bram_errs = [abs(p.bram_model - p.bram_yosys) for p in res] + [
        abs(p.bram_model - p.bram_yosys) for p in mems
    ]
    summary: dict[str, float] = {
        "cycle_cases": len(cyc),
        "cycle_mismatches": sum(c.analytic_cycles != c.simulated_cycles for c in cyc),
        "output_mismatches": sum(not c.outputs_exact for c in cyc),
        "resource_points": len(res),
        "dsp_max_abs_err": max((abs(p.dsp_model - p.dsp_yosys) for p in res), default=0),
        "ff_max_rel_err": round(max((p.ff_rel_err for p in res), default=0.0), 5),
        "bram_max_abs_err": max(bram_errs, default=0.0),
        "lut_max_rel_err": round(max((p.lut_rel_err for p in res), default=0.0), 5),
        "memory_points": len(mems),
        "memory_mapping_mismatches": sum(not p.mapped_alike for p in mems),
        "lutram_banks": sum(p.lutram_yosys > 0 for p in mems),
        "memory_lut_max_abs_err": max((abs(p.lut_model - p.lut_yosys) for p in mems), default=0),
        "memory_ff_max_abs_err": max((abs(p.ff_model - p.ff_yosys) for p in mems), default=0),
    }
    for variant_name in VARIANTS:
        of_variant = [(p, row) for p, row in zip(all_nl, nl_rows, strict=True) if row.variant == variant_name]
        nl = [p for p, row in of_variant if not is_holdout(row)]
        held = [p for p, row in of_variant if is_holdout(row)]
        summary.update(nonlinear_summary(nonlinear_section(variant_name), nl_sim[variant_name], nl, held))
    summary.update(
        {
            "controller_cases": ctrl_sim["cases"],
            "controller_overlapped_cases": ctrl_sim["overlapped_cases"],
            "controller_chain_cases": ctrl_sim["chain_cases"],
            "controller_deferred_chains": ctrl_sim["deferred_chains"],
            "controller_cycle_mismatches": ctrl_sim["cycle_mismatches"],
            "controller_order_mismatches": ctrl_sim["order_mismatches"],
            "controller_address_mismatches": ctrl_sim["address_mismatches"],
            "controller_address_checks": ctrl_sim["address_checks"],
            "controller_points": len(ctrl),
            "controller_dsp_max_abs_err": max((abs(p.dsp_model - p.dsp_yosys) for p in ctrl), default=0),
            "controller_ff_max_rel_err": round(max((p.ff_rel_err for p in ctrl), default=0.0), 5),
            "controller_lut_max_rel_err": round(max((p.lut_rel_err for p in ctrl), default=0.0), 5),
            "controller_bram_max_abs_err": max((abs(p.bram_model - p.bram_yosys) for p in ctrl), default=0.0),
            "controller_holdout_points": len(ctrl_held),
            "controller_holdout_ff_max_rel_err": round(
                max((p.ff_rel_err for p in ctrl_held), default=0.0), 5
            ),
            "controller_holdout_lut_max_rel_err": round(
                max((p.lut_rel_err for p in ctrl_held), default=0.0), 5
            ),
        }
    )
    return cyc, res, mems, all_nl, ctrl + ctrl_held, summary


def per_family(res: list[ResourcePoint]) -> dict[str, dict[str, float]]:
    """The worst resource errors of each Yosys family."""
    out: dict[str, dict[str, float]] = {}
    for fam in sorted({p.synth_family for p in res}):
        pts = [p for p in res if p.synth_family == fam]
        out[fam] = {
            "points": len(pts),
            "dsp_max_abs_err": max(abs(p.dsp_model - p.dsp_yosys) for p in pts),
            "ff_max_rel_err": round(max(p.ff_rel_err for p in pts), 5),
            "lut_max_rel_err": round(max(p.lut_rel_err for p in pts), 5),
        }
    return out


def case_coverage(cyc: list[CycleCase]) -> dict[str, int]:
    """How many cycle cases exercised each kind of engine: slice, packing mode, PoT, mixed."""
    cover: dict[str, int] = {}
    for c in cyc:
        keys = [c.engine.dsp]
        if c.lanes:
            keys.append(f"{c.lanes}-lane")
        if c.pot_ratio > 0:
            keys.append("pot" if c.pot_ratio == 1.0 else "mixed")
        if c.engine.chains > 1:
            keys.append("multi-chain")
        for key in keys:
            cover[key] = cover.get(key, 0) + 1
    return dict(sorted(cover.items()))


def format_efficiency(rows: list[EfficiencyRow]) -> str:
    head = (
        f"{'family':6s} {'engine':40s} {'variant':34s} {'MAC/c':>6s} {'LUT/MAC y/m':>13s} "
        f"{'FF/MAC y/m':>13s} {'DSP/MAC':>8s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.synth_family:6s} {r.name:40s} {r.variant:34s} {r.macs_per_cycle:6d} "
            f"{r.lut_per_mac_yosys:6.1f}/{r.lut_per_mac_model:<6.1f} "
            f"{r.ff_per_mac_yosys:6.1f}/{r.ff_per_mac_model:<6.1f} {r.dsp_per_mac:8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m hwmodel.validate", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--cases", type=int, default=60, help="random cycle cases (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--verbose", action="store_true", help="also list every cycle case")
    ap.add_argument(
        "--nonlinear-rows", type=int, default=100, help="random rows per non-linear unit (default 100)"
    )
    ap.add_argument(
        "--controller-cases",
        type=int,
        default=40,
        help="random GEMMs through the tile controller, 3 in 4 with a non-linear successor (default 40)",
    )
    ap.add_argument(
        "--chain-cases",
        type=int,
        default=30,
        help="random pairs of GEMMs with a non-linear op between them through the controller, "
        "back to back (default 30)",
    )
    ap.add_argument(
        "--efficiency",
        action="store_true",
        help="LUT, FF and DSP per MAC/cycle of every synthesised engine, Yosys vs model",
    )
    ap.add_argument(
        "--scalesim",
        metavar="PYTHON",
        help="interpreter of a venv with scalesim (numpy < 2.4): also check SCALE-Sim v3 cycles",
    )
    args = ap.parse_args(argv)
    if args.cases < 1 or min(args.nonlinear_rows, args.controller_cases, args.chain_cases) < 0:
        print(
            "error: --cases must be ≥ 1, --nonlinear-rows, --controller-cases and --chain-cases ≥ 0",
            file=sys.stderr,
        )
        return 2
    tables = (
        (TABLE_PATH, ""),
        (MEMORY_TABLE_PATH, " --memories"),
        (NONLINEAR_TABLE_PATH, " --nonlinear"),
        (CONTROLLER_TABLE_PATH, " --controller"),
    )
    for table, flag in tables:
        if not table.exists():
            print(
                f"error: no synthesis table at {table}; run python -m hwmodel.calibrate{flag}",
                file=sys.stderr,
            )
            return 2
    t0 = time.perf_counter()
    cyc, res, mems, nl, ctrl, summary = validate(
        args.cases, args.seed, args.nonlinear_rows, args.controller_cases, args.chain_cases
    )
    if args.scalesim:
        if not Path(args.scalesim).exists():
            print(f"error: no interpreter at {args.scalesim}", file=sys.stderr)
            return 2
        n_ss, bad_ss = scalesim_check(args.scalesim, np.random.default_rng(args.seed))
        summary["scalesim_cases"] = n_ss
        summary["scalesim_mismatches"] = bad_ss
    summary["wall_seconds"] = round(time.perf_counter() - t0, 2)
    families = per_family(res)
    nl_families = nonlinear_families(nl, read_nonlinear_table())
    coverage = case_coverage(cyc)
    eff = efficiency_rows() if args.efficiency else []
    if args.json:
        out: dict[str, Any] = dict(summary)
        out["families"] = families
        out["case_coverage"] = coverage
        out["nonlinear"] = [asdict(p) for p in nl]
        out["nonlinear_families"] = nl_families
        out["controller"] = [asdict(p) for p in ctrl]
        if args.efficiency:
            out["efficiency"] = [asdict(r) for r in eff]
        if args.verbose:
            out["cases"] = [asdict(c) for c in cyc]
        print(json.dumps(out, indent=2))
    elif args.efficiency:
        print(format_efficiency(eff))
    else:
        print(f"cycle cross-check: {len(cyc)} cases, {summary['cycle_mismatches']} cycle "
              f"mismatches, {summary['output_mismatches']} output mismatches")  # fmt: skip
        print("  cases per kind: " + ", ".join(f"{k} {v}" for k, v in coverage.items()))
        if args.verbose:
            for c in cyc:
                e, t = c.engine, c.tiling
                print(f"  M{c.m} N{c.n} K{c.k} {e.name} W{c.layer_bits[0]}A{c.layer_bits[1]} "
                      f"ratio {c.pot_ratio} T({t.tm},{t.tn},{t.tk}): analytic {c.analytic_cycles}"
                      f" simulated {c.simulated_cycles} exact {c.outputs_exact}")  # fmt: skip
        print(f"\nresources vs Yosys ({load_coefficients().yosys_version}), {len(res)} points:")
        print(f"{'family':6s} {'config':40s} {'DSP m/y':>9s} {'FF model':>9s} {'FF yosys':>9s} {'err':>6s} "
              f"{'LUT model':>9s} {'LUT yosys':>9s} {'err':>6s} {'BRAM':>5s}")  # fmt: skip
        for p in res:
            print(f"{p.synth_family:6s} {p.name:40s} {p.dsp_model:4d}/{p.dsp_yosys:<4d} "
                  f"{p.ff_model:9.0f} {p.ff_yosys:9d} "
                  f"{100 * p.ff_rel_err:5.1f}% {p.lut_model:9.0f} {p.lut_yosys:9d} "
                  f"{100 * p.lut_rel_err:5.1f}% {p.bram_yosys:5.1f}")  # fmt: skip
        print(f"\nbuffer banks vs Yosys: {len(mems)} points, {summary['memory_mapping_mismatches']} "
              f"mapping mismatches ({summary['lutram_banks']} in LUT RAM)")  # fmt: skip
        print(f"{'family':6s} {'depth×width':>12s} {'BRAM36 m/y':>11s} {'LUTRAM m/y':>11s} "
              f"{'LUT m/y':>10s} {'FF m/y':>9s}")  # fmt: skip
        for q in mems:
            flag = "" if q.mapped_alike else "  MISMATCH"
            print(f"{q.synth_family:6s} {q.depth_words:6d}×{q.width_bits:<5d} "
                  f"{q.bram_model:5.1f}/{q.bram_yosys:<5.1f} "
                  f"{q.lutram_model:5d}/{q.lutram_yosys:<5d} {q.lut_model:4d}/{q.lut_yosys:<5d} "
                  f"{q.ff_model:4d}/{q.ff_yosys:<4d}{flag}")  # fmt: skip
        print()
        for variant_name in VARIANTS:
            pre = nonlinear_section(variant_name)
            print(f"non-linear units ({variant_name}): {summary[f'{pre}_vectors']} rows simulated, "
                  f"{summary[f'{pre}_cycle_mismatches']} cycle mismatches, "
                  f"{summary[f'{pre}_output_mismatches']} output mismatches")  # fmt: skip
        print("non-linear units vs Yosys:")
        for p in nl:
            print(f"{p.synth_family:6s} {p.name:40s} {p.dsp_model:4d}/{p.dsp_yosys:<4d} "
                  f"{p.ff_model:9.0f} {p.ff_yosys:9d} "
                  f"{100 * p.ff_rel_err:5.1f}% {p.lut_model:9.0f} {p.lut_yosys:9d} "
                  f"{100 * p.lut_rel_err:5.1f}% {p.bram_model:4.1f}/{p.bram_yosys:<4.1f}")  # fmt: skip
        for variant_name, fams in nl_families.items():
            for fam, parts in fams.items():
                print(f"{variant_name:5s} {fam:5s} " + "; ".join(
                    f"{part} ({e['points']}): DSP {e['dsp_max_abs_err']} abs, FF "
                    f"{100 * e['ff_max_rel_err']:.2f} %, LUT {100 * e['lut_max_rel_err']:.2f} %"
                    for part, e in parts.items()
                ))  # fmt: skip
        for variant_name in VARIANTS:
            pre = nonlinear_section(variant_name)
            print(
                f"non-linear max errors ({variant_name}): DSP {summary[f'{pre}_dsp_max_abs_err']} abs, FF "
                f"{100 * summary[f'{pre}_ff_max_rel_err']:.2f} %, LUT "
                f"{100 * summary[f'{pre}_lut_max_rel_err']:.2f} %, "
                f"BRAM {summary[f'{pre}_bram_max_abs_err']} abs; held out "
                f"({summary[f'{pre}_holdout_points']} units): DSP "
                f"{summary[f'{pre}_holdout_dsp_max_abs_err']} abs, FF "
                f"{100 * summary[f'{pre}_holdout_ff_max_rel_err']:.2f} %, LUT "
                f"{100 * summary[f'{pre}_holdout_lut_max_rel_err']:.2f} %"
            )
        print(f"\ntile controller: {summary['controller_cases']} random GEMMs simulated "
              f"({summary['controller_overlapped_cases']} with a non-linear op beside them) and "
              f"{summary['controller_chain_cases']} pairs back to back "
              f"({summary['controller_deferred_chains']} with the op's last job beside the next GEMM), "
              f"{summary['controller_cycle_mismatches']} cycle mismatches vs the model, "
              f"{summary['controller_order_mismatches']} tile-order and "
              f"{summary['controller_address_mismatches']} address mismatches in "
              f"{summary['controller_address_checks']} checks; vs Yosys:")  # fmt: skip
        for p in ctrl:
            print(f"{p.synth_family:6s} {p.name:60s} {p.ff_model:5.0f}/{p.ff_yosys:<5d} "
                  f"{100 * p.ff_rel_err:5.1f}% {p.lut_model:6.0f}/{p.lut_yosys:<6d} "
                  f"{100 * p.lut_rel_err:5.1f}%")  # fmt: skip
        print(
            f"controller max errors: DSP {summary['controller_dsp_max_abs_err']} abs, FF "
            f"{100 * summary['controller_ff_max_rel_err']:.2f} %, LUT "
            f"{100 * summary['controller_lut_max_rel_err']:.2f} %, BRAM "
            f"{summary['controller_bram_max_abs_err']} abs; held out "
            f"({summary['controller_holdout_points']}): FF "
            f"{100 * summary['controller_holdout_ff_max_rel_err']:.2f} %, LUT "
            f"{100 * summary['controller_holdout_lut_max_rel_err']:.2f} %"
        )
        for fam, errs in families.items():
            print(
                f"{fam}: {errs['points']} engines, DSP {errs['dsp_max_abs_err']} abs, "
                f"FF {100 * errs['ff_max_rel_err']:.2f} %, LUT {100 * errs['lut_max_rel_err']:.2f} %"
            )
        print(
            f"\nmax errors: DSP {summary['dsp_max_abs_err']} abs, FF "
            f"{100 * summary['ff_max_rel_err']:.2f} %, LUT {100 * summary['lut_max_rel_err']:.2f} %,"
            f" BRAM {summary['bram_max_abs_err']} abs; {summary['wall_seconds']} s"
        )
        if "scalesim_cases" in summary:
            print(
                f"SCALE-Sim v3 (ws, folds serialised): {summary['scalesim_cases']} cases, "
                f"{summary['scalesim_mismatches']} mismatches"
            )
    failed = (
        summary["cycle_mismatches"]
        or summary["output_mismatches"]
        or summary["memory_mapping_mismatches"]
        or any(summary[f"{nonlinear_section(v)}_cycle_mismatches"] for v in VARIANTS)
        or any(summary[f"{nonlinear_section(v)}_output_mismatches"] for v in VARIANTS)
        or summary["controller_cycle_mismatches"]
        or summary["controller_order_mismatches"]
        or summary["controller_address_mismatches"]
        or summary.get("scalesim_mismatches", 0)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
