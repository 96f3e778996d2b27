"""The analytic accelerator model: per-layer latency with a memory roofline, resources, totals.

Per GEMM layer (tiles Tm×Tn×Tk clipped to the layer, loop order m → n → k, weights stationary):

* compute cycles of a tile follow :mod:`hwmodel.arch.cycles` (folds overlapped, fill/drain per tile,
  the layer's own packing mode on the fixed-point part; the fixed-point and power-of-two
  sub-arrays work on the same tile at once: a tile takes the max of the two); an activation ×
  activation matmul runs as C = A·B or as Cᵀ = Bᵀ·Aᵀ, whichever is faster (the controller's
  choice of the stationary operand; the DMA writes the result in either layout);
* off-chip bytes of a tile: the A tile (``tm·tk`` activations; when Tk covers K the A tile is kept
  and reused for every n-tile, so its load is spread over them), the B tile (``tk·tn`` weights or
  K/V activations; kept and loaded once when one tile covers all of K and N) and, after the last
  k-tile, the output tile (``tm·tn`` at the layer's activation width);
* double buffering overlaps the next tile's transfer with this tile's compute, so a tile costs
  max(compute, transfer) (the per-tile roofline), plus the first tile's load and the DRAM latency,
  which nothing hides; heads (``repeat``) run one after another as one stream of tiles (the next
  head's first tile loads while the last one of this head computes).

Non-linear ops run on their own units (``nonlinear_lanes`` lanes each) between GEMMs, with the
cycles of :mod:`hwmodel.arch.nonlinear` (the PyRTL units' exact counts; softmax and LayerNorm rows
one after another per lane, GELU one element per lane and cycle), each unit built for the
kernel variant the config chooses for its kind (``nonlinear_kernels``: ``poly`` or the DSP-free
``shift``). Resources: the compute engine
the design builds (:func:`design_engine`, priced by :mod:`hwmodel.cost.engine`), double-buffered banked
A/B/C buffers in BRAM36 or LUT RAM (:mod:`hwmodel.arch.buffers`, sized for the largest tile: A one
bank per row, B and C one bank per column), non-linear units, the tile controller
(:mod:`hwmodel.arch.controller`, priced from its synthesised RTL) and the vendor IP (AXI DMA and
interconnect, a cited figure from ``coefficients.json`` → ``vendor_ip``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from hwmodel.arch.buffers import Buffer
from hwmodel.arch.config import AcceleratorConfig
from hwmodel.arch.controller import NL_MODES, WAITS, ControllerSpec, controller_spec, pending_release
from hwmodel.arch.cycles import ceil_div, split_channels
from hwmodel.arch.engine import (
    MAX_ACC_BITS,
    EngineConfig,
    design_widths,
    engine_from_widths,
    required_acc_bits,
)
from hwmodel.arch.nonlinear import Successor, log2_rows_for, op_cycles, row_buffer, row_buffer_memory
from hwmodel.base.errors import UserError
from hwmodel.base.jit import jit
from hwmodel.cost.coefficients import Coefficients, load_coefficients
from hwmodel.cost.controller import ControllerResources, controller_resources
from hwmodel.cost.engine import engine_resources
from hwmodel.cost.nonlinear import UnitResources, unit_resources
from hwmodel.model.row_timing import NO_FIXED_COLUMNS, NO_POT_COLUMNS, layer_timing, mode_lanes, row_timing
from hwmodel.target.device import Device
from hwmodel.target.workload import GemmOp, NonlinearOp, Workload

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: The kernel variant of each non-linear kind as a sorted tuple of (kind, variant) (hashable: a
#: memo key; :attr:`AcceleratorConfig.kernels_key`); a kind not in it computes ``poly``.
KernelsKey = tuple[tuple[str, str], ...]
#: The lanes of each non-linear kind's unit as a sorted tuple of (kind, lanes)
#: (:attr:`AcceleratorConfig.lanes_key`), or one count for every kind.
LanesKey = tuple[tuple[str, int], ...] | int


def _lanes_of(lanes: LanesKey) -> Callable[[str], int]:
    """Kind → its unit's lanes."""
    if isinstance(lanes, int):
        return lambda _kind: lanes
    per_kind = dict(lanes)
    return per_kind.__getitem__


@dataclass(frozen=True)
class UtilisationCaps:
    """Fraction of each device resource a feasible design may use."""

    lut: float = 0.80
    ff: float = 0.90
    dsp: float = 0.90
    bram36: float = 0.90


@dataclass(frozen=True)
class Resources:
    dsp: int
    lut: int
    ff: int
    bram36: float


@dataclass(frozen=True)
class LayerResult:
    """One row of the per-layer table."""

    name: str
    kind: str
    m: int
    n: int
    k: int
    repeat: int
    weight_bits: int
    act_bits: int
    pot_ratio: float
    tm: int
    tn: int
    tk: int
    tiles: int
    compute_cycles: int
    memory_cycles: int
    latency_cycles: int
    bound: str
    offchip_bytes: int
    #: MACs per DSP slice of the layer's packing mode (0: no fixed-point channels)
    lanes: int
    #: run as Cᵀ = Bᵀ·Aᵀ (an activation × activation matmul whose other orientation is faster)
    transposed: bool
    #: how the controller hands the layer's finished results to its non-linear successor, a name
    #: of :data:`hwmodel.arch.controller.NL_MODES` (``none``: no successor overlapped; the RTL's
    #: ``nl_mode`` input is its index); ``none`` on a non-linear op's row
    nl_mode: str
    #: the successor's last job is left pending beside the next GEMM (the RTL's ``nl_defer``)
    deferred: bool
    #: on the consumer of a job the previous layer left pending: the group whose first tile's
    #: transfer waits until that job is over, a name of :data:`hwmodel.arch.controller.WAITS`
    #: (the RTL's ``wait_load``/``wait_head``) and its index d (``wait_idx``); ``none`` and 0
    #: on every other row (:attr:`hwmodel.arch.controller.LayerSchedule.wait`)
    wait: str
    wait_index: int
    pe_utilisation: float
    dsp: int
    lut: int
    bram36: float


@dataclass(frozen=True)
class DesignReport:
    """Everything the model predicts for one design on one device."""

    model_name: str
    device: str
    freq_mhz: float
    macs: int
    #: GEMMs plus the non-linear cycles on the critical path
    latency_cycles: int
    gemm_cycles: int
    #: the non-linear units' busy cycles (beside the GEMMs or in series)
    nonlinear_cycles: int
    #: the non-linear cycles on the critical path (not hidden behind a GEMM)
    nonlinear_exposed_cycles: int
    offchip_bytes: int
    resources: Resources
    utilisation: dict[str, float]
    violations: tuple[str, ...]
    layers: tuple[LayerResult, ...] = field(default=())
    #: exact partial sums need this many bits more than the engine's accumulator holds (0: none)
    acc_bits_over: int = 0
    #: the part of :attr:`resources` the non-linear units take (fabric, DSPs and row buffers)
    nonlinear_resources: Resources = Resources(0, 0, 0, 0.0)

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def latency_ms(self) -> float:
        return self.latency_cycles / (self.freq_mhz * 1e3)

    @property
    def fps(self) -> float:
        return self.freq_mhz * 1e6 / self.latency_cycles

    @property
    def gops(self) -> float:
        return 2.0 * self.macs * self.fps / 1e9

    def violation(self, caps: UtilisationCaps, max_freq_mhz: float) -> float:
        """How far the design is over its limits, as one number: the largest of every resource's
        utilisation / cap − 1, clock / ``max_freq_mhz`` − 1 and the accumulator bits missing for exact
        partial sums / :data:`~hwmodel.arch.engine.MAX_ACC_BITS`. ≤ 0 exactly when :attr:`violations`
        is empty (a negative value is the headroom of the binding limit)."""
        limits = {"dsp": caps.dsp, "lut": caps.lut, "ff": caps.ff, "bram36": caps.bram36}
        over = max(self.utilisation[k] / cap for k, cap in limits.items()) - 1.0
        worst = max(over, self.freq_mhz / max_freq_mhz - 1.0)
        if self.acc_bits_over > 0:  # partial sums that do not fit: over by the missing fraction
            worst = max(worst, self.acc_bits_over / MAX_ACC_BITS)
        return worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "device": self.device,
            "freq_mhz": self.freq_mhz,
            "macs": self.macs,
            "latency_cycles": self.latency_cycles,
            "latency_ms": self.latency_ms,
            "fps": self.fps,
            "gops": self.gops,
            "gemm_cycles": self.gemm_cycles,
            "nonlinear_cycles": self.nonlinear_cycles,
            "nonlinear_exposed_cycles": self.nonlinear_exposed_cycles,
            "offchip_bytes": self.offchip_bytes,
            "resources": asdict(self.resources),
            "nonlinear_resources": asdict(self.nonlinear_resources),
            "utilisation": self.utilisation,
            "feasible": self.feasible,
            "violations": list(self.violations),
            "layers": [asdict(layer) for layer in self.layers],
        }


@dataclass(frozen=True, eq=False)  # hashed by identity: the cheap key of the memoised parts below
class _WorkloadTables:
    """What :func:`evaluate` derives from the workload alone, built once per workload object
    (:func:`_workload_tables`): a search evaluates thousands of designs of one workload, and
    hashing a :class:`Workload` (all its ops) would cost more than a whole evaluation.

    The timing runs on *oriented rows*: the n GEMMs as they are (rows ``0 … n−1``), then every
    activation × activation matmul transposed (rows ``n …``: m and n swapped, Tm and Tn with
    them). Arrays are read-only.
    """

    workload: Workload
    #: the GEMM layer names (the config's keys) in order, and as a set
    names: tuple[str, ...]
    name_set: frozenset[str]
    #: (3, n): m, n, k of each GEMM (what its tiles are clipped to)
    dims: I64
    #: the deepest reduction (K) and the most heads of any GEMM
    depth: int
    max_repeat: int
    #: positions of the activation × activation GEMMs
    act_act: I64
    #: per GEMM, its row as it is (0 … n−1) and in the other orientation (its own row where it
    #: has a weight operand)
    straight: I64
    alternative: I64
    #: per oriented row: its GEMM, and (5, rows) the flat indices of its wb, ab, Tm, Tn, Tk in
    #: the (5, n) :attr:`_LayerArrays.ints` (Tm and Tn swapped on a transposed row)
    row_layer: I64
    row_ints: I64
    #: per oriented row: (3, rows) its m, n, k, and its heads
    row_dims: I64
    row_repeat: I64
    #: per non-linear kind, the row-buffer address bits (:func:`nonlinear_row_bits`)
    row_bits: dict[str, int]
    #: per GEMM, the non-linear op (its position in :attr:`Workload.nonlinears`) it hands its
    #: rows to as they are finished (:func:`_successor_ops`), −1 where none
    gemm_succ: I64
    #: the non-linear ops no GEMM hands its rows to (they run in series)
    series: tuple[int, ...]
    #: the chains (:func:`_chains`): per chain its producer GEMM (whose successor's last job
    #: may run beside the next GEMM), that consumer GEMM, and 1 where the consumer waits by head
    chain_p: I64
    chain_c: I64
    chain_head: I64
    #: per oriented row, 1 where its GEMM waits for a pending job by head (:func:`_chains`)
    row_wait_head: I64
    #: the successor arguments of :func:`hwmodel.model.row_timing.row_timing` for no successor
    no_successors: I64


def _read_only(a: I64) -> I64:
    a.flags.writeable = False
    return a


def _build_tables(workload: Workload) -> _WorkloadTables:
    """The tables of ``workload`` (see :class:`_WorkloadTables`)."""
    g = workload.gemm_arrays
    n = g.m.shape[0]
    act_act = np.nonzero(~g.weight_operand)[0]
    row_layer = np.concatenate([np.arange(n), act_act])
    alternative = np.arange(n)
    alternative[act_act] = np.arange(n, row_layer.size)
    cols = np.tile(np.arange(5), (row_layer.size, 1))
    cols[n:, 2:4] = (3, 2)  # [wb, ab, tn, tm, tk]
    dims = np.stack([g.m, g.n, g.k], axis=1)
    gemm_succ = _successor_ops(workload)
    chain_p, chain_c, chain_head = _chains(workload, gemm_succ)
    wait_head = np.zeros(n, dtype=np.int64)
    wait_head[chain_c] = chain_head
    row_dims = dims[row_layer]
    row_dims[n:, [0, 1]] = row_dims[n:, [1, 0]]
    return _WorkloadTables(
        workload=workload,
        names=tuple(op.name for op in workload.gemms),
        name_set=workload.layer_name_set,
        dims=_read_only(np.ascontiguousarray(dims.T)),
        depth=int(g.k.max()),
        max_repeat=int(g.repeat.max()),
        act_act=_read_only(act_act),
        straight=_read_only(np.arange(n)),
        alternative=_read_only(alternative),
        row_layer=_read_only(row_layer),
        row_ints=_read_only(np.ascontiguousarray((cols * n + row_layer[:, None]).T)),
        row_dims=_read_only(np.ascontiguousarray(row_dims.T)),
        row_repeat=_read_only(g.repeat[row_layer]),
        row_bits=nonlinear_row_bits(workload),
        gemm_succ=_read_only(gemm_succ),
        series=tuple(sorted(set(range(len(workload.nonlinears))) - set(gemm_succ.tolist()))),
        chain_p=_read_only(chain_p),
        chain_c=_read_only(chain_c),
        chain_head=_read_only(chain_head),
        row_wait_head=_read_only(wait_head[row_layer]),
        no_successors=_read_only(np.zeros((5, row_layer.size), dtype=np.int64)),
    )


def _successor_ops(workload: Workload) -> I64:
    """Per GEMM, the non-linear op right after it in the workload whose rows are that GEMM's
    output rows (GELU: its ``m × n`` elements, one head; softmax / LayerNorm: ``repeat · m`` rows
    of ``n``), −1 where there is none: the controller overlaps that op with the GEMM."""
    out = np.full(len(workload.gemms), -1, dtype=np.int64)
    gi = ni = -1
    prev: GemmOp | None = None
    for op in workload.ops:
        if isinstance(op, GemmOp):
            gi += 1
            prev = op
            continue
        ni += 1
        if prev is not None:
            rows = prev.m if op.kind == "gelu" and prev.repeat == 1 else prev.m * prev.repeat
            if op.rows == rows and op.row_len == prev.n:
                out[gi] = ni
        prev = None
    return out


def _chains(workload: Workload, gemm_succ: I64) -> tuple[I64, I64, I64]:
    """The GEMMs whose non-linear successor's last job may run beside the next GEMM (the
    *consumer*, the first GEMM after that op, which reads its results): (producers, consumers,
    1 where the consumer waits by head). Softmax after an attention matmul of H ≥ 2 heads: the
    consumer (H heads) waits before its last head. LayerNorm and GELU: a one-head consumer of the
    op's rows waits before its last m tile, where that tile holds the job's rows (decided per
    design, :func:`hwmodel.model.row_timing.layer_timing`). Not where the consumer's own
    successor is of the same kind (one unit per kind)."""
    gemms, nonlinears = workload.gemms, workload.nonlinears
    producer = {int(ni): gi for gi, ni in enumerate(gemm_succ.tolist()) if ni >= 0}
    chains: list[tuple[int, int, int]] = []
    gi = ni = -1
    after: int | None = None  # the op whose consumer comes next
    for op in workload.ops:
        if not isinstance(op, GemmOp):
            ni += 1
            after = ni if ni in producer else None
            continue
        gi += 1
        if after is None:
            continue
        p, nl, c = producer[after], nonlinears[after], gemms[gi]
        own = int(gemm_succ[gi])
        after = None
        if own >= 0 and nonlinears[own].kind == nl.kind:
            continue
        if nl.kind == "softmax":
            if c.repeat == gemms[p].repeat >= 2:
                chains.append((p, gi, 1))
        elif c.repeat == 1 and c.m == nl.rows:
            chains.append((p, gi, 0))
    arr = np.array(chains, dtype=np.int64).reshape(-1, 3)
    return arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()


#: Workload id → its tables (each holds its workload, so the id is not reused while it is here).
_TABLES: dict[int, _WorkloadTables] = {}
#: Workloads whose tables are kept (oldest out first; a process prices one or a few workloads).
_TABLES_KEPT = 16


def _workload_tables(workload: Workload) -> _WorkloadTables:
    """The tables of ``workload``, memoised by identity (a workload is immutable)."""
    tables = _TABLES.get(id(workload))
    if tables is None or tables.workload is not workload:
        tables = _build_tables(workload)
        while len(_TABLES) >= _TABLES_KEPT:
            del _TABLES[next(iter(_TABLES))]
        _TABLES[id(workload)] = tables
    return tables


@dataclass(frozen=True)
class _Successors:
    """Per oriented row (:class:`_WorkloadTables`): how its GEMM hands its rows to its non-linear
    successor, as :func:`hwmodel.model.row_timing.row_timing` takes it — ``kernel_args`` (5,
    rows): the mode (by index in :data:`hwmodel.arch.controller.NL_MODES`: 0 none, 1 each output
    tile, 2 each m tile's rows, 3 each head's rows), the unit's lanes (1 where none) and its
    figures for a job (:class:`hwmodel.arch.nonlinear.Successor`): a row job of r rows takes
    ⌈r/lanes⌉ · row time cycles, an element job of E elements ⌈E/lanes⌉ + element latency, a head
    job has the GEMM's m rows. Read-only."""

    kernel_args: I64
    #: whether some row has a successor
    present: bool


@dataclass(frozen=True)
class _NonlinearPart:
    """The non-linear units of a design: their cycles and resources (they depend only on the
    workload, the lanes, the device family and the coefficient table)."""

    #: cycles of each non-linear op on its own (in :attr:`Workload.nonlinears` order; read-only)
    cycles: I64
    #: the ops no GEMM overlaps (:attr:`_WorkloadTables.series`): their cycles, all in series
    series_cycles: int
    successors: _Successors
    #: the units' fabric, DSPs and row buffers (LUT and FF rounded)
    resources: Resources
    #: LUT and FF before rounding (the design's totals add these)
    lut: float
    ff: float


def successor_unit(
    op: NonlinearOp, gemm: GemmOp, mode: str, lanes: LanesKey, kernels: KernelsKey, row_bits: dict[str, int]
) -> Successor:
    """The non-linear op ``op`` as GEMM ``gemm``'s successor handed its results in ``mode`` (a
    name of :data:`hwmodel.arch.controller.NL_MODES`), on a unit of ``lanes`` lanes computing its
    ``kernels`` variant with ``row_bits`` row-buffer address bits (:func:`nonlinear_row_bits`)."""
    variant = dict(kernels).get(op.kind, "poly")
    return Successor(op.kind, mode, _lanes_of(lanes)(op.kind), row_bits[op.kind], op.row_len, gemm.m, variant)


def _successors(tables: _WorkloadTables, lanes: LanesKey, kernels: KernelsKey) -> _Successors:
    """The oriented rows' successors on units of ``lanes`` lanes computing ``kernels`` (see
    :class:`_Successors`)."""
    workload = tables.workload
    n_rows = tables.row_layer.shape[0]
    args = np.zeros((5, n_rows), dtype=np.int64)  # mode, lanes, row time, element latency, head rows
    args[1] = 1
    n_gemms = tables.straight.shape[0]
    for row, gi in enumerate(tables.row_layer.tolist()):
        ni = int(tables.gemm_succ[gi])
        if ni < 0:
            continue
        op = workload.nonlinears[ni]
        gemm = workload.gemms[gi]
        mode_name = "tile" if op.kind == "gelu" else "row" if row < n_gemms else "head"
        succ = successor_unit(op, gemm, mode_name, lanes, kernels, tables.row_bits)
        args[:, row] = (NL_MODES.index(mode_name), succ.lanes, succ.row_time, succ.latency, gemm.m)
    return _Successors(_read_only(args), bool(args[0].any()))


@lru_cache(maxsize=1024)  # a search meets the same (workload, lanes, family, kernels) in most trials
def _nonlinear_part(
    tables: _WorkloadTables, lanes: LanesKey, synth_family: str, coef: Coefficients, kernels: KernelsKey = ()
) -> _NonlinearPart:
    """The cycles and resources of the workload's non-linear units on ``lanes`` lanes, each kind
    computing its ``kernels`` variant (memoised: the same for every design of the workload with
    these lanes and kernels on this device family)."""
    workload = tables.workload
    cycles = _nonlinear_cycles(workload, lanes, kernels)
    cycles.flags.writeable = False
    nl = nonlinear_units(workload, lanes, synth_family, coef, kernels).values()
    lanes_of = _lanes_of(lanes)
    nl_mem = [
        row_buffer_memory(kind, lanes_of(kind), bits, synth_family) for kind, bits in tables.row_bits.items()
    ]
    nl_lut = sum(u.lut for u in nl) + sum(m.lut for m in nl_mem)
    nl_ff = sum(u.ff for u in nl) + sum(m.ff for m in nl_mem)
    res = Resources(
        dsp=sum(u.dsp for u in nl),
        lut=round(nl_lut),
        ff=round(nl_ff),
        bram36=float(sum(m.bram36 for m in nl_mem)),
    )
    series = int(cycles.take(list(tables.series)).sum()) if tables.series else 0
    return _NonlinearPart(cycles, series, _successors(tables, lanes, kernels), res, nl_lut, nl_ff)


@dataclass(frozen=True)
class _LayerArrays:
    """A design's GEMM layers as arrays (in the workload's order, the config's default where it
    names no layer), and what :func:`evaluate` derives from them alone."""

    depth: int  # the deepest reduction (K) of any layer
    wb: I64
    ab: I64
    ratio: F64
    #: the tiles, clipped to the layer
    tm: I64
    tn: I64
    tk: I64
    #: (5, n): the rows wb, ab, tm, tn, tk above are views of it
    ints: I64
    #: (fixed weight bits, PoT code bits, activation bits) the engine needs
    #: (:func:`hwmodel.arch.engine.design_widths`)
    widths: tuple[int, int, int]
    #: the most heads or m, n or k tiles of any layer (what the controller's loop counters count to)
    max_tiles: int


def _layer_arrays(workload: Workload, config: AcceleratorConfig) -> _LayerArrays:
    t = _workload_tables(workload)
    get, default = config.layers.get, config.default
    hws = [get(name, default) for name in t.names]
    if not t.name_set.issuperset(config.layers):
        name = sorted(set(config.layers) - t.name_set)[0]
        raise UserError(f"config layer '{name}' is not a layer of {workload.model_name}")
    # the integers as one flat list (numpy converts it faster than a list of rows or of floats)
    ints = np.array(
        [hw.weight_bits for hw in hws]
        + [hw.act_bits for hw in hws]
        + [hw.tm for hw in hws]
        + [hw.tn for hw in hws]
        + [hw.tk for hw in hws],
        dtype=np.int64,
    ).reshape(5, -1)
    ratio = np.array([hw.pot_ratio for hw in hws], dtype=np.float64)
    if t.act_act.size and (ratio.take(t.act_act) > 0).any():
        name = t.names[int(t.act_act[ratio[t.act_act] > 0][0])]
        raise UserError(f"layer '{name}': pot_ratio must be 0 for an activation×activation matmul")
    most_tiles = _clip_tiles(ints, t.dims)
    if most_tiles < 0:
        name = t.names[-1 - most_tiles]
        raise UserError(f"layer '{name}': tm, tn and tk must be at least 1")
    return _LayerArrays(
        depth=t.depth,
        wb=ints[0],
        ab=ints[1],
        ratio=ratio,
        tm=ints[2],
        tn=ints[3],
        tk=ints[4],
        ints=ints,
        widths=design_widths(ints[0], ints[1], ratio),
        max_tiles=max(most_tiles, t.max_repeat),
    )


@jit
def _clip_tiles(ints: I64, dims: I64) -> int:
    """Clips each layer's tiles (``ints`` rows 2–4: Tm, Tn, Tk; a column per layer) to its m, n
    and k (``dims``, (3, n)) in place. Returns the most tiles along one axis of any layer, or
    −1 − i where layer i has a tile below 1 (and clips nothing)."""
    n_layers = dims.shape[1]
    for i in range(n_layers):
        for axis in range(3):
            if ints[2 + axis, i] < 1:
                return -1 - i
    most = 0
    for axis in range(3):
        for i in range(n_layers):
            tile = min(ints[2 + axis, i], dims[axis, i])
            ints[2 + axis, i] = tile
            most = max(most, ceil_div(dims[axis, i], tile))
    return most


@lru_cache(maxsize=256)  # a search meets the same engines in most trials
def _lane_table(engine: EngineConfig) -> I64:
    """The packing modes of ``engine`` as :func:`hwmodel.model.row_timing.mode_lanes` reads them:
    (2, weight bits, act bits) tokens and channels per DSP slice of the mode a layer of those
    widths runs in (:meth:`EngineConfig.mode_for`; 1 and 1 where no mode admits them), up to the
    engine's widths (read-only)."""
    table = np.ones((2, engine.weight_bits + 1, engine.act_bits + 1), dtype=np.int64)
    for wb in range(table.shape[1]):
        for ab in range(table.shape[2]):
            try:
                mode = engine.mode_for(wb, ab)
            except UserError:
                continue
            table[:, wb, ab] = mode.tokens, mode.channels
    return _read_only(table)


@dataclass(frozen=True)
class _TimingTotals:
    """:class:`_GemmTiming`'s latency, off-chip bytes, exposed and busy cycles summed over the layers."""

    latency: int
    offchip_bytes: int
    exposed: int
    busy: int


@dataclass(frozen=True)
class _GemmTiming:
    """Per layer, all heads. ``compute``, ``memory`` and ``tiles`` only with ``detail`` (what the
    per-layer table shows; a design's totals need only the latency and the bytes)."""

    #: the layer with its non-linear successor's exposed cycles
    latency: I64
    offchip_bytes: I64
    #: per layer: run as Cᵀ = Bᵀ·Aᵀ (activation × activation layers where that is faster)
    transposed: npt.NDArray[np.bool_]
    #: the cycles the successor adds to the layer, and the successor unit's busy cycles
    exposed: I64
    busy: I64
    #: the four figures above summed over the layers
    totals: _TimingTotals
    compute: I64 | None = None
    memory: I64 | None = None
    tiles: I64 | None = None
    #: per layer: its successor's last job is left pending beside the next layer (:func:`_chains`)
    deferred: npt.NDArray[np.bool_] | None = None
    #: per layer: how it hands its rows to its successor, by index in
    #: :data:`hwmodel.arch.controller.NL_MODES` (that of the orientation it runs in)
    nl_mode: I64 | None = None
    #: (2, layers): per consumer of a pending job, the group that reads it (index in
    #: :data:`hwmodel.arch.controller.WAITS`, −1 on the other layers) and its index d
    #: (:func:`hwmodel.model.row_timing.layer_timing`)
    waits: I64 | None = None

    def schedule(self, layer: int) -> tuple[str, bool, tuple[str, int] | None]:
        """How the model schedules GEMM ``layer`` (``detail`` timing): its hand-over mode (a name
        of :data:`hwmodel.arch.controller.NL_MODES`), whether its last job is left pending, and,
        on the consumer of a pending job, the group that waits for it (a name of
        :data:`hwmodel.arch.controller.WAITS` and d; None elsewhere)."""
        assert self.nl_mode is not None and self.deferred is not None and self.waits is not None
        kind, d = (int(v) for v in self.waits[:, layer])
        wait = (WAITS[kind], d) if kind >= 0 else None
        return NL_MODES[int(self.nl_mode[layer])], bool(self.deferred[layer]), wait


def _gemm_timing(
    workload: Workload,
    engine: EngineConfig,
    la: _LayerArrays,
    bytes_per_cycle: float,
    dram_latency_cycles: int,
    detail: bool = True,
    successors: _Successors | None = None,
) -> _GemmTiming:
    """Per layer timing; an activation × activation matmul (Q·Kᵀ, softmax·V) runs in whichever
    orientation is faster — C = A·B or Cᵀ = Bᵀ·Aᵀ (the stationary operand then streams, e.g. the
    197 tokens of softmax·V become output channels instead of its 64 head dimensions), the
    layer's non-linear successor (``successors``) overlapped with it and its exposed cycles
    counted in the layer."""
    t = _workload_tables(workload)
    # one vectorised pass over every layer as it is plus the act × act layers transposed
    per_row = _oriented_timing(
        t,
        la.ints.take(t.row_ints),
        la.ratio.take(t.row_layer),
        engine,
        bytes_per_cycle,
        dram_latency_cycles,
        detail,
        successors,
    )
    row, transposed, deferred, totals, waits = layer_timing(
        per_row,
        t.alternative,
        t.chain_p,
        t.chain_c,
        t.chain_head,
        t.dims[0],
        la.tm,
        successors is not None and successors.present,
        pending_release(0),  # the release is linear in the job's cycles
        t.row_repeat,
    )
    sums = _TimingTotals(*totals[:4].tolist())
    if not detail:
        return _GemmTiming(row[0], row[1], transposed, row[2], row[3], sums, deferred=deferred, waits=waits)
    modes = t.no_successors if successors is None else successors.kernel_args
    nl_mode = modes[0].take(np.where(transposed, t.alternative, t.straight))  # the row it runs as
    figures = (row[0], row[1], transposed, row[2], row[3], sums, row[7], row[8], row[9])
    return _GemmTiming(*figures, deferred, nl_mode, waits)


def _oriented_timing(
    t: _WorkloadTables,
    params: I64,
    ratio: F64,
    engine: EngineConfig,
    bytes_per_cycle: float,
    dram_latency_cycles: int,
    detail: bool,
    successors: _Successors | None = None,
) -> I64:
    """Timing of every oriented row (``params``: rows wb, ab, Tm, Tn, Tk, clipped, × oriented
    rows; ``ratio``: each one's PoT ratio), :func:`hwmodel.model.row_timing.row_timing`: the
    latency (with the successor's exposed cycles), off-chip bytes, exposed and busy cycles, last
    job, last group's start and wait transfer of each, all heads, then (``detail``) its compute
    cycles, memory cycles and tiles."""
    per_row, error = row_timing(
        t.row_dims,
        params,
        ratio,
        t.row_repeat,
        _lane_table(engine),
        engine.rows,
        engine.cols_fixed,
        engine.chain_rows,
        engine.cols_pot,
        bytes_per_cycle,
        dram_latency_cycles,
        t.no_successors if successors is None else successors.kernel_args,
        t.row_wait_head,
    )
    if error == NO_POT_COLUMNS:
        raise UserError("a layer assigns power-of-two channels but pot_cols is 0")
    if error == NO_FIXED_COLUMNS:
        raise UserError("a layer assigns fixed-point channels but the array has no fixed columns")
    return per_row if detail else per_row[:7]


def _nonlinear_cycles(workload: Workload, lanes: LanesKey, kernels: KernelsKey = ()) -> I64:
    """Cycles of each non-linear op (in :attr:`Workload.nonlinears` order) on ``lanes`` lanes
    (``kernels``: each kind's variant, :data:`KernelsKey`)."""
    log2_rows = nonlinear_row_bits(workload)
    variant = dict(kernels)
    lanes_of = _lanes_of(lanes)
    return np.array(
        [
            op_cycles(
                op.kind,
                op.rows,
                op.row_len,
                lanes_of(op.kind),
                log2_rows[op.kind],
                variant.get(op.kind, "poly"),
            )
            for op in workload.nonlinears
        ],
        dtype=np.int64,
    )


def nonlinear_row_bits(workload: Workload) -> dict[str, int]:
    """Per non-linear kind, the row-buffer address bits its units are built with (the longest
    row of that kind in the workload; GELU has no row buffer: 0)."""
    longest: dict[str, int] = {}
    for op in workload.nonlinears:
        longest[op.kind] = max(longest.get(op.kind, 1), op.row_len)
    return {k: 0 if k == "gelu" else log2_rows_for(n) for k, n in longest.items()}


def nonlinear_units(
    workload: Workload, lanes: LanesKey, synth_family: str, coef: Coefficients, kernels: KernelsKey = ()
) -> dict[str, UnitResources]:
    """Fabric and DSPs of each non-linear unit the workload needs (``lanes`` lanes, row buffers
    sized for its longest row; the buffers themselves are priced with the other buffers), each
    kind built for its ``kernels`` variant (:data:`KernelsKey`)."""
    variant = dict(kernels)
    lanes_of = _lanes_of(lanes)
    return {
        kind: unit_resources(
            kind, synth_family, coef, lanes_of(kind), log2_rows, variant=variant.get(kind, "poly")
        )
        for kind, log2_rows in nonlinear_row_bits(workload).items()
    }


#: A tile buffer as plain numbers — (name, banks, depth_words, width_bits) of a double-buffered
#: :class:`~hwmodel.arch.buffers.Buffer` — the key of :func:`_buffer_part` (hashed and compared much
#: faster than the dataclass).
_BufferShape = tuple[str, int, int, int]


def _tile_buffer_shapes(
    engine: EngineConfig, la: _LayerArrays, i: int | None, wb_fix: int, wb_pot: int
) -> tuple[_BufferShape, ...]:
    """The tile buffers of layer ``i`` (or, for ``None``, sized for the largest tile of any layer):
    A (activations, one bank per row, the engine's tokens per word), B (weights, one bank per
    column) and C (partial sums, one bank per column, one word = a column's result slots), of
    the fixed-point and of the PoT columns; a buffer no tile puts a word in is left out."""
    rows, tokens, chans = engine.rows, engine.tokens, engine.channels
    cf, cp = engine.cols_fixed, engine.cols_pot
    first, stop = (0, la.wb.shape[0]) if i is None else (i, i + 1)
    act_bits = la.widths[2] if i is None else int(la.ab[i])
    depths = _tile_words(la.ints, la.ratio, first, stop, rows, tokens, chans, cf, cp)
    acc = engine.acc_bits
    # per buffer: (name, banks, word bits), in the order of _tile_words
    shapes = (
        ("input_a", rows, tokens * act_bits),
        ("weight_b", cf, chans * wb_fix),
        ("output_c", cf, engine.slots * acc),
        ("weight_pot", cp, wb_pot),
        ("output_pot", cp, acc),
    )
    return tuple(
        (name, banks, depth, width)
        for (name, banks, width), depth in zip(shapes, depths, strict=True)
        if depth > 0
    )


@jit
def _tile_words(
    ints: I64,
    ratio: F64,
    first: int,
    stop: int,
    rows: int,
    tokens: int,
    channels: int,
    cols_fixed: int,
    cols_pot: int,
) -> tuple[int, int, int, int, int]:
    """Words per bank of each tile buffer (:func:`_tile_buffer_shapes`): the most that the tile of
    any layer ``first`` … ``stop − 1`` needs (``ints`` rows 2–4: its Tm, Tn, Tk; ``ratio``: its
    PoT ratio, which splits its Tn as :func:`hwmodel.arch.cycles.split_channels` does) on an
    engine of ``rows`` rows, fixed-point columns of ``tokens`` × ``channels`` lanes and PoT
    columns of one. A: ⌈Tm / tokens⌉ steps × k folds; fixed-point B: channel folds × k folds ×
    rows, C: steps × channel folds; PoT B the same with its channels, C: Tm × its channel folds.
    0 for the buffers of a sub-array without columns (or without channels)."""
    a = b_fix = c_fix = b_pot = c_pot = 0
    for i in range(first, stop):
        tm, tn, tk = ints[2, i], ints[3, i], ints[4, i]
        tn_fix, tn_pot = split_channels(tn, ratio[i])
        k_folds = ceil_div(tk, rows)
        m_steps = ceil_div(tm, tokens)
        a = max(a, m_steps * k_folds)
        if cols_fixed > 0:
            folds = ceil_div(tn_fix, channels * cols_fixed)
            b_fix = max(b_fix, folds * (k_folds * rows))
            c_fix = max(c_fix, m_steps * folds)
        if cols_pot > 0:
            folds = ceil_div(tn_pot, cols_pot)
            b_pot = max(b_pot, folds * (k_folds * rows))
            c_pot = max(c_pot, tm * folds)
    return a, b_fix, c_fix, b_pot, c_pot


def _tile_buffers(
    engine: EngineConfig, la: _LayerArrays, i: int | None, wb_fix: int, wb_pot: int
) -> list[Buffer]:
    """:func:`_tile_buffer_shapes` as buffers."""
    return [Buffer(*shape) for shape in _tile_buffer_shapes(engine, la, i, wb_fix, wb_pot)]


@dataclass(frozen=True)
class _BufferPart:
    """The tile controller's resources and what the tile buffers take (summed over the buffers)."""

    controller: ControllerResources
    lut: int
    ff: int
    bram36: float


@lru_cache(maxsize=4096)  # a search meets the same buffer shapes and tile counts in most trials
def _buffer_part(
    shapes: tuple[_BufferShape, ...], max_tiles: int, synth_family: str, coef: Coefficients
) -> _BufferPart:
    """The resources of the tile buffers and of the controller that addresses them (they depend
    only on the buffers' shapes and the loop counters' width)."""
    tile_bufs = [Buffer(*shape) for shape in shapes]
    ctrl = controller_resources(controller_spec([max_tiles], tile_bufs), coef.controller_for(synth_family))
    mems = [b.memory(synth_family) for b in tile_bufs]
    return _BufferPart(ctrl, sum(m.lut for m in mems), sum(m.ff for m in mems), sum(m.bram36 for m in mems))


def design_controller(workload: Workload, config: AcceleratorConfig, device: Device) -> ControllerSpec:
    """The tile controller ``config`` builds for ``workload`` on ``device``: loop counters for the
    most heads and m/n/k tiles of any layer, an address port per tile buffer."""
    la = _layer_arrays(workload, config)
    engine = _engine(config, la, device.dsp_type)
    tile_bufs = _tile_buffers(engine, la, None, engine.weight_bits, engine.pot_weight_bits)
    return controller_spec([la.max_tiles], tile_bufs)


def _buffers(workload: Workload, engine: EngineConfig, la: _LayerArrays, lanes: LanesKey) -> list[Buffer]:
    bufs = _tile_buffers(engine, la, None, engine.weight_bits, engine.pot_weight_bits)
    for kind, log2_rows in nonlinear_row_bits(workload).items():
        buf = row_buffer(kind, _lanes_of(lanes)(kind), log2_rows)  # one per lane (hwmodel.rtl.nonlinear)
        if buf is not None:
            bufs.append(buf)
    return bufs


def _layer_bram(engine: EngineConfig, la: _LayerArrays, i: int, synth_family: str) -> float:
    """BRAM36 the layer's own tile needs (its A, B and C buffers)."""
    wb = int(la.wb[i])
    bufs = _tile_buffers(engine, la, i, wb, wb)
    return sum(buf.memory(synth_family).bram36 for buf in bufs)


def _engine(config: AcceleratorConfig, la: _LayerArrays, dsp: str) -> EngineConfig:
    """The engine of the design from its layer arrays (what :func:`design_engine` returns)."""
    return engine_from_widths(config, *la.widths, dsp, la.depth)


def design_engine(workload: Workload, config: AcceleratorConfig, device: Device) -> EngineConfig:
    """The engine ``config`` builds for ``workload`` on ``device``."""
    return _engine(config, _layer_arrays(workload, config), device.dsp_type)


def buffers(workload: Workload, config: AcceleratorConfig, device: Device) -> list[Buffer]:
    """The on-chip buffers of a design (sized for its largest tile)."""
    la = _layer_arrays(workload, config)
    return _buffers(workload, _engine(config, la, device.dsp_type), la, config.lanes_key)


_DEFAULT_CAPS = UtilisationCaps()
#: :func:`hwmodel.arch.engine.required_acc_bits`, memoised (a search meets the same widths in most trials)
_required_acc_bits = lru_cache(maxsize=1024)(required_acc_bits)


def evaluate(
    workload: Workload,
    config: AcceleratorConfig,
    device: Device,
    caps: UtilisationCaps | None = None,
    coef: Coefficients | None = None,
    detail: bool = False,
) -> DesignReport:
    """Predict latency, throughput and resources of ``config`` running ``workload`` on ``device``.

    ``detail`` adds the per-layer table (slower: the search and the benchmark leave it off).
    """
    caps = caps or _DEFAULT_CAPS
    coef = coef or load_coefficients()
    la = _layer_arrays(workload, config)
    widths = la.widths
    engine = engine_from_widths(config, *widths, device.dsp_type, la.depth)
    bpc = device.bytes_per_cycle(config.freq_mhz)
    family = device.synth_family
    nl_part = _nonlinear_part(_workload_tables(workload), config.lanes_key, family, coef, config.kernels_key)
    dram = coef.dram_latency_cycles(config.freq_mhz)
    timing = _gemm_timing(workload, engine, la, bpc, dram, detail, nl_part.successors)
    sums = timing.totals
    exposed = sums.exposed
    total = sums.latency + nl_part.series_cycles
    gemm_cycles = total - exposed - nl_part.series_cycles

    eng = engine_resources(engine, family, coef)
    tile_bufs = _tile_buffer_shapes(engine, la, None, engine.weight_bits, engine.pot_weight_bits)
    bufs = _buffer_part(tile_bufs, la.max_tiles, family, coef)
    ctrl = bufs.controller
    ip = coef.vendor_ip
    nl_res, nl_lut, nl_ff = nl_part.resources, nl_part.lut, nl_part.ff
    # the system part: our tile controller (its synthesised RTL) + the vendor IP (AXI DMA and
    # interconnect, coefficients.json → vendor_ip, each figure with its source)
    dsp = eng.dsp + nl_res.dsp + int(ip["dsp"])
    lut = eng.lut + nl_lut + ctrl.lut + ip["lut"] + bufs.lut
    ff = eng.ff + nl_ff + ctrl.ff + ip["ff"] + bufs.ff
    bram = bufs.bram36 + nl_res.bram36 + ip["bram36"]
    res = Resources(dsp=int(dsp), lut=round(lut), ff=round(ff), bram36=float(bram))
    util = {
        "dsp": res.dsp / device.dsp if device.dsp else float("inf") if res.dsp else 0.0,
        "lut": res.lut / device.lut,
        "ff": res.ff / device.ff,
        "bram36": res.bram36 / device.bram36 if device.bram36 else float("inf") if res.bram36 else 0.0,
    }
    violations = [
        f"{key} {util[key]:.1%} > cap {cap:.0%}"
        for key, cap in (
            ("dsp", caps.dsp),
            ("lut", caps.lut),
            ("ff", caps.ff),
            ("bram36", caps.bram36),
        )
        if util[key] > cap
    ]
    if config.freq_mhz > device.max_freq_mhz:
        violations.append(f"clock {config.freq_mhz:g} MHz > device max {device.max_freq_mhz:g} MHz")
    acc_over = 0
    if config.acc_bits is None:
        need = _required_acc_bits(la.depth, *widths)
        acc_over = max(need - engine.acc_bits, 0)
        if acc_over:
            violations.append(f"exact partial sums need {need} bits > {engine.acc_bits} (PoT codes too wide)")

    layers: tuple[LayerResult, ...] = ()
    if detail:
        parts = _part_resources(engine, device, coef)
        layers = _layer_table(workload, engine, la, timing, nl_part, parts, family)
    return DesignReport(
        model_name=workload.model_name,
        device=device.name,
        freq_mhz=config.freq_mhz,
        macs=workload.macs,
        latency_cycles=total,
        gemm_cycles=gemm_cycles,
        nonlinear_cycles=sums.busy + nl_part.series_cycles,
        nonlinear_exposed_cycles=exposed + nl_part.series_cycles,
        offchip_bytes=sums.offchip_bytes,
        resources=res,
        utilisation=util,
        violations=tuple(violations),
        acc_bits_over=acc_over,
        layers=layers,
        nonlinear_resources=nl_res,
    )


def _part_resources(
    engine: EngineConfig, device: Device, coef: Coefficients
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(DSP, LUT) of the fixed-point sub-array alone and of the PoT sub-array alone."""
    out = []
    for cf, cp in ((engine.cols_fixed, 0), (0, engine.cols_pot)):
        if cf + cp == 0:
            out.append((0, 0))
            continue
        r = engine_resources(replace(engine, cols_fixed=cf, cols_pot=cp), device.synth_family, coef)
        out.append((r.dsp, round(r.lut)))
    return out[0], out[1]


def _layer_table(
    workload: Workload,
    engine: EngineConfig,
    la: _LayerArrays,
    timing: _GemmTiming,
    nl_part: _NonlinearPart,
    parts: tuple[tuple[int, int], tuple[int, int]],
    synth_family: str,
) -> tuple[LayerResult, ...]:
    """The per-layer table: a GEMM's latency without its successor's exposed cycles; a
    non-linear op's compute cycles are its unit's busy cycles, its latency the cycles it adds
    to the critical path (all of them for an op in series)."""
    (fix_dsp, fix_lut), (pot_dsp, pot_lut) = parts
    t = _workload_tables(workload)
    producer = {int(ni): gi for gi, ni in enumerate(t.gemm_succ.tolist()) if ni >= 0}
    lane_table = _lane_table(engine)
    rows: list[LayerResult] = []
    gi = 0
    ni = 0
    for op in workload.ops:
        if isinstance(op, GemmOp):
            i = gi
            gi += 1
            latency = int(timing.latency[i] - timing.exposed[i])
            assert timing.compute is not None and timing.memory is not None and timing.tiles is not None
            nl_mode, deferred, wait = timing.schedule(i)
            compute, memory = int(timing.compute[i]), int(timing.memory[i])
            ratio = float(la.ratio[i])
            uses_fix, uses_pot = ratio < 1.0, ratio > 0.0
            tokens, channels = mode_lanes(lane_table, int(la.wb[i]), int(la.ab[i]))
            lanes = tokens * channels
            peak = engine.rows * (engine.cols_fixed * lanes + engine.cols_pot)
            rows.append(
                LayerResult(
                    name=op.name,
                    kind=op.kind,
                    m=op.m,
                    n=op.n,
                    k=op.k,
                    repeat=op.repeat,
                    weight_bits=int(la.wb[i]),
                    act_bits=int(la.ab[i]),
                    pot_ratio=ratio,
                    tm=int(la.tm[i]),
                    tn=int(la.tn[i]),
                    tk=int(la.tk[i]),
                    tiles=int(timing.tiles[i]),
                    compute_cycles=compute,
                    memory_cycles=memory,
                    latency_cycles=latency,
                    bound="compute" if compute >= memory else "memory",
                    offchip_bytes=int(timing.offchip_bytes[i]),
                    lanes=lanes if uses_fix else 0,
                    transposed=bool(timing.transposed[i]),
                    nl_mode=nl_mode,
                    deferred=deferred,
                    wait=wait[0] if wait else "none",
                    wait_index=wait[1] if wait else 0,
                    pe_utilisation=op.macs / (latency * peak) if latency and peak else 0.0,
                    dsp=fix_dsp * uses_fix + pot_dsp * uses_pot,
                    lut=fix_lut * uses_fix + pot_lut * uses_pot,
                    bram36=_layer_bram(engine, la, i, synth_family),
                )
            )
        else:
            p = producer.get(ni)
            c = int(nl_part.cycles[ni]) if p is None else int(timing.busy[p])
            on_path = c if p is None else int(timing.exposed[p])
            ni += 1
            rows.append(
                LayerResult(
                    name=op.name,
                    kind=op.kind,
                    m=op.rows,
                    n=op.row_len,
                    k=0,
                    repeat=1,
                    weight_bits=0,
                    act_bits=0,
                    pot_ratio=0.0,
                    tm=0,
                    tn=0,
                    tk=0,
                    tiles=0,
                    compute_cycles=c,
                    memory_cycles=0,
                    latency_cycles=on_path,
                    bound="nonlinear" if p is None else "overlapped",
                    offchip_bytes=0,
                    lanes=0,
                    transposed=False,
                    nl_mode=NL_MODES[0],
                    deferred=False,
                    wait="none",
                    wait_index=0,
                    pe_utilisation=0.0,
                    dsp=0,
                    lut=0,
                    bram36=0.0,
                )
            )
    return tuple(rows)
