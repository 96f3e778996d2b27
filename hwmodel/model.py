"""The analytic accelerator model: per-layer latency with a memory roofline, resources, totals.

Per GEMM layer (tiles Tm×Tn×Tk clipped to the layer, loop order m → n → k, outputs stationary):

* compute cycles of a tile follow :mod:`hwmodel.cycles` (fill/drain per fold; the fixed-point and
  power-of-two sub-arrays work on the same input tile at once: a tile takes the max of the two);
* off-chip bytes of a tile: the A tile (``tm·tk`` activations; when Tk covers K the A tile is kept
  and reused for every n-tile, so its load is spread over them), the B tile (``tk·tn`` weights or
  K/V activations; kept and loaded once when one tile covers all of K and N) and, after the last
  k-tile, the output tile (``tm·tn`` at the layer's activation width);
* double buffering overlaps the next tile's transfer with this tile's compute, so a tile costs
  max(compute, transfer) (the per-tile roofline), plus the first tile's load and the DRAM latency,
  which nothing hides; heads (``repeat``) run one after another.

Non-linear ops run on their own pipelined units (``nonlinear_lanes`` lanes each) between GEMMs:
``passes·⌈elements/lanes⌉ + pipeline`` cycles. Resources: the compute engines from
:mod:`hwmodel.cost` (sized for the widest layer), double-buffered banked A/B/C buffers in BRAM36
(:mod:`hwmodel.buffers`, sized for the largest tile), non-linear units, and a fixed system part.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hwmodel.buffers import Buffer
from hwmodel.config import AcceleratorConfig
from hwmodel.cost import Coefficients, engine_resources, load_coefficients
from hwmodel.device import Device
from hwmodel.errors import UserError
from hwmodel.workload import GemmOp, Workload

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


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
    latency_cycles: int
    gemm_cycles: int
    nonlinear_cycles: int
    offchip_bytes: int
    resources: Resources
    utilisation: dict[str, float]
    violations: tuple[str, ...]
    layers: tuple[LayerResult, ...] = field(default=())

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
        utilisation / cap − 1 and clock / ``max_freq_mhz`` − 1. ≤ 0 exactly when :attr:`violations`
        is empty (a negative value is the headroom of the binding limit)."""
        limits = {"dsp": caps.dsp, "lut": caps.lut, "ff": caps.ff, "bram36": caps.bram36}
        over = max(self.utilisation[k] / cap for k, cap in limits.items()) - 1.0
        return max(over, self.freq_mhz / max_freq_mhz - 1.0)

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
            "offchip_bytes": self.offchip_bytes,
            "resources": asdict(self.resources),
            "utilisation": self.utilisation,
            "feasible": self.feasible,
            "violations": list(self.violations),
            "layers": [asdict(layer) for layer in self.layers],
        }


@dataclass(frozen=True)
class _LayerArrays:
    wb: I64
    ab: I64
    ratio: F64
    tm: I64
    tn: I64
    tk: I64


def _layer_arrays(workload: Workload, config: AcceleratorConfig) -> _LayerArrays:
    g = workload.gemm_arrays
    hws = [config.for_layer(op.name) for op in workload.gemms]
    unknown = set(config.layers) - workload.layer_name_set
    if unknown:
        name = sorted(unknown)[0]
        raise UserError(f"config layer '{name}' is not a layer of {workload.model_name}")
    ratio = np.array([hw.pot_ratio for hw in hws], dtype=np.float64)
    bad = np.nonzero((ratio > 0) & ~g.weight_operand)[0]
    if bad.size:
        name = workload.gemms[int(bad[0])].name
        raise UserError(f"layer '{name}': pot_ratio must be 0 for an activation×activation matmul")
    return _LayerArrays(
        wb=np.array([hw.weight_bits for hw in hws], dtype=np.int64),
        ab=np.array([hw.act_bits for hw in hws], dtype=np.int64),
        ratio=ratio,
        tm=np.minimum(np.array([hw.tm for hw in hws], dtype=np.int64), g.m),
        tn=np.minimum(np.array([hw.tn for hw in hws], dtype=np.int64), g.n),
        tk=np.minimum(np.array([hw.tk for hw in hws], dtype=np.int64), g.k),
    )


def _cdiv(a: I64, b: I64 | int) -> I64:
    return -(-a // b)


def _sub_array_cycles(em: I64, en: I64, ek: I64, rows: int, cols: int) -> I64:
    if cols == 0:
        return np.zeros(np.broadcast(em, en, ek).shape, dtype=np.int64)
    folds = _cdiv(em, rows) * _cdiv(en, cols)
    return np.where(en > 0, folds * (ek + rows + cols - 2), 0)


@dataclass(frozen=True)
class _GemmTiming:
    compute: I64  # per layer, all heads
    memory: I64
    latency: I64
    offchip_bytes: I64
    tiles: I64


def _gemm_timing(
    workload: Workload,
    config: AcceleratorConfig,
    la: _LayerArrays,
    bytes_per_cycle: float,
    coef: Coefficients,
) -> _GemmTiming:
    g = workload.gemm_arrays
    rows, cf, cp = config.rows, config.cols_fixed, config.pot_cols
    tm, tn, tk = la.tm, la.tn, la.tk
    n_m, n_n, n_k = _cdiv(g.m, tm), _cdiv(g.n, tn), _cdiv(g.k, tk)
    # Tile classes: m ∈ {full, rest} × n ∈ {full, rest} × k ∈ {full not last, full last, rest last}.
    rm, rn, rk = g.m % tm, g.n % tn, g.k % tk
    em = np.stack([tm, rm], axis=1)[:, :, None, None]
    cm = np.stack([g.m // tm, (rm > 0).astype(np.int64)], axis=1)[:, :, None, None]
    en = np.stack([tn, rn], axis=1)[:, None, :, None]
    cn = np.stack([g.n // tn, (rn > 0).astype(np.int64)], axis=1)[:, None, :, None]
    ek = np.stack([tk, tk, rk], axis=1)[:, None, None, :]
    full_k = g.k // tk
    ck = np.stack([full_k - (rk == 0), (rk == 0).astype(np.int64), (rk > 0).astype(np.int64)], axis=1)
    ck = ck[:, None, None, :]
    last_k = np.array([0, 1, 1], dtype=np.int64)[None, None, None, :]
    count = cm * cn * ck

    ratio = la.ratio[:, None, None, None]
    en_pot = np.rint(ratio * en).astype(np.int64)
    en_fix = en - en_pot
    if cf == 0 and bool(np.any((en_fix > 0) & (count > 0))):
        raise UserError("a layer assigns fixed-point channels but the array has no fixed columns")
    if cp == 0 and bool(np.any((en_pot > 0) & (count > 0))):
        raise UserError("a layer assigns power-of-two channels but pot_cols is 0")
    compute = np.maximum(
        _sub_array_cycles(em, en_fix, ek, rows, cf), _sub_array_cycles(em, en_pot, ek, rows, cp)
    )

    ab = la.ab[:, None, None, None].astype(np.float64)
    wb = la.wb[:, None, None, None].astype(np.float64)
    reuse_a = np.where(n_k == 1, n_n, 1)[:, None, None, None]
    reuse_b = np.where((n_n == 1) & (n_k == 1), n_m, 1)[:, None, None, None]
    a_bytes = em * ek * ab / 8.0 / reuse_a
    b_bytes = ek * en * wb / 8.0 / reuse_b
    c_bytes = em * en * ab / 8.0 * last_k
    tile_bytes = a_bytes + b_bytes + c_bytes
    memory = np.ceil(tile_bytes / bytes_per_cycle).astype(np.int64)
    per_tile = np.maximum(compute, memory)

    first_bytes = (tm * tk * la.ab + tk * tn * la.wb) / 8.0
    first_load = np.ceil(first_bytes / bytes_per_cycle).astype(np.int64) + int(
        coef.system["dram_latency_cycles"]
    )
    sum_axes = (1, 2, 3)
    rep = g.repeat
    compute_total = (compute * count).sum(axis=sum_axes) * rep
    memory_total = (memory * count).sum(axis=sum_axes) * rep + first_load * rep
    latency = ((per_tile * count).sum(axis=sum_axes) + first_load) * rep
    total_bytes = np.rint((tile_bytes * count).sum(axis=sum_axes) * rep).astype(np.int64)
    return _GemmTiming(
        compute=compute_total,
        memory=memory_total,
        latency=latency,
        offchip_bytes=total_bytes,
        tiles=n_m * n_n * n_k * rep,
    )


def _nonlinear_cycles(workload: Workload, lanes: int, coef: Coefficients) -> list[int]:
    costs = {kind: (c.passes, c.pipeline_cycles) for kind, c in coef.nonlinear.items()}
    return [costs[op.kind][0] * -(-op.elements // lanes) + costs[op.kind][1] for op in workload.nonlinears]


def _tile_depths(config: AcceleratorConfig, la: _LayerArrays) -> tuple[I64, I64, I64]:
    """Per layer: words per bank of its tile's A (one bank per array row), B and C buffers (one
    bank per array column)."""
    rows, cols = config.rows, config.cols
    return _cdiv(la.tm, rows) * la.tk, _cdiv(la.tn, cols) * la.tk, la.tm * _cdiv(la.tn, cols)


def _tile_buffers(config: AcceleratorConfig, depths: tuple[int, int, int], ab: int, wb: int) -> list[Buffer]:
    """The A (activations), B (weights) and C (accumulators) buffers with banks of ``depths``."""
    a_depth, b_depth, c_depth = depths
    return [
        Buffer("input_a", config.rows, a_depth, ab),
        Buffer("weight_b", config.cols, b_depth, wb),
        Buffer("output_c", config.cols, c_depth, config.acc_bits),
    ]


def _buffers(workload: Workload, config: AcceleratorConfig, la: _LayerArrays) -> list[Buffer]:
    a, b, c = (int(d.max()) for d in _tile_depths(config, la))  # sized for the largest tile
    bufs = _tile_buffers(config, (a, b, c), int(la.ab.max()), int(la.wb.max()))
    lanes = config.nonlinear_lanes
    longest = {kind: 0 for kind in ("softmax", "layernorm")}
    for op in workload.nonlinears:
        if op.kind in longest:
            longest[op.kind] = max(longest[op.kind], op.row_len)
    for kind, row_len in longest.items():
        if row_len:
            bufs.append(Buffer(f"{kind}_rows", lanes, -(-row_len // lanes), 16, double_buffered=False))
    return bufs


def _layer_bram(config: AcceleratorConfig, la: _LayerArrays, i: int, synth_family: str) -> float:
    """BRAM36 the layer's own tile needs (its A, B and C buffers)."""
    a, b, c = (int(d[i]) for d in _tile_depths(config, la))
    bufs = _tile_buffers(config, (a, b, c), int(la.ab[i]), int(la.wb[i]))
    return sum(buf.memory(synth_family).bram36 for buf in bufs)


def engine_widths(workload: Workload, config: AcceleratorConfig) -> tuple[int, int, int]:
    """(fixed weight bits, PoT weight bits, activation bits) of the engine ``config`` needs
    (0 for a part no layer uses)."""
    return datapath_widths(workload, _layer_arrays(workload, config))


def buffers(workload: Workload, config: AcceleratorConfig) -> list[Buffer]:
    """The on-chip buffers of a design (sized for its largest tile)."""
    return _buffers(workload, config, _layer_arrays(workload, config))


def datapath_widths(workload: Workload, la: _LayerArrays) -> tuple[int, int, int]:
    """(fixed weight bits, PoT weight bits, activation bits) the shared engine must support."""
    has_fixed = la.ratio < 1.0
    has_pot = la.ratio > 0.0
    wb_fix = int(la.wb[has_fixed].max()) if has_fixed.any() else 0
    wb_pot = int(la.wb[has_pot].max()) if has_pot.any() else 0
    return wb_fix, wb_pot, int(la.ab.max())


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
    caps = caps or UtilisationCaps()
    coef = coef or load_coefficients()
    la = _layer_arrays(workload, config)
    bpc = device.bytes_per_cycle(config.freq_mhz)
    timing = _gemm_timing(workload, config, la, bpc, coef)
    nl_cycles = _nonlinear_cycles(workload, config.nonlinear_lanes, coef)
    gemm_cycles = int(timing.latency.sum())
    total = gemm_cycles + sum(nl_cycles)

    wb_fix, wb_pot, ab = datapath_widths(workload, la)
    eng = engine_resources(
        config.rows,
        config.cols_fixed,
        config.pot_cols,
        max(wb_fix, 1),
        max(wb_pot, 1),
        ab,
        config.acc_bits,
        device.synth_family,
        coef,
    )
    sysc = coef.system
    bufs = _buffers(workload, config, la)
    banks = sum(b.banks for b in bufs)
    mems = [b.memory(device.synth_family) for b in bufs]
    lanes = config.nonlinear_lanes
    nl = coef.nonlinear.values()
    dsp = eng.dsp + lanes * sum(c.dsp_per_lane for c in nl) + int(sysc["dsp_const"])
    lut = (
        eng.lut
        + lanes * sum(c.lut_per_lane for c in nl)
        + sysc["lut_const"]
        + banks * sysc["lut_per_buffer_bank"]
        + sum(m.lut for m in mems)
    )
    ff = (
        eng.ff
        + lanes * sum(c.ff_per_lane for c in nl)
        + sysc["ff_const"]
        + banks * sysc["ff_per_buffer_bank"]
        + sum(m.ff for m in mems)
    )
    bram = sum(m.bram36 for m in mems) + sysc["bram36_const"]
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

    layers: tuple[LayerResult, ...] = ()
    if detail:
        widths = (max(wb_fix, 1), max(wb_pot, 1), ab)
        parts = _part_resources(config, widths, device, coef)
        layers = _layer_table(workload, config, la, timing, nl_cycles, parts, device.synth_family)
    return DesignReport(
        model_name=workload.model_name,
        device=device.name,
        freq_mhz=config.freq_mhz,
        macs=workload.macs,
        latency_cycles=int(total),
        gemm_cycles=gemm_cycles,
        nonlinear_cycles=int(sum(nl_cycles)),
        offchip_bytes=int(timing.offchip_bytes.sum()),
        resources=res,
        utilisation=util,
        violations=tuple(violations),
        layers=layers,
    )


def _part_resources(
    config: AcceleratorConfig, widths: tuple[int, int, int], device: Device, coef: Coefficients
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(DSP, LUT) of the fixed-point sub-array alone and of the PoT sub-array alone."""
    wb_fix, wb_pot, ab = widths
    out = []
    for cf, cp in ((config.cols_fixed, 0), (0, config.pot_cols)):
        r = engine_resources(
            config.rows, cf, cp, wb_fix, wb_pot, ab, config.acc_bits, device.synth_family, coef
        )
        out.append((r.dsp, round(r.lut)))
    return out[0], out[1]


def _layer_table(
    workload: Workload,
    config: AcceleratorConfig,
    la: _LayerArrays,
    timing: _GemmTiming,
    nl_cycles: list[int],
    parts: tuple[tuple[int, int], tuple[int, int]],
    synth_family: str,
) -> tuple[LayerResult, ...]:
    (fix_dsp, fix_lut), (pot_dsp, pot_lut) = parts
    rows: list[LayerResult] = []
    gi = 0
    ni = 0
    for op in workload.ops:
        if isinstance(op, GemmOp):
            i = gi
            gi += 1
            latency = int(timing.latency[i])
            compute, memory = int(timing.compute[i]), int(timing.memory[i])
            ratio = float(la.ratio[i])
            uses_fix, uses_pot = ratio < 1.0, ratio > 0.0
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
                    pe_utilisation=op.macs / (latency * config.pes) if latency else 0.0,
                    dsp=fix_dsp * uses_fix + pot_dsp * uses_pot,
                    lut=fix_lut * uses_fix + pot_lut * uses_pot,
                    bram36=_layer_bram(config, la, i, synth_family),
                )
            )
        else:
            c = nl_cycles[ni]
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
                    latency_cycles=c,
                    bound="nonlinear",
                    offchip_bytes=0,
                    pe_utilisation=0.0,
                    dsp=0,
                    lut=0,
                    bram36=0.0,
                )
            )
    return tuple(rows)
