"""Cycle-by-cycle simulation of a tiled GEMM through the PyRTL mixed engine.

The harness is the engine's controller: it walks the tiles (Tm, Tn, Tk) in the order of
``hwmodel.cycles.gemm_compute_cycles`` (m, n, k tiles, k innermost), splits each tile's channels
into fixed and PoT ones with ``hwmodel.cycles.split_channels``, and streams the folds of each
sub-array through the simulated RTL with ``pyrtl.FastSimulation``. It never uses the cycle
formula: a sub-array starts its next fold in the cycle after it *observes* ``done`` of the
previous one in the simulated trace, the next tile starts in the cycle after both sub-arrays have
reported their last ``done`` of the tile (the tile takes the max), and the reported count is the
index of the last observed ``done`` plus one (cycle 0 = the first operand presented).

Partial sums (Tk < K) are written into the PEs' preload registers during the previous fold of the
sub-array (or, for its first fold, in R set-up cycles before cycle 0); a fold that continues the
same output block as the sub-array's previous fold simply keeps accumulating (``first`` low).
Results are read from the shadow registers one row per cycle after ``done``, overlapped with the
next fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.cycles import split_channels, tile_extents
from hwmodel.rtl.engines import EngineConfig, build_engine

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class GemmTiling:
    """On-chip tile sizes of a GEMM C[M×N] = A[M×K]·B[K×N]."""

    tm: int
    tn: int
    tk: int

    def __post_init__(self) -> None:
        if min(self.tm, self.tn, self.tk) < 1:
            raise ValueError("tile sizes must be ≥ 1")


@dataclass(frozen=True)
class GemmRun:
    """Integer outputs (wrapped to acc_bits, signed) and the simulated compute cycles."""

    outputs: IntArray
    cycles: int
    folds: int
    #: per simulated cycle (set-up cycles included), when ``record=True``: the input values and
    #: the engine's output-port values
    input_vectors: tuple[dict[str, int], ...] = ()
    output_vectors: tuple[dict[str, int], ...] = ()


def pot_columns(n: int, tn: int, pot_ratio: float) -> BoolArray:
    """Which output channels are power-of-two: the last round(ratio·en) channels of each n-tile."""
    mask = np.zeros(n, dtype=bool)
    n0 = 0
    for en in tile_extents(n, tn):
        tn_fix, _ = split_channels(en, pot_ratio)
        mask[n0 + tn_fix : n0 + en] = True
        n0 += en
    return mask


def decode_pot(codes: IntArray, bits: int) -> IntArray:
    """Integer value of PoT codes ``sign << (b−1) | m``: 0 for m = 0, else ±2^(m−1).

    int64 holds shifts up to 62 (b ≤ 7); wider codes raise (see :func:`reference_gemm`).
    """
    if bits > 7:
        raise ValueError("int64 PoT decode supports at most 7-bit codes")
    codes = np.asarray(codes, dtype=np.int64)
    m = codes & ((1 << (bits - 1)) - 1)
    sign = (codes >> (bits - 1)) & 1
    mag = np.where(m == 0, 0, np.left_shift(np.int64(1), np.maximum(m - 1, 0)))
    return np.where(sign == 1, -mag, mag).astype(np.int64)


def wrap_signed(x: IntArray, bits: int) -> IntArray:
    """Two's-complement wrap of integers to ``bits`` (≤ 63)."""
    x = np.asarray(x, dtype=np.int64)
    half = np.int64(1) << (bits - 1)
    full = np.int64(1) << bits
    return ((x + half) & (full - 1)) - half


def _pot_value(code: int, bits: int) -> int:
    m = code & ((1 << (bits - 1)) - 1)
    mag = 0 if m == 0 else 1 << (m - 1)
    return -mag if (code >> (bits - 1)) & 1 else mag


def reference_gemm(a: IntArray, w: IntArray, pot_mask: BoolArray, config: EngineConfig) -> IntArray:
    """Exact integer reference (Python ints): A · decode(W) wrapped to acc_bits.

    PoT columns of ``w`` hold codes (any width, shifts beyond 62 included), the others signed
    integers.
    """
    k, n = w.shape
    w_val = [
        [_pot_value(int(w[i, j]), config.pot_weight_bits) if pot_mask[j] else int(w[i, j]) for j in range(n)]
        for i in range(k)
    ]
    mod = 1 << config.acc_bits
    half = 1 << (config.acc_bits - 1)
    out = np.zeros((a.shape[0], n), dtype=np.int64)
    for r in range(a.shape[0]):
        row = [int(v) for v in a[r]]
        for j in range(n):
            total = sum(row[i] * w_val[i][j] for i in range(k))
            out[r, j] = ((total + half) % mod) - half
    return out


@dataclass
class _Fold:
    tile: int
    rows: list[int]  # global output rows (≤ R)
    cols: list[int]  # global output columns (≤ C)
    k0: int
    tk: int
    cont: bool = False


@dataclass
class _Driver:
    prefix: str
    cols: int
    wbits: int
    folds: list[_Fold]
    pos: int = 0  # index of the running / next fold
    start: int | None = None  # start cycle of the running fold
    started_once: bool = False
    writes: dict[int, tuple[int, _Fold]] = field(default_factory=dict)
    reads: dict[int, tuple[int, _Fold]] = field(default_factory=dict)

    def tile_done(self, tile: int) -> bool:
        return self.pos >= len(self.folds) or self.folds[self.pos].tile > tile


def _plan(
    m: int, n: int, k: int, config: EngineConfig, tiling: GemmTiling, pot_ratio: float
) -> tuple[dict[str, list[_Fold]], int]:
    rows = config.rows
    cols_of = {"f": config.cols_fixed, "p": config.cols_pot}
    plans: dict[str, list[_Fold]] = {"f": [], "p": []}
    tile = 0
    m0 = 0
    for em in tile_extents(m, tiling.tm):
        n0 = 0
        for en in tile_extents(n, tiling.tn):
            tn_fix, _ = split_channels(en, pot_ratio)
            chans = {
                "f": list(range(n0, n0 + tn_fix)),
                "p": list(range(n0 + tn_fix, n0 + en)),
            }
            k0 = 0
            for ek in tile_extents(k, tiling.tk):
                for key, ch in chans.items():
                    if not ch:
                        continue
                    c = cols_of[key]
                    if c == 0:
                        kind = "fixed" if key == "f" else "power-of-two"
                        raise ValueError(f"{kind} channels assigned but the engine has no such columns")
                    for i in range(0, em, rows):
                        for j in range(0, len(ch), c):
                            fold = _Fold(
                                tile=tile,
                                rows=list(range(m0 + i, m0 + min(i + rows, em))),
                                cols=ch[j : j + c],
                                k0=k0,
                                tk=ek,
                            )
                            prev = plans[key][-1] if plans[key] else None
                            fold.cont = (
                                prev is not None
                                and prev.rows == fold.rows
                                and prev.cols == fold.cols
                                and prev.k0 + prev.tk == fold.k0
                            )
                            plans[key].append(fold)
                tile += 1
                k0 += ek
            n0 += en
        m0 += em
    return plans, tile


def simulate_gemm(
    a: IntArray,
    w: IntArray,
    config: EngineConfig,
    tiling: GemmTiling,
    pot_ratio: float,
    record: bool = False,
) -> GemmRun:
    """Stream C = A·W through a freshly built engine; W's PoT columns (see :func:`pot_columns`)
    hold PoT codes, the others signed integers. Resets the PyRTL working block. ``record`` keeps
    every cycle's input and output port values (for Verilog co-simulation).
    """
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    m, k = a.shape
    k2, n = w.shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, W is {w.shape}")
    rows = config.rows
    if rows < 2:
        raise ValueError("the harness needs rows ≥ 2 (preload window of the overlapped readout)")
    plans, n_tiles = _plan(m, n, k, config, tiling, pot_ratio)

    pyrtl.reset_working_block()
    build_engine(config)
    block = pyrtl.working_block()
    outputs = [wire for wire in block.wirevector_subset(pyrtl.Output)]
    sim = pyrtl.FastSimulation(tracer=pyrtl.SimulationTrace(wires_to_track=outputs))

    act_mask = (1 << config.act_bits) - 1
    acc_mask = (1 << config.acc_bits) - 1
    a_u = (a & act_mask).tolist()
    drivers: list[_Driver] = []
    w_u: dict[str, list[list[int]]] = {}
    for prefix, _scheme, cols, wbits in config.sub_arrays():
        drivers.append(_Driver(prefix=prefix, cols=cols, wbits=wbits, folds=plans[prefix]))
        w_u[prefix] = (w & ((1 << wbits) - 1)).tolist()

    out = np.zeros((m, n), dtype=np.int64)
    zero_inputs: dict[str, int] = {w_.name: 0 for w_ in block.wirevector_subset(pyrtl.Input)}
    pre_gap = {d.prefix: max(d.cols - 1, 1) for d in drivers}

    def schedule_preload(d: _Driver, base: int, fold: _Fold) -> None:
        for r in range(rows):
            d.writes[base + r] = (r, fold)

    # set-up: preload registers of each sub-array's first fold, before cycle 0
    for d in drivers:
        if d.folds:
            schedule_preload(d, -rows, d.folds[0])

    current_tile = 0
    pending_start: int | None = 0  # cycle at which the drivers start tile `current_tile`
    last_done = -1
    folds_run = 0
    t = -rows
    in_log: list[dict[str, int]] = []
    out_log: list[dict[str, int]] = []
    out_names = [o.name for o in outputs]
    while True:
        if pending_start is not None and t == pending_start:
            for d in drivers:
                if d.pos < len(d.folds) and d.folds[d.pos].tile == current_tile:
                    d.start = t
            pending_start = None
        inputs = dict(zero_inputs)
        for d in drivers:
            p = d.prefix
            if d.start is not None:
                fold = d.folds[d.pos]
                kk = t - d.start
                if 0 <= kk < fold.tk:
                    kg = fold.k0 + kk
                    for r, mi in enumerate(fold.rows):
                        inputs[f"{p}_a{r}"] = a_u[mi][kg]
                    wrow = w_u[p][kg]
                    for c, nj in enumerate(fold.cols):
                        inputs[f"{p}_w{c}"] = wrow[nj]
                    if kk == 0:
                        inputs[f"{p}_first"] = 0 if fold.cont else 1
                        nxt = d.pos + 1
                        if nxt < len(d.folds) and not d.folds[nxt].cont:
                            schedule_preload(d, t + pre_gap[p], d.folds[nxt])
                    if kk == fold.tk - 1:
                        inputs[f"{p}_last"] = 1
            wr = d.writes.pop(t, None)
            if wr is not None:
                r, fold = wr
                inputs[f"{p}_pl_we"] = 1
                inputs[f"{p}_pl_row"] = r
                if r < len(fold.rows) and fold.k0 > 0:
                    mi = fold.rows[r]
                    for c, nj in enumerate(fold.cols):
                        inputs[f"{p}_pl{c}"] = int(out[mi, nj]) & acc_mask
            rd = d.reads.get(t)
            if rd is not None:
                inputs[f"{p}_rd_row"] = rd[0]
        sim.step(inputs)
        if record:
            in_log.append(inputs)
            out_log.append({name: sim.inspect(name) for name in out_names})
        for d in drivers:
            p = d.prefix
            rd = d.reads.pop(t, None)
            if rd is not None:
                r, fold = rd
                if r < len(fold.rows):
                    mi = fold.rows[r]
                    for c, nj in enumerate(fold.cols):
                        v = sim.inspect(f"{p}_out{c}")
                        out[mi, nj] = v - (1 << config.acc_bits) if v >> (config.acc_bits - 1) else v
            if sim.inspect(f"{p}_done"):
                if d.start is None:
                    raise RuntimeError(f"sub-array {p}: done without a running fold (cycle {t})")
                fold = d.folds[d.pos]
                for r in range(rows):
                    d.reads[t + 1 + r] = (r, fold)
                last_done = t
                folds_run += 1
                d.pos += 1
                d.start = None
                if d.pos < len(d.folds) and d.folds[d.pos].tile == current_tile:
                    d.start = t + 1
        if pending_start is None and all(d.start is None and d.tile_done(current_tile) for d in drivers):
            current_tile += 1
            if current_tile < n_tiles:
                pending_start = t + 1
        if current_tile >= n_tiles and not any(d.reads or d.writes for d in drivers):
            break
        t += 1
        if t > 10_000_000:
            raise RuntimeError("simulation did not finish")
    return GemmRun(
        outputs=out,
        cycles=last_done + 1,
        folds=folds_run,
        input_vectors=tuple(in_log),
        output_vectors=tuple(out_log),
    )
