"""Cycle-by-cycle simulation of a tiled GEMM through the PyRTL engine.

The harness is the engine's controller and its buffers. It walks the tiles (Tm, Tn, Tk) in the
order of :func:`hwmodel.arch.cycles.gemm_compute_cycles` (m, n, k tiles, k innermost), splits each
tile's channels into fixed and PoT ones with :func:`hwmodel.arch.cycles.split_channels`, and cuts
each sub-array's share into folds (n-folds outer, k-folds of ``rows`` inner). Within a tile it
follows the controller's schedule (see :mod:`hwmodel.rtl.engines` for the port timing):

* fixed sub-array: fold f's weights are shifted in during ``λ_f .. λ_f + rows − 1`` and its
  tokens enter from ``σ_f``; ``λ_0 = 0``, ``σ_0 = rows − 1``; ``λ_f = σ_{f−1} + chain_rows`` (the
  cycle the previous fold's swap has reached the bottom offset) and
  ``σ_f = max(σ_{f−1} + steps, λ_f + rows − 1)``;
* PoT sub-array: ``σ_0 = rows + 1``, ``λ_f = σ_{f−1} + rows − 2``,
  ``σ_f = max(σ_{f−1} + steps, λ_f + rows + 1)``.

``steps`` is the number of stream cycles of a fold (tokens, or token pairs in a 2-token mode).
The results are *observed*: when column c raises its read request the harness presents the
partial sums of the output buffer (its model: the ``outputs`` array) in the next cycle and writes
back what the column puts out. A tile ends when both sub-arrays have put out their last result;
the next tile starts in the following cycle; the reported count is the index of the last output
cycle plus one (cycle 0 = the first cycle of the first tile). ``slack`` shortens (negative) or
lengthens the controller's fold spacing — the tests show that one cycle less breaks the results.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.cycles import split_channels, tile_extents
from hwmodel.arch.engine import EngineConfig, LaneMode
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.engines import build_engine, chain_layout

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
    mode: LaneMode | None
    #: per simulated cycle, when ``record=True``: the input values and the output-port values
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


def reference_gemm(a: IntArray, w: IntArray, pot_mask: BoolArray, engine: EngineConfig) -> IntArray:
    """Exact integer reference (Python ints): A · decode(W) wrapped to acc_bits.

    PoT columns of ``w`` hold codes (any width, shifts beyond 62 included), the others signed
    integers.
    """
    k, n = w.shape
    w_val = [
        [_pot_value(int(w[i, j]), engine.pot_weight_bits) if pot_mask[j] else int(w[i, j]) for j in range(n)]
        for i in range(k)
    ]
    mod = 1 << engine.acc_bits
    half = 1 << (engine.acc_bits - 1)
    out = np.zeros((a.shape[0], n), dtype=np.int64)
    for r in range(a.shape[0]):
        row = [int(v) for v in a[r]]
        for j in range(n):
            total = sum(row[i] * w_val[i][j] for i in range(k))
            out[r, j] = ((total + half) % mod) - half
    return out


@dataclass(frozen=True)
class _Fold:
    tokens: tuple[int, ...]  # global rows of A (one tile's tokens)
    channels: tuple[int, ...]  # global output columns (κ · columns of the sub-array at most)
    k0: int
    depth: int  # k-values of this fold (≤ rows)
    first: bool  # the first k-fold of its outputs (partial sum 0)


@dataclass
class _SubArray:
    """The controller of one sub-array: fixed (``f``) or power-of-two (``p``)."""

    prefix: str
    cols: int
    tokens_per_step: int
    channels_per_col: int
    #: result slots of a column are token · slot_channels + channel
    slot_channels: int
    #: per column, the results it still owes: (fold, step)
    pending: list[deque[tuple[_Fold, int]]] = field(default_factory=list)
    #: results to write back in a given cycle: cycle → [(column, fold, step)]
    writes: dict[int, list[tuple[int, _Fold, int]]] = field(default_factory=dict)

    def busy(self) -> bool:
        return any(self.pending) or any(self.writes.values())


def _folds(
    tokens: tuple[int, ...], channels: list[int], k0: int, ek: int, rows: int, per_fold: int
) -> list[_Fold]:
    out = []
    for g in range(0, len(channels), per_fold):
        for kf in range(0, ek, rows):
            depth = min(rows, ek - kf)
            out.append(_Fold(tokens, tuple(channels[g : g + per_fold]), k0 + kf, depth, k0 + kf == 0))
    return out


def _schedule(
    folds: list[_Fold], steps: int, rows: int, chain: int, pot: bool, slack: int
) -> list[tuple[int, int]]:
    """(λ_f, σ_f) of each fold: load start and stream start (see the module docstring)."""
    out: list[tuple[int, int]] = []
    for f in range(len(folds)):
        if f == 0:
            lam = 0
            sigma = rows + 1 if pot else rows - 1
        else:
            prev = out[-1][1]
            lam = prev + (rows - 2 if pot else chain)
            sigma = max(prev + steps, lam + (rows + 1 if pot else rows - 1) + slack)
        out.append((lam, sigma))
    return out


def simulate_gemm(
    a: IntArray,
    w: IntArray,
    engine: EngineConfig,
    tiling: GemmTiling,
    pot_ratio: float,
    layer_bits: tuple[int, int] | None = None,
    record: bool = False,
    slack: int = 0,
) -> GemmRun:
    """Stream C = A·W through a freshly built engine; W's PoT columns (see :func:`pot_columns`)
    hold PoT codes, the others signed integers. ``layer_bits`` = (weight bits, activation bits)
    of the layer (default: the engine's) picks the packing mode. Resets the PyRTL working block.
    ``record`` keeps every cycle's input and output port values (for Verilog co-simulation).
    """
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    m, k = a.shape
    k2, n = w.shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, W is {w.shape}")
    wb, ab = layer_bits if layer_bits is not None else (engine.weight_bits, engine.act_bits)
    mode = engine.mode_for(wb, ab) if engine.cols_fixed else None

    fresh_block()
    build_engine(engine)
    block = pyrtl.working_block()
    outputs = list(block.wirevector_subset(pyrtl.Output))
    sim = pyrtl.FastSimulation(tracer=pyrtl.SimulationTrace(wires_to_track=outputs))
    zero_inputs: dict[str, int] = {x.name: 0 for x in block.wirevector_subset(pyrtl.Input)}
    if mode is not None and "f_mode" in zero_inputs:
        zero_inputs["f_mode"] = engine.modes.index(mode)
    out_names = [o.name for o in outputs]
    acc_mask = (1 << engine.acc_bits) - 1

    subs = sub_arrays(engine, mode)
    result = np.zeros((m, n), dtype=np.int64)
    in_log: list[dict[str, int]] = []
    out_log: list[dict[str, int]] = []
    t = 0
    last_out = -1
    folds_run = 0

    for tile in gemm_tiles(m, n, k, tiling, pot_ratio):
        start = t
        rel, n_folds = tile_events(tile, subs, a, w, engine, slack)
        folds_run += n_folds
        events = {start + c: ports for c, ports in rel.items()}

        while True:
            inputs = dict(zero_inputs)
            inputs.update(events.pop(t, {}))
            for sub in subs:
                for c, fold, i in sub.writes.get(t, []):
                    for slot, (mi, nj) in slot_targets(sub, fold, i, c):
                        port = f"p_ps{c}" if sub.prefix == "p" else f"f_ps{c}_{slot}"
                        inputs[port] = int(result[mi, nj]) & acc_mask
            sim.step(inputs)
            if record:
                in_log.append(inputs)
                out_log.append({name: sim.inspect(name) for name in out_names})
            for sub in subs:
                for c, fold, i in sub.writes.pop(t, []):
                    for slot, (mi, nj) in slot_targets(sub, fold, i, c):
                        port = f"p_out{c}" if sub.prefix == "p" else f"f_out{c}_{slot}"
                        v = sim.inspect(port)
                        result[mi, nj] = v - (1 << engine.acc_bits) if v >> (engine.acc_bits - 1) else v
                    last_out = t
                for c in range(sub.cols):
                    if sim.inspect(f"{sub.prefix}_req{c}"):
                        if not sub.pending[c]:
                            raise RuntimeError(f"{sub.prefix} column {c}: result without a token (cycle {t})")
                        fold, i = sub.pending[c].popleft()
                        sub.writes.setdefault(t + 1, []).append((c, fold, i))
            t += 1
            if not events and not any(sub.busy() for sub in subs):
                break
            if t - start > 10_000_000:
                raise RuntimeError("simulation did not finish")
        t = last_out + 1
    return GemmRun(
        outputs=result,
        cycles=last_out + 1,
        folds=folds_run,
        mode=mode,
        input_vectors=tuple(in_log),
        output_vectors=tuple(out_log),
    )


def sub_arrays(engine: EngineConfig, mode: LaneMode | None) -> list[_SubArray]:
    """The controllers of the engine's sub-arrays (fixed first, then PoT)."""
    subs: list[_SubArray] = []
    if engine.cols_fixed:
        assert mode is not None
        subs.append(_SubArray("f", engine.cols_fixed, mode.tokens, mode.channels, engine.channels))
    if engine.cols_pot:
        subs.append(_SubArray("p", engine.cols_pot, 1, 1, 1))
    return subs


#: one tile: (tokens, fixed channels, PoT channels, k0, depth)
Tile = tuple[tuple[int, ...], list[int], list[int], int, int]


def tile_events(
    tile: Tile, subs: list[_SubArray], a: IntArray, w: IntArray, engine: EngineConfig, slack: int = 0
) -> tuple[dict[int, dict[str, int]], int]:
    """The controller's input-port values of one tile, by cycle from the tile's first cycle (ports
    not named are 0), and the number of folds. Resets and fills each sub-array's ``pending``: per
    column, the (fold, step) results it will put out, in order."""
    tile_tokens, tile_fix, tile_pot, k0, ek = tile
    rows = engine.rows
    offsets = chain_layout(rows, engine.chain_rows).offsets
    act_mask = (1 << engine.act_bits) - 1
    wf_mask = (1 << engine.weight_bits) - 1
    wp_mask = (1 << engine.pot_weight_bits) - 1
    events: dict[int, dict[str, int]] = {}
    n_folds = 0
    kinds = {sub.prefix for sub in subs}
    for chans, prefix, kind in ((tile_fix, "f", "fixed"), (tile_pot, "p", "power-of-two")):
        if chans and prefix not in kinds:
            raise ValueError(f"{kind} channels assigned but the engine has no such columns")

    def put(cycle: int, port: str, value: int) -> None:
        events.setdefault(cycle, {})[port] = value

    for sub in subs:
        sub.pending = [deque() for _ in range(sub.cols)]
        pot = sub.prefix == "p"
        chans = tile_pot if pot else tile_fix
        if not chans:
            continue
        folds = _folds(tile_tokens, chans, k0, ek, rows, sub.cols * sub.channels_per_col)
        steps = -(-len(tile_tokens) // sub.tokens_per_step)
        chain = rows if pot else engine.chain_rows
        p = sub.prefix
        for fold, (lam, sigma) in zip(folds, _schedule(folds, steps, rows, chain, pot, slack), strict=True):
            n_folds += 1
            # weights: bottom row first, column c's words c cycles after column 0's
            for j in range(rows):
                put(lam + j, f"{p}_load", 1)
                kk = fold.k0 + rows - 1 - j
                for c in range(sub.cols):
                    for ch in range(sub.channels_per_col):
                        idx = c * sub.channels_per_col + ch
                        value = 0
                        if rows - 1 - j < fold.depth and idx < len(fold.channels):
                            value = int(w[kk, fold.channels[idx]])
                        port = f"p_w{c}" if pot else f"f_w{c}_{ch}"
                        put(lam + j + c, port, value & (wp_mask if pot else wf_mask))
            put(sigma + (-1 if pot else 1), f"{p}_swap", 1)
            for i in range(steps):
                group = fold.tokens[i * sub.tokens_per_step : (i + 1) * sub.tokens_per_step]
                put(sigma + i, f"{p}_valid", 1)
                put(sigma + i, f"{p}_first", int(fold.first))
                for c in range(sub.cols):
                    sub.pending[c].append((fold, i))
                for r in range(fold.depth):
                    lag = r if pot else offsets[r]
                    for tok, mi in enumerate(group):
                        port = f"p_a{r}" if pot else f"f_a{r}_{tok}"
                        put(sigma + lag + i, port, int(a[mi, fold.k0 + r]) & act_mask)
    return events, n_folds


def slot_targets(sub: _SubArray, fold: _Fold, step: int, col: int) -> list[tuple[int, tuple[int, int]]]:
    """(slot, (token, channel)) of the results column ``col`` puts out for ``step`` of ``fold``."""
    out = []
    kappa = sub.channels_per_col
    group = fold.tokens[step * sub.tokens_per_step : (step + 1) * sub.tokens_per_step]
    for t, mi in enumerate(group):
        for ch in range(kappa):
            idx = col * kappa + ch
            if idx < len(fold.channels):
                out.append((t * sub.slot_channels + ch, (mi, fold.channels[idx])))
    return out


def gemm_tiles(m: int, n: int, k: int, tiling: GemmTiling, pot_ratio: float) -> list[Tile]:
    """(tokens, fixed channels, PoT channels, k0, depth) of every tile, in execution order."""
    out = []
    m0 = 0
    for em in tile_extents(m, tiling.tm):
        n0 = 0
        for en in tile_extents(n, tiling.tn):
            tn_fix, _ = split_channels(en, pot_ratio)
            fix = list(range(n0, n0 + tn_fix))
            pot = list(range(n0 + tn_fix, n0 + en))
            k0 = 0
            for ek in tile_extents(k, tiling.tk):
                out.append((tuple(range(m0, m0 + em)), fix, pot, k0, ek))
                k0 += ek
            n0 += en
        m0 += em
    return out
