"""The compute engine a design builds: the one home of the design → engine mapping.

Every caller — the analytic model (:mod:`hwmodel.model.evaluation`, :mod:`hwmodel.cost.engine`),
the RTL generators (:mod:`hwmodel.rtl`), the calibration grid and the exports — gets its
:class:`EngineConfig` from :func:`engine_from_widths` (a design:
:func:`hwmodel.model.evaluation.design_engine`, its widths taken from the model's layer arrays; a
synthesis grid point: built directly), so an exported ``accelerator.json``
and its Verilog always describe the same engine. :func:`engine_for_design` is the plain per-layer
reference that ``tests/test_export_engine.py`` holds ``design_engine`` to.

**Engine v2 (weight-stationary, DSP-chained).** An engine is a fixed-point sub-array of
``rows`` × ``cols_fixed`` DSP slices and a power-of-two sub-array of ``rows`` × ``cols_pot`` LUT
PEs. Rows walk the reduction (k), columns the output channels; the weights of a fold (``rows``
k-values × the channels of the columns) stay in the PEs while the tokens stream through, one
(or two) per cycle. In the fixed sub-array every DSP slice multiplies *and* accumulates: the
partial sum of a token runs down the column through the slices' cascade (``PCOUT → PCIN``), so
no adder or accumulator of the reduction sits in fabric.

**Lane packing** (one slice computes several MACs of one product, separated once per chain
output, never per MAC). A slice multiplies ``AD × B`` (27 × 18 bits on DSP48E2, 25 × 18 on
DSP48E1) into a 48-bit ``P``:

* ``1`` lane: ``AD = a``, ``B = w``.
* ``2`` lanes (Xilinx WP486 style, two tokens × one channel): ``AD = a0 + a1·2^T`` (the pre-adder
  packs the two tokens), ``B = w``; ``P = a0·w + a1·w·2^T``.
* ``4`` lanes (Xilinx WP521 style, two tokens × two channels, operands ≤ 4 bits):
  ``AD = a0 + a1·2^T``, ``B = w0 + w1·2^S``; ``P = a0w0 + a0w1·2^S + a1w0·2^T + a1w1·2^(S+T)``.

A packed lane holds a signed sum; the chain adds ``chain`` products into it before a lane could
overflow into its neighbour, so a column of ``rows`` slices is cut into chains of at most
``chain_rows`` slices (:attr:`EngineConfig.chain_rows`, from the operand widths). Each chain's
``P`` is separated into its lanes once per token at the column bottom, the chain results are
summed, and the partial sum of earlier k-folds (from the output buffer) is added. The engine
supports, at run time, every packing mode up to its ``packing`` that its widths allow
(:attr:`EngineConfig.modes`); each layer runs in the densest mode its own precision admits
(:meth:`EngineConfig.mode_for`), so a layer's cycles follow that layer's bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hwmodel.arch.config import AcceleratorConfig
from hwmodel.base.errors import UserError
from hwmodel.base.jit import jit
from hwmodel.target.workload import Workload

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DspSlice:
    """The arithmetic of one DSP slice type (the ports the engine uses)."""

    name: str
    #: width of the multiplier's AD operand (pre-adder output) and of the D port
    ad_bits: int
    #: width of the multiplier's B operand
    b_bits: int
    #: width of the P register and the PCIN/PCOUT cascade
    p_bits: int


#: Xilinx 7-series DSP48E1 (UG479): 25 × 18 multiplier, 25-bit pre-adder; UltraScale(+) DSP48E2
#: (UG579): 27 × 18, 27-bit pre-adder. Both: 48-bit P and cascades.
DSP_SLICES: dict[str, DspSlice] = {
    "DSP48E1": DspSlice("DSP48E1", 25, 18, 48),
    "DSP48E2": DspSlice("DSP48E2", 27, 18, 48),
}
PACKINGS = (1, 2, 4)
#: operands of the 4-lane mode are at most this wide (Xilinx WP521: INT4)
QUAD_BITS = 4


def product_range(weight_bits: int, act_bits: int) -> tuple[int, int]:
    """(min, max) of a signed ``weight_bits`` × ``act_bits`` product."""
    w_lo, w_hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    a_lo, a_hi = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    corners = (w_lo * a_lo, w_lo * a_hi, w_hi * a_lo, w_hi * a_hi)
    return min(corners), max(corners)


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's-complement word that holds every integer in [lo, hi]."""
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


def sum_bits(terms: int, weight_bits: int, act_bits: int) -> int:
    """Bits of a signed sum of ``terms`` products of these widths."""
    lo, hi = product_range(weight_bits, act_bits)
    return signed_bits(terms * lo, terms * hi)


@dataclass(frozen=True)
class LaneMode:
    """One packing mode of a DSP slice: ``tokens`` × ``channels`` lanes.

    Lane ``t·channels + c`` (token t, channel c) is the signed field of ``P`` that starts at
    ``offsets[lane]``; fields end where the next one starts (the last at bit 48).
    ``b_shift`` (S) places channel 1's weight in the B word, ``d_shift`` (T) token 1's activation
    in the AD word. ``weight_bits``/``act_bits`` are the widest operands the mode takes.
    """

    lanes: int
    tokens: int
    channels: int
    b_shift: int
    d_shift: int
    weight_bits: int
    act_bits: int
    p_bits: int = 48

    @property
    def offsets(self) -> tuple[int, ...]:
        """Bit offset of each lane in ``P`` (lane = token · channels + channel)."""
        return tuple(
            t * self.d_shift + c * self.b_shift for t in range(self.tokens) for c in range(self.channels)
        )

    @property
    def lane_widths(self) -> tuple[int, ...]:
        """Width of each lane's field in ``P`` (in bit order; the last runs to the top)."""
        order = sorted(self.offsets)
        ends = [*order[1:], self.p_bits]
        by_offset = {o: e - o for o, e in zip(order, ends, strict=True)}
        return tuple(by_offset[o] for o in self.offsets)

    def admits(self, weight_bits: int, act_bits: int) -> bool:
        return weight_bits <= self.weight_bits and act_bits <= self.act_bits

    def chain_capacity(self, weight_bits: int, act_bits: int) -> int:
        """Most products a chain may add before a lane of these operands could overflow."""
        lo, hi = product_range(weight_bits, act_bits)
        cap = None
        for width in self.lane_widths:
            top = (1 << (width - 1)) - 1
            n = min(top // hi if hi > 0 else top, (top + 1) // -lo if lo < 0 else top)
            cap = n if cap is None else min(cap, n)
        return int(cap or 0)


def lane_mode(dsp: DspSlice, lanes: int, weight_bits: int, act_bits: int) -> LaneMode | None:
    """The ``lanes`` packing of ``dsp`` at these engine widths, or None where it cannot hold one
    product per lane (operands too wide for the packed ports).

    Token 1's activation sits at T = ``ad_bits − act_bits − 1`` (the most AD allows with a sign
    bit to spare for ``a0 + a1·2^T``: WP486's 18 on DSP48E2 at 8 bits); in the 4-lane mode
    T = ``ad_bits − 5`` and channel 1's weight at S = T // 2 (three 11-bit lanes and a 15-bit one
    on DSP48E2).
    """
    if lanes == 1:
        if weight_bits > dsp.b_bits or act_bits > dsp.ad_bits:
            return None
        return LaneMode(1, 1, 1, 0, 0, weight_bits, act_bits, dsp.p_bits)
    if lanes == 2:
        t = dsp.ad_bits - act_bits - 1
        if weight_bits > dsp.b_bits or t < 1:
            return None
        mode = LaneMode(2, 2, 1, 0, t, weight_bits, act_bits, dsp.p_bits)
    elif lanes == 4:
        wq, aq = min(weight_bits, QUAD_BITS), min(act_bits, QUAD_BITS)
        t = dsp.ad_bits - aq - 1
        s = t // 2
        if s + QUAD_BITS + 1 > dsp.b_bits:
            return None
        mode = LaneMode(4, 2, 2, s, t, wq, aq, dsp.p_bits)
    else:
        raise ValueError(f"packing must be one of {PACKINGS}, got {lanes}")
    return mode if mode.chain_capacity(mode.weight_bits, mode.act_bits) >= 1 else None


@dataclass(frozen=True)
class EngineConfig:
    """One engine: what the RTL builds, the model prices and the calibration synthesises.

    ``weight_bits``/``act_bits`` are the widest operands of the fixed-point sub-array (also the
    activation width of the PoT sub-array), ``pot_weight_bits`` the PoT code width
    (``sign << (b−1) | m``, weight ±2^(m−1), m = 0 is zero), ``acc_bits`` the width of the partial
    and final sums (they wrap modulo 2^acc_bits like the integer reference), ``packing`` the most
    lanes per DSP slice the fixed sub-array may use, ``dsp`` the slice type.
    """

    rows: int
    cols_fixed: int
    cols_pot: int
    weight_bits: int
    pot_weight_bits: int
    act_bits: int
    acc_bits: int
    packing: int = 2
    dsp: str = "DSP48E2"

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols_fixed < 0 or self.cols_pot < 0:
            raise ValueError("rows must be ≥ 1 and column counts ≥ 0")
        if self.cols_fixed + self.cols_pot == 0:
            raise ValueError("engine needs at least one column")
        if min(self.weight_bits, self.act_bits, self.pot_weight_bits) < 2:
            raise ValueError("operands need at least 2 bits (sign + magnitude)")
        if self.packing not in PACKINGS:
            raise ValueError(f"packing must be one of {PACKINGS}")
        if self.dsp not in DSP_SLICES:
            raise ValueError(f"dsp must be one of {', '.join(DSP_SLICES)}")
        if self.cols_fixed and lane_mode(self.slice, 1, self.weight_bits, self.act_bits) is None:
            s = self.slice
            raise ValueError(
                f"W{self.weight_bits}A{self.act_bits} exceeds one {s.name} multiplier "
                f"(≤ {s.b_bits}-bit weights, ≤ {s.ad_bits}-bit activations)"
            )
        if self.acc_bits < max(self.act_bits + 1, 4) or self.acc_bits > 64:
            raise ValueError("acc_bits must exceed act_bits and be at most 64")

    @property
    def slice(self) -> DspSlice:
        return DSP_SLICES[self.dsp]

    @cached_property
    def modes(self) -> tuple[LaneMode, ...]:
        """Packing modes the fixed sub-array supports at run time, fewest lanes first.

        ``packing`` 1: unpacked. 2: two tokens per slice (falls back to 1 lane where the widths
        do not pack). 4: four INT4 lanes, plus the 2-lane mode for wider layers when the engine's
        widths exceed 4 bits.
        """
        s = self.slice
        one = lane_mode(s, 1, self.weight_bits, self.act_bits)
        assert one is not None
        two = lane_mode(s, 2, self.weight_bits, self.act_bits) if self.packing >= 2 else None
        quad = lane_mode(s, 4, self.weight_bits, self.act_bits) if self.packing >= 4 else None
        wide = two or one
        if quad is None:
            return (wide,)
        if self.weight_bits <= QUAD_BITS and self.act_bits <= QUAD_BITS:
            return (quad,)
        return (wide, quad)

    @cached_property
    def chain_rows(self) -> int:
        """Slices per cascade chain: the fewest products any supported mode's lanes hold."""
        cap = min(m.chain_capacity(m.weight_bits, m.act_bits) for m in self.modes)
        return max(1, min(cap, self.rows))

    @property
    def chains(self) -> int:
        return -(-self.rows // self.chain_rows)

    @cached_property
    def tokens(self) -> int:
        """Activation fields a fixed-point row carries (2 where a mode packs two tokens)."""
        return max(m.tokens for m in self.modes)

    @cached_property
    def channels(self) -> int:
        """Output channels a fixed column can hold at once (2 where a mode packs two)."""
        return max(m.channels for m in self.modes)

    @property
    def slots(self) -> int:
        """Result words per fixed column: slot ``token · channels + channel``."""
        return self.tokens * self.channels

    @property
    def d_base(self) -> int:
        """Shift of token 1's field into the D port (the smallest token-1 offset of any mode)."""
        shifts = [m.d_shift for m in self.modes if m.tokens == 2]
        return min(shifts) if shifts else 0

    def mode_for(self, weight_bits: int, act_bits: int) -> LaneMode:
        """The densest supported mode a layer of these widths runs in."""
        for mode in reversed(self.modes):
            if mode.admits(weight_bits, act_bits):
                return mode
        raise UserError(
            f"W{weight_bits}A{act_bits} does not fit engine {self.name} (W{self.weight_bits}A{self.act_bits})"
        )

    @property
    def pot_max_shift(self) -> int:
        return (1 << (self.pot_weight_bits - 1)) - 2

    def pot_sum_bits(self, terms: int) -> int:
        """Bits of a sum of ``terms`` PoT products (capped at ``acc_bits``: they wrap there)."""
        mag = 1 << (self.act_bits - 1 + self.pot_max_shift)
        return min(signed_bits(-terms * mag, terms * mag), self.acc_bits)

    def slot_sum_bits(self, terms: int) -> list[int]:
        """Per result slot: bits of a sum of ``terms`` products of the widest mode using the slot."""
        widths = [0] * self.slots
        for mode in self.modes:
            bits = sum_bits(terms, mode.weight_bits, mode.act_bits)
            for lane in range(mode.lanes):
                t, ch = divmod(lane, mode.channels)
                slot = t * self.channels + ch
                widths[slot] = max(widths[slot], bits)
        return widths

    def lane_register_bits(self) -> list[int]:
        """Per slot: width of a separated chain lane (exact: the borrow logic needs every bit)."""
        return self.slot_sum_bits(self.chain_rows)

    def column_register_bits(self) -> list[int]:
        """Per slot: width of a column's summed chains (wraps at ``acc_bits`` beyond it)."""
        return [min(b, self.acc_bits) for b in self.slot_sum_bits(self.rows)]

    @property
    def macs_per_cycle(self) -> int:
        """Peak MACs per cycle (densest mode on the fixed part, one token per PoT PE)."""
        return self.rows * (self.cols_fixed * self.slots + self.cols_pot)

    @property
    def dsp_slices(self) -> int:
        return self.rows * self.cols_fixed

    @property
    def name(self) -> str:
        return (
            f"r{self.rows}_f{self.cols_fixed}w{self.weight_bits}_p{self.cols_pot}w{self.pot_weight_bits}"
            f"_a{self.act_bits}_acc{self.acc_bits}_x{self.packing}_{self.dsp[-2:].lower()}"
        )


class _Accelerator(Protocol):
    """The part of :class:`hwmodel.arch.config.AcceleratorConfig` the engine depends on."""

    @property
    def rows(self) -> int: ...
    @property
    def cols_fixed(self) -> int: ...
    @property
    def pot_cols(self) -> int: ...
    @property
    def acc_bits(self) -> int | None: ...
    @property
    def packing(self) -> int: ...


def required_acc_bits(depth: int, weight_bits: int, pot_weight_bits: int, act_bits: int) -> int:
    """Partial-sum width that holds any sum of ``depth`` products exactly: fixed-point products
    of ``weight_bits`` × ``act_bits`` and PoT products (±act · 2^(2^(b−1) − 2)); 0 bits for an
    unused part."""
    need = 0
    if weight_bits:
        need = sum_bits(depth, weight_bits, act_bits)
    if pot_weight_bits:
        mag = 1 << (act_bits - 1 + (1 << (pot_weight_bits - 1)) - 2)
        need = max(need, signed_bits(-depth * mag, depth * mag))
    return need


#: Latency (cycles) of the fixed-point sub-array from a token at offset 0 of column 0 to its
#: result, beyond ``chain_rows``: A/D register, AD register, M register, P register, lane
#: register, sum register (the RTL builds it, :func:`hwmodel.cost.engine.register_bits` counts its
#: flag lines).
FIXED_PIPELINE = 5

#: Widest partial sums an engine builds (a wider need — PoT codes of 7+ bits — is a violation).
MAX_ACC_BITS = 64


def engine_from_widths(
    config: _Accelerator, weight_bits: int, pot_weight_bits: int, act_bits: int, dsp: str, depth: int
) -> EngineConfig:
    return _engine(
        config.rows, config.cols_fixed, config.pot_cols, config.acc_bits, config.packing,
        weight_bits, pot_weight_bits, act_bits, dsp, depth,
    )  # fmt: skip


@lru_cache(maxsize=4096)
def _engine(
    rows: int,
    cols_fixed: int,
    cols_pot: int,
    acc_bits: int | None,
    packing: int,
    weight_bits: int,
    pot_weight_bits: int,
    act_bits: int,
    dsp: str,
    depth: int,
) -> EngineConfig:
    """The engine of ``config`` sized for these operand widths (0 for a part no layer uses) and
    a reduction of at most ``depth``: the partial sums are exact (at most :data:`MAX_ACC_BITS`)
    unless ``config.acc_bits`` says otherwise (then they wrap, like the integer reference)."""
    wb, pb, ab = max(weight_bits, 2), max(pot_weight_bits, 2), max(act_bits, 2)
    acc = acc_bits
    if acc is None:
        acc = min(required_acc_bits(depth, weight_bits and wb, pot_weight_bits and pb, ab), MAX_ACC_BITS)
    try:
        return EngineConfig(
            rows=rows,
            cols_fixed=cols_fixed,
            cols_pot=cols_pot,
            weight_bits=wb,
            pot_weight_bits=pb,
            act_bits=ab,
            acc_bits=acc,
            packing=packing,
            dsp=dsp,
        )
    except ValueError as exc:
        raise UserError(f"accelerator: {exc}") from None


@jit
def design_widths(weight_bits: I64, act_bits: I64, pot_ratio: F64) -> tuple[int, int, int]:
    """(fixed weight bits, PoT code bits, activation bits) an engine needs for layers of these
    weight bits, activation bits and PoT ratios (one entry per layer); 0 for a part no layer uses."""
    wb_fix = wb_pot = ab = 0
    for i in range(weight_bits.shape[0]):
        if pot_ratio[i] < 1.0:
            wb_fix = max(wb_fix, weight_bits[i])
        if pot_ratio[i] > 0.0:
            wb_pot = max(wb_pot, weight_bits[i])
        ab = max(ab, act_bits[i])
    return wb_fix, wb_pot, ab


def engine_for_design(workload: Workload, config: AcceleratorConfig, dsp: str) -> EngineConfig:
    """The engine a design builds, from its layers one by one (the reference for
    :func:`hwmodel.model.evaluation.design_engine`, which callers use: same result from the layer arrays)."""
    hws = [config.for_layer(op.name) for op in workload.gemms]
    widths = design_widths(
        np.array([h.weight_bits for h in hws], dtype=np.int64),
        np.array([h.act_bits for h in hws], dtype=np.int64),
        np.array([h.pot_ratio for h in hws], dtype=np.float64),
    )
    return engine_from_widths(config, *widths, dsp, depth=max(op.k for op in workload.gemms))


def decode_pot(codes: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.int64]:
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


def encode_pot(values: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.int64]:
    """The PoT codes ``sign << (b−1) | m`` of values 0 or ±2^(m−1) (inverse of :func:`decode_pot`;
    ``ValueError`` for a value that is not, or whose m needs more than ``bits − 1`` bits)."""
    v = np.asarray(values, dtype=np.int64)
    mag = np.abs(v)
    m = np.where(mag > 0, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int64) + 1, 0)
    if np.any((mag > 0) & (np.left_shift(np.int64(1), np.maximum(m - 1, 0)) != mag)) or np.any(
        m >= 1 << (bits - 1)
    ):
        raise ValueError(f"values that are not 0 or ±2^(m−1) with m < 2^{bits - 1}")
    return np.where(v < 0, (1 << (bits - 1)) | m, m).astype(np.int64)
